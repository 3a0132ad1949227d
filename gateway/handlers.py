"""Tornado handlers for /v1/play/{token}/{video_id}/...: translate HTTP, nothing more."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
import zlib
from collections.abc import Awaitable
from typing import Any

import tornado.web
from tornado.iostream import StreamClosedError

from gateway import manifest, metrics
from gateway.catalog import PlayableVideo
from gateway.objects import (
    Conditions,
    ObjectHead,
    ObjectMissing,
    ObjectStore,
    StorageUnavailable,
)
from gateway.playback import Playback, Refused
from vora import storage
from vora.logs import get_logger

log = get_logger(__name__)

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
# Vora playlists are VOD (EXT-X-ENDLIST, written once by the farm): as immutable as segments.
IMMUTABLE = "public, max-age=31536000, immutable"
MASTER_CACHE = "public, max-age=30"
THUMBNAIL_CACHE = "public, max-age=86400"
NOT_FOUND_CACHE = "public, max-age=5"


class PlaybackHandler(tornado.web.RequestHandler):
    """Common ground: CORS, JSON errors with a reason, metrics per kind."""

    kind = "other"

    def initialize(self, playback: Playback, store: ObjectStore) -> None:
        self.playback = playback
        self.store = store
        self.started_at = time.perf_counter()
        self.first_byte_at: float | None = None

    def set_default_headers(self) -> None:
        # Players on any origin may play a signed URL; the token is the access control.
        self.set_header("Access-Control-Allow-Origin", "*")
        self.set_header("Access-Control-Expose-Headers", "Content-Length, Content-Range, ETag")

    def options(self, *_: str) -> None:
        self.set_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Range, If-None-Match")
        self.set_header("Access-Control-Max-Age", "86400")
        self.set_status(204)

    def refuse(self, refused: Refused) -> None:
        self.clear()
        self.set_status(refused.status)
        cache = NOT_FOUND_CACHE if refused.status == 404 else "no-store"
        self.set_header("Cache-Control", cache)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": refused.reason}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": self._reason or "internal error"}))

    def compute_etag(self) -> str | None:
        return None  # streamed handlers relay S3's ETag; MasterHandler sets its own

    def mark_first_byte(self) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()
            metrics.FIRST_BYTE.labels(kind=self.kind).observe(self.first_byte_at - self.started_at)

    def on_finish(self) -> None:
        status = str(self.get_status())
        metrics.REQUESTS.labels(kind=self.kind, status=status).inc()
        metrics.LATENCY.labels(kind=self.kind).observe(self.request.request_time())


class MasterHandler(PlaybackHandler):
    kind = "master"

    async def get(self, token: str, video_id: str) -> None:
        try:
            video = await self.playback.authorize(token, video_id)
            hints = manifest.parse_hints(
                {k: self.get_query_argument(k) for k in self.request.query_arguments},
                self.request.headers.get("Save-Data"),
            )
        except Refused as refused:
            return self.refuse(refused)
        except manifest.HintError as exc:
            return self.refuse(Refused(400, str(exc)))
        self._send(video, hints)

    head = get

    def _send(self, video: PlayableVideo, hints: manifest.VariantHints) -> None:
        body = manifest.render_master(manifest.select_variants(video.renditions, hints)).encode()
        self.set_header("Content-Type", PLAYLIST_TYPE)
        self.set_header("Cache-Control", MASTER_CACHE)
        self.set_header("Vary", ", ".join(("Accept-Encoding", *hints.vary)))
        if accepts_gzip(self.request.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body, mtime=0)
            self.set_header("Content-Encoding", "gzip")
        self.set_etag_header_for(body)
        self.mark_first_byte()
        if self.check_etag_header():
            self.set_status(304)
            return
        metrics.BYTES_OUT.labels(kind=self.kind).inc(len(body))
        self.finish(body)

    def set_etag_header_for(self, body: bytes) -> None:
        self.set_header("ETag", f'"{hashlib.sha1(body, usedforsecurity=False).hexdigest()}"')


def accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class ObjectHandler(PlaybackHandler):
    """Streams one object of bucket-processed to the client (it is also the ObjectSink)."""

    content_type = "application/octet-stream"
    cache_control = IMMUTABLE
    compressible = False

    def initialize(self, playback: Playback, store: ObjectStore) -> None:
        super().initialize(playback, store)
        self.gzipper: Any = None

    async def stream_object(self, token: str, video_id: str, key_of: Any) -> None:
        try:
            video = await self.playback.authorize(token, video_id)
            key = key_of(video)
        except Refused as refused:
            return self.refuse(refused)
        conditions = Conditions(
            range=self.request.headers.get("Range"),
            if_none_match=_strip_gzip_tags(self.request.headers.get("If-None-Match")),
        )
        self.gzip_wanted = (self.compressible and not conditions.range
                            and accepts_gzip(self.request.headers.get("Accept-Encoding", "")))
        try:
            await self.store.stream(key, conditions, self,
                                    head_only=self.request.method == "HEAD")
        except StreamClosedError:
            return None  # the client went away mid-stream (a player seeking, say)
        except ObjectMissing:
            log.warning("object missing for a READY video", key=key)
            return self.refuse(Refused(404, "object not found"))
        except StorageUnavailable as exc:
            if self.first_byte_at is None:
                return self.refuse(Refused(503, f"storage unavailable, retry shortly ({exc})"))
            log.error("S3 failed mid-stream; dropping the connection", key=key, error=str(exc))
            self.request.connection.close()  # type: ignore[union-attr]
            return None
        self._finish_stream()

    # --- ObjectSink -------------------------------------------------------------------------

    def on_head(self, head: ObjectHead) -> None:
        self.mark_first_byte()
        self.set_status(head.status)
        for name, value in head.headers.items():
            self.set_header(name, value)
        self.set_header("Accept-Ranges", "bytes")
        if head.status != 416:
            self.set_header("Content-Type", self.content_type)
            self.set_header("Cache-Control", self.cache_control)
        if self.compressible:
            self.set_header("Vary", "Accept-Encoding")
        if self.gzip_wanted and head.status in (200, 304):
            self._start_gzip(head)

    def _start_gzip(self, head: ObjectHead) -> None:
        self.clear_header("Content-Length")
        self.clear_header("Accept-Ranges")  # ranges would address the gzip bytes
        self.set_header("Content-Encoding", "gzip")
        etag = head.headers.get("ETag")
        if etag:
            self.set_header("ETag", _gzip_tag(etag))
        self.gzipper = zlib.compressobj(6, zlib.DEFLATED, 31)

    def on_chunk(self, chunk: bytes) -> Awaitable[None]:
        if self.gzipper is not None:
            chunk = self.gzipper.compress(chunk)
        metrics.BYTES_OUT.labels(kind=self.kind).inc(len(chunk))
        self.write(chunk)
        return self.flush()

    def _finish_stream(self) -> None:
        if self.gzipper is not None and self.request.method != "HEAD" and self.get_status() == 200:
            tail = self.gzipper.flush()
            metrics.BYTES_OUT.labels(kind=self.kind).inc(len(tail))
            self.write(tail)
        if not self._finished:
            self.finish()


def _gzip_tag(etag: str) -> str:
    return f'{etag[:-1]}-gzip"' if etag.endswith('"') else etag


def _strip_gzip_tags(header: str | None) -> str | None:
    return header.replace('-gzip"', '"') if header else None


class PlaylistHandler(ObjectHandler):
    kind = "playlist"
    content_type = PLAYLIST_TYPE
    compressible = True

    async def get(self, token: str, video_id: str, rendition: str) -> None:
        await self.stream_object(
            token, video_id,
            lambda v: storage.playlist_key(v.video_id, self.playback.rendition_of(v, rendition)),
        )

    head = get


class SegmentHandler(ObjectHandler):
    kind = "segment"
    content_type = "video/mp2t"

    async def get(self, token: str, video_id: str, rendition: str, number: str) -> None:
        await self.stream_object(token, video_id, lambda v: self._key(v, rendition, number))

    head = get

    def _key(self, video: PlayableVideo, rendition: str, number: str) -> str:
        index = int(number)
        try:
            canonical = storage.segment_name(index) == f"seg_{number}.ts"
        except storage.InvalidIdError:
            canonical = False
        if not canonical:
            raise Refused(404, f"no segment seg_{number[:8]}.ts")
        return storage.segment_key(video.video_id, self.playback.rendition_of(video, rendition),
                                   index)


class ThumbnailHandler(ObjectHandler):
    kind = "thumbnail"
    content_type = "image/jpeg"
    cache_control = THUMBNAIL_CACHE

    async def get(self, token: str, video_id: str) -> None:
        await self.stream_object(token, video_id, lambda v: storage.thumbnail_key(v.video_id))

    head = get


class NotFoundHandler(PlaybackHandler):
    def prepare(self) -> None:
        self.refuse(Refused(404, "no such path; playback URLs look like "
                                 "/v1/play/{token}/{video_id}/master.m3u8"))
