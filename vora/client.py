"""A small client for apps and the ``vora`` CLI: control's VideoService over gRPC, and
resumable uploads to the edge with tuspy.

Upload state (video id, upload URL and token, the TUS location) is kept in a JSON file
keyed by the file's path, size and modification time, so running the same upload again
after an interruption continues where it stopped instead of creating a new video.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt

from vora.config import Settings
from vora.grpcio import insecure_channel
from vora.v1 import video_pb2, video_pb2_grpc

Progress = Callable[[int, int], None]
DEFAULT_CHUNK_SIZE = 8 * 1024**2
COMPLETE_WAIT_SECONDS = 30.0


class ClientError(Exception):
    """A call to control or the edge failed; the message says what to do."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


def mint_user_token(settings: Settings, subject: str, ttl_seconds: int = 12 * 3600) -> str:
    """A development JWT for ``subject`` signed with the configured HS256 secret.

    Production apps get their tokens from the operator's identity provider."""
    if settings.jwt_algorithm != "HS256":
        raise ClientError("minting needs VORA_JWT_ALGORITHM=HS256; get a token from your IdP")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "aud": settings.jwt_audience, "iat": now,
                              "exp": now + ttl_seconds}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def _describe(error: grpc.aio.AioRpcError) -> ClientError:
    return ClientError(f"{error.code().name}: {error.details()}", error.code())


class VideoClient:
    """VideoService calls as the user named by ``user_token``."""

    def __init__(self, settings: Settings, user_token: str) -> None:
        self._channel = insecure_channel(settings.control_grpc_target)
        self._stub = video_pb2_grpc.VideoServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {user_token}"),)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> VideoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self._stub, method)(request, metadata=self._metadata,
                                                     timeout=15)
        except grpc.aio.AioRpcError as error:
            raise _describe(error) from None

    async def create(self, title: str, description: str = "",
                     size: int = 0) -> video_pb2.CreateVideoResponse:
        request = video_pb2.CreateVideoRequest(title=title, description=description,
                                               size_bytes=size)
        response: video_pb2.CreateVideoResponse = await self._call("CreateVideo", request)
        return response

    async def get(self, video_id: str) -> video_pb2.Video:
        response = await self._call("GetVideo", video_pb2.GetVideoRequest(video_id=video_id))
        video: video_pb2.Video = response.video
        return video

    async def list(self, page_size: int = 50) -> list[video_pb2.Video]:
        videos: list[video_pb2.Video] = []
        token = ""
        while True:
            response = await self._call(
                "ListVideos", video_pb2.ListVideosRequest(page_size=page_size, page_token=token))
            videos.extend(response.videos)
            token = response.next_page_token
            if not token:
                return videos

    async def complete(self, video_id: str, upload_id: str,
                       wait_seconds: float = COMPLETE_WAIT_SECONDS) -> video_pb2.Video:
        """CompleteUpload, waiting for the edge's report of the finished upload.

        The edge answers the last PATCH once control acknowledged its report of the upload
        (edge_callback_wait_seconds), so control normally knows it already; when control
        was slow the edge goes on reporting in the background, so "not complete" (the one
        FAILED_PRECONDITION that goes away by itself) is retried for ``wait_seconds``."""
        request = video_pb2.CompleteUploadRequest(video_id=video_id, upload_id=upload_id)
        deadline = time.monotonic() + wait_seconds
        delay = 0.1
        while True:
            try:
                response = await self._call("CompleteUpload", request)
            except ClientError as error:
                if (error.code != grpc.StatusCode.FAILED_PRECONDITION
                        or "not complete" not in str(error) or time.monotonic() > deadline):
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            video: video_pb2.Video = response.video
            return video

    async def playback_url(self, video_id: str) -> str:
        response = await self._call("GetPlaybackUrl",
                                    video_pb2.GetPlaybackUrlRequest(video_id=video_id))
        url: str = response.url
        return url

    async def delete(self, video_id: str) -> None:
        await self._call("DeleteVideo", video_pb2.DeleteVideoRequest(video_id=video_id))


# --- resumable uploads ------------------------------------------------------------------------


