"""Which videos may play, and with which renditions: looked up in control over gRPC.

The gateway depends only on ``VideoCatalog``; ``GrpcVideoCatalog`` is the real
implementation (control's VideoService.GetVideo with the service token), and
``CachedVideoCatalog`` keeps answers for a few seconds so a cache miss in Varnish
rarely costs a gRPC round trip.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import grpc

from gateway import metrics
from vora import storage
from vora.grpcio import SERVICE_TOKEN_METADATA, insecure_channel
from vora.v1 import video_pb2, video_pb2_grpc


@dataclass(frozen=True)
class Rendition:
    """One variant of a READY video, as the farm measured it."""

    name: str
    width: int
    height: int
    bandwidth: int
    average_bandwidth: int
    codecs: str
    frame_rate: float


@dataclass(frozen=True)
class PlayableVideo:
    """What the gateway needs to know about a video to serve it."""

    video_id: str
    ready: bool
    state: str
    renditions: tuple[Rendition, ...]

    def rendition(self, name: str) -> Rendition | None:
        return next((r for r in self.renditions if r.name == name), None)


class CatalogUnavailable(Exception):
    """Control could not be asked; the gateway answers 503 rather than guessing."""


class VideoCatalog(Protocol):
    async def get_video(self, video_id: str) -> PlayableVideo | None:
        """The video, or None when control does not know it. Raises CatalogUnavailable."""
        ...


_CODECS_RE = re.compile(r"^[A-Za-z0-9.,+-]{1,200}$")


def _usable(r: video_pb2.Rendition) -> bool:
    """Only renditions that make a valid variant line; the rest are left out of the master."""
    return bool(
        storage.RENDITION_RE.fullmatch(r.name) and _CODECS_RE.fullmatch(r.codecs)
        and r.width > 0 and r.height > 0 and r.bandwidth > 0 and r.frame_rate > 0
    )


def video_from_proto(video: video_pb2.Video) -> PlayableVideo:
    renditions = tuple(
        Rendition(name=r.name, width=r.width, height=r.height, bandwidth=r.bandwidth,
                  average_bandwidth=r.average_bandwidth, codecs=r.codecs,
                  frame_rate=r.frame_rate)
        for r in video.renditions if _usable(r)
    )
    return PlayableVideo(
        video_id=video.id, ready=video.state == video_pb2.Video.STATE_READY,
        state=video_pb2.Video.State.Name(video.state).removeprefix("STATE_").lower(),
        renditions=renditions,
    )


class GrpcVideoCatalog:
    """control's VideoService.GetVideo, called as a service (may read any video)."""

    def __init__(self, target: str, service_token: str, timeout_seconds: float = 1.0) -> None:
        self._channel = insecure_channel(target)
        self._stub = video_pb2_grpc.VideoServiceStub(self._channel)
        self._metadata = ((SERVICE_TOKEN_METADATA, service_token),)
        self._timeout = timeout_seconds

    async def get_video(self, video_id: str) -> PlayableVideo | None:
        request = video_pb2.GetVideoRequest(video_id=video_id)
        try:
            response = await self._stub.GetVideo(
                request, metadata=self._metadata, timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise CatalogUnavailable(
                f"control's GetVideo failed: {exc.code().name} {exc.details()}"
            ) from exc
        return video_from_proto(response.video)

    async def close(self) -> None:
        await self._channel.close()


class CachedVideoCatalog:
    """Keeps each answer (found or not) for ``ttl_seconds``; concurrent misses share one call.

    Errors are not cached, so control coming back is noticed on the next request.
    """

    def __init__(self, inner: VideoCatalog, ttl_seconds: float, max_entries: int = 50_000) -> None:
        self._inner = inner
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, PlayableVideo | None]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[PlayableVideo | None]] = {}

    async def get_video(self, video_id: str) -> PlayableVideo | None:
        entry = self._entries.get(video_id)
        if entry is not None and entry[0] > time.monotonic():
            metrics.LOOKUPS.labels(result="cached").inc()
            return entry[1]
        pending = self._pending.get(video_id)
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._fetch(video_id)

    async def _fetch(self, video_id: str) -> PlayableVideo | None:
        future: asyncio.Future[PlayableVideo | None] = asyncio.get_running_loop().create_future()
        self._pending[video_id] = future
        try:
            video = await self._inner.get_video(video_id)
            metrics.LOOKUPS.labels(result="fetched").inc()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            metrics.LOOKUPS.labels(result="error").inc()
            future.set_exception(exc)
            future.exception()  # retrieved here, so a lone caller leaves no warning
            raise
        finally:
            del self._pending[video_id]
        future.set_result(video)
        self._remember(video_id, video)
        return video

    def _remember(self, video_id: str, video: PlayableVideo | None) -> None:
        self._entries[video_id] = (time.monotonic() + self._ttl, video)
        self._entries.move_to_end(video_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
