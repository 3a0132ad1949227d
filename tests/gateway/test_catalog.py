"""Video lookups over real gRPC: found, not found, refused, control down; the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gateway.catalog import CachedVideoCatalog, CatalogUnavailable, GrpcVideoCatalog, PlayableVideo
from tests.gateway.servers import ControlServer, FakeVideoService, free_port
from vora import storage
from vora.config import Settings
from vora.v1 import video_pb2


@pytest.fixture
def control(settings: Settings) -> Iterator[ControlServer]:
    server = ControlServer(
        FakeVideoService(settings.service_token))  # type: ignore[abstract]  # partial fake
    server.start()
    yield server
    server.stop()


def _ready(video_id: str) -> video_pb2.Video:
    rendition = video_pb2.Rendition(name="360p", width=640, height=360, bandwidth=900_000,
                                    average_bandwidth=800_000, codecs="avc1.4d401e,mp4a.40.2",
                                    frame_rate=25)
    broken = video_pb2.Rendition(name="../x", width=1, height=1, bandwidth=1, codecs='"',
                                 frame_rate=1)
    return video_pb2.Video(id=video_id, state=video_pb2.Video.STATE_READY,
                           renditions=[rendition, broken])


async def test_lookup_found_and_not_found(control: ControlServer, settings: Settings) -> None:
    video_id = storage.new_video_id()
    control.service.videos[video_id] = _ready(video_id)
    catalog = GrpcVideoCatalog(f"127.0.0.1:{control.port}", settings.service_token)
    try:
        video = await catalog.get_video(video_id)
        assert video is not None and video.ready and video.state == "ready"
        assert [r.name for r in video.renditions] == ["360p"]  # the unusable one left out
        assert await catalog.get_video(storage.new_video_id()) is None
    finally:
        await catalog.close()


async def test_wrong_service_token_or_control_down_is_unavailable(
        control: ControlServer) -> None:
    for target, token in ((f"127.0.0.1:{control.port}", "wrong-token"),
                          (f"127.0.0.1:{free_port()}", "any")):
        catalog = GrpcVideoCatalog(target, token, timeout_seconds=0.5)
        try:
            with pytest.raises(CatalogUnavailable):
                await catalog.get_video(storage.new_video_id())
        finally:
            await catalog.close()


class CountingCatalog:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    async def get_video(self, video_id: str) -> PlayableVideo | None:
        self.calls += 1
        await asyncio.sleep(0.05)
        if self.fail:
            raise CatalogUnavailable("control down")
        return PlayableVideo(video_id, True, "ready", ())


async def test_cache_shares_concurrent_lookups_and_does_not_keep_errors() -> None:
    inner = CountingCatalog()
    cache = CachedVideoCatalog(inner, ttl_seconds=0.3)
    video_id = storage.new_video_id()
    results = await asyncio.gather(*(cache.get_video(video_id) for _ in range(10)))
    assert inner.calls == 1 and all(r is results[0] for r in results)
    await cache.get_video(video_id)
    assert inner.calls == 1
    await asyncio.sleep(0.35)
    inner.fail = True
    with pytest.raises(CatalogUnavailable):
        await cache.get_video(video_id)
    inner.fail = False
    assert await cache.get_video(video_id) is not None
    assert inner.calls == 3
