"""REST facade (Tornado) over the same logic as the gRPC API, on settings.control_http_port.

Routes (see /openapi.json, built in control/openapi.py):
  POST   /v1/videos                         create          201
  GET    /v1/videos                         list (cursor)   200
  GET    /v1/videos/{id}                    get             200
  DELETE /v1/videos/{id}                    delete          204
  POST   /v1/videos/{id}/complete-upload    complete        200
  POST   /v1/videos/{id}/retry              retry           200
  GET    /v1/videos/{id}/playback-url       sign playback   200
Errors are JSON {"error": {"code", "status", "message"}}; 503 carries Retry-After.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import tornado.web

from control import metrics
from control.auth import Authenticator, Caller
from control.errors import ControlError, InvalidArgument, NotFound, Unavailable
from control.openapi import openapi_document
from control.store import VideoRecord
from control.videos import VideoService
from vora.grpcio import SERVICE_TOKEN_METADATA
from vora.logs import get_logger
from vora.web import MetricsHandler

log = get_logger(__name__)
RETRY_AFTER_SECONDS = 5
_RENDITION_KEYS = ("name", "width", "height", "bandwidth", "average_bandwidth", "codecs",
                   "frame_rate", "playlist_key")
_READ_ONLY = frozenset({"id", "owner", "state", "failure_reason", "progress", "renditions",
                        "duration_seconds", "manifest_key", "thumbnail_key", "upload_id",
                        "create_time", "update_time"})
_VIDEO_ID = r"(?P<video_id>[^/]+)"


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _epoch(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def video_json(video: VideoRecord) -> dict[str, Any]:
    return {
        "id": video.id, "owner": video.owner, "title": video.title,
        "description": video.description, "state": video.state.value,
        "failure_reason": video.failure_reason,
        "progress": {"phase": video.progress_phase, "percent": video.progress_percent},
        "renditions": [{k: r.get(k) for k in _RENDITION_KEYS if k in r}
                       for r in video.renditions],
        "duration_seconds": video.duration_seconds, "manifest_key": video.manifest_key,
        "thumbnail_key": video.thumbnail_key, "upload_id": video.upload_id,
        "create_time": _time(video.created_at), "update_time": _time(video.updated_at),
    }


class JsonHandler(tornado.web.RequestHandler):
    """JSON in and out, errors as JSON, metrics per route."""

    route = "other"

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> None:
        self._started = time.perf_counter()

    def on_finish(self) -> None:
        method = f"{self.request.method} {self.route}"
        metrics.REQUESTS.labels("rest", method, str(self.get_status())).inc()
        metrics.LATENCY.labels("rest", method).observe(
            time.perf_counter() - getattr(self, "_started", time.perf_counter()))

    def send_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ControlError):
            status_code, code, message = exc.http_status, exc.grpc_code, exc.reason
        elif isinstance(exc, tornado.web.HTTPError):
            code, message = "HTTP_ERROR", exc.log_message or self._reason
        else:
            code, message = "INTERNAL", "internal error; it has been logged"
        self.set_status(status_code)
        if isinstance(exc, Unavailable):
            self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="vora"')
        self.finish(json.dumps({"error": {"code": code, "status": status_code,
                                          "message": message}}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ControlError | tornado.web.HTTPError):
            return  # an answer to the client, not a server fault
        log.error("unexpected error", path=self.request.path, exc_info=(typ, value, tb))


class NotFoundHandler(JsonHandler):
    def prepare(self) -> None:
        super().prepare()
        raise NotFound(f"no such endpoint: {self.request.method} {self.request.path}")


class ApiHandler(JsonHandler):
    def initialize(self, videos: VideoService, auth: Authenticator) -> None:
        self.videos = videos
        self.auth = auth

    def caller(self) -> Caller:
        return self.auth.authenticate(self.request.headers.get("Authorization"),
                                      self.request.headers.get(SERVICE_TOKEN_METADATA))

    def json_body(self, allowed: frozenset[str]) -> dict[str, Any]:
        """The body as an object holding only ``allowed`` fields (empty body: {})."""
        if not self.request.body.strip():
            return {}
        try:
            body = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument("the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise InvalidArgument("the body must be a JSON object")
        read_only = sorted(set(body) & _READ_ONLY - allowed)
        if read_only:
            raise InvalidArgument(f"read-only fields cannot be set: {', '.join(read_only)}")
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise InvalidArgument(f"unknown fields: {', '.join(unknown)}; "
                                  f"allowed: {', '.join(sorted(allowed)) or 'none'}")
        return body

    def int_argument(self, name: str, default: int = 0) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
            raise InvalidArgument(f"{name} must be a non-negative integer")
        return int(raw)


def _string(body: dict[str, Any], name: str, required: bool = False) -> str:
    value = body.get(name, None if required else "")
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string" + (" and is required" if required
                                                             else ""))
    return value


def _integer(body: dict[str, Any], name: str) -> int:
    value = body.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be an integer")
    return value


class VideosHandler(ApiHandler):
    route = "/v1/videos"

    async def post(self) -> None:
        body = self.json_body(frozenset({"title", "description", "size_bytes"}))
        created = await self.videos.create_video(
            self.caller(), _string(body, "title"), _string(body, "description"),
            _integer(body, "size_bytes"))
        self.set_header("Location", f"/v1/videos/{created.video.id}")
        self.send_json({"video": video_json(created.video), "upload_url": created.upload_url,
                        "upload_token": created.upload_token,
                        "upload_token_expire_time": _epoch(created.upload_token_expires_at)},
                       status=201)

    async def get(self) -> None:
        page = await self.videos.list_videos(
            self.caller(), self.int_argument("page_size"),
            self.get_query_argument("page_token", "") or "")
        self.send_json({"videos": [video_json(v) for v in page.videos],
                        "next_page_token": page.next_page_token})


class VideoHandler(ApiHandler):
    route = "/v1/videos/{id}"

    async def get(self, video_id: str) -> None:
        video = await self.videos.get_video(self.caller(), video_id)
        self.send_json({"video": video_json(video)})

    async def delete(self, video_id: str) -> None:
        await self.videos.delete_video(self.caller(), video_id)
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()


class CompleteUploadHandler(ApiHandler):
    route = "/v1/videos/{id}/complete-upload"

    async def post(self, video_id: str) -> None:
        body = self.json_body(frozenset({"upload_id"}))
        video = await self.videos.complete_upload(self.caller(), video_id,
                                                  _string(body, "upload_id", required=True))
        self.send_json({"video": video_json(video)})


class RetryHandler(ApiHandler):
    route = "/v1/videos/{id}/retry"

    async def post(self, video_id: str) -> None:
        self.json_body(frozenset())
        video = await self.videos.retry_processing(self.caller(), video_id)
        self.send_json({"video": video_json(video)})


class PlaybackUrlHandler(ApiHandler):
    route = "/v1/videos/{id}/playback-url"

    async def get(self, video_id: str) -> None:
        url = await self.videos.playback_url(self.caller(), video_id,
                                             self.int_argument("ttl_seconds"))
        self.send_json({"url": url.url, "token": url.token,
                        "expire_time": _epoch(url.expires_at)})


class OpenApiHandler(JsonHandler):
    route = "/openapi.json"

    def get(self) -> None:
        self.send_json(openapi_document())


HealthProbe = Callable[[], Awaitable[dict[str, Any]]]


class HealthHandler(JsonHandler):
    """200 while PostgreSQL answers (503 otherwise); Temporal and the outbox as info,
    because the APIs keep working without Temporal."""

    route = "/healthz"

    def initialize(self, probe: HealthProbe) -> None:
        self.probe = probe

    async def get(self) -> None:
        report = await self.probe()
        self.send_json(report, status=200 if report["status"] == "ok" else 503)


def make_app(videos: VideoService, auth: Authenticator, health: HealthProbe,
             extra: Sequence[Any] = ()) -> tornado.web.Application:
    api = {"videos": videos, "auth": auth}
    return tornado.web.Application(
        [
            (r"/v1/videos", VideosHandler, api),
            (rf"/v1/videos/{_VIDEO_ID}", VideoHandler, api),
            (rf"/v1/videos/{_VIDEO_ID}/complete-upload", CompleteUploadHandler, api),
            (rf"/v1/videos/{_VIDEO_ID}/retry", RetryHandler, api),
            (rf"/v1/videos/{_VIDEO_ID}/playback-url", PlaybackUrlHandler, api),
            (r"/openapi.json", OpenApiHandler),
            (r"/healthz", HealthHandler, {"probe": health}),
            (r"/metrics", MetricsHandler),
            *extra,  # the farm capacity API and dashboard (control/dashboard.py)
        ],
        default_handler_class=NotFoundHandler,
    )