@dataclass
class PendingUpload:
    video_id: str
    upload_url: str
    upload_token: str
    location: str = ""  # the TUS upload URL once created

    @property
    def upload_id(self) -> str:
        return self.location.rstrip("/").rsplit("/", 1)[-1]


class UploadJournal:
    """Pending uploads by file fingerprint, in one JSON file (written atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def fingerprint(file: Path) -> str:
        stat = file.stat()
        return f"{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"

    def _read(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        data: dict[str, dict[str, str]] = json.loads(self.path.read_text())
        return data

    def _write(self, data: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=2))
        temporary.replace(self.path)

    def get(self, file: Path) -> PendingUpload | None:
        entry = self._read().get(self.fingerprint(file))
        return PendingUpload(**entry) if entry else None

    def put(self, file: Path, pending: PendingUpload) -> None:
        data = self._read()
        data[self.fingerprint(file)] = asdict(pending)
        self._write(data)

    def forget(self, file: Path) -> None:
        data = self._read()
        data.pop(self.fingerprint(file), None)
        self._write(data)


def through(edge_url: str | None, location: str) -> str:
    """The upload's URL at ``edge_url`` (a proxy or an internal address) when one is given;
    the journal keeps the edge's own URL so a later run can go direct."""
    if not edge_url or not location:
        return location
    return f"{edge_url.rstrip('/')}/{location.rstrip('/').rsplit('/', 1)[-1]}"


def tus_upload(file: Path, pending: PendingUpload, journal: UploadJournal,
               progress: Progress, chunk_size: int = DEFAULT_CHUNK_SIZE,
               metadata: dict[str, str] | None = None, edge_url: str | None = None) -> str:
    """Upload (or resume) ``file`` to the edge; returns the upload id. Blocking."""
    import requests
    from tusclient import client as tus_client
    from tusclient.exceptions import TusCommunicationError

    tus = tus_client.TusClient(edge_url or pending.upload_url,
                               headers={"Authorization": f"Bearer {pending.upload_token}"})
    uploader = tus.uploader(str(file), chunk_size=chunk_size,
                            url=through(edge_url, pending.location) or None,
                            metadata=metadata or {"filename": file.name}, retries=5,
                            retry_delay=2)
    try:
        if not pending.location:
            pending.location = uploader.create_url() or ""
            journal.put(file, pending)
            uploader.set_url(through(edge_url, pending.location))
        _send_chunks(uploader, file.stat().st_size, progress)
    except (TusCommunicationError, requests.RequestException) as error:
        raise ClientError(
            f"the upload to the edge at {edge_url or pending.upload_url} stopped at "
            f"{uploader.offset} of {file.stat().st_size} bytes: {_why(error)}; run the "
            "same command again to resume") from None
    return pending.upload_id


def _why(error: Exception) -> str:
    """The part of a TUS failure a person can act on, without urllib3's nesting."""
    from requests import ConnectionError as RequestsConnectionError
    from tusclient.exceptions import TusCommunicationError

    # tuspy wraps requests' errors (raise ... inside except: the original is the context).
    if isinstance(error, RequestsConnectionError) or isinstance(
            error.__context__, RequestsConnectionError):
        return "no connection (is the edge running? `vora dev status`)"
    if isinstance(error, TusCommunicationError) and error.status_code is not None:
        body = error.response_content
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
        return f"the edge answered {error.status_code} {text}".strip()
    return str(error)


def _send_chunks(uploader: Any, total: int, progress: Progress) -> None:
    progress(uploader.offset, total)
    while uploader.offset < total:
        uploader.upload_chunk()
        progress(uploader.offset, total)



def format_states(videos: Sequence[video_pb2.Video]) -> list[tuple[str, str, str, str]]:
    rows = []
    for video in videos:
        state = video_pb2.Video.State.Name(video.state).removeprefix("STATE_")
        detail = video.failure_reason or (
            f"{video.progress.phase} {video.progress.percent:.0f}%"
            if video.state == video_pb2.Video.STATE_PROCESSING else "")
        rows.append((video.id, video.title, state, detail))
    return rows
