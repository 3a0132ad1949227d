"""Scenario 4, the stale node that cannot hear Temporal: a node freezes mid-encode and,
when it wakes, its link to Temporal is gone (a partition; S3 still reachable). Nothing
cancels its attempt, so it finishes the encode and publishes after the retry on another
node already published the video. Write-once output must survive that."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from temporalio.client import Client

from tests.conductor.test_end_to_end import make_source, upload_processing_video
from tests.e2e.helpers import CuttableProxy
from tests.reliability.farmrun import (
    FarmWorker,
    assert_playable_ladder,
    conductor,
    farm_workers,
    published,
    start_transcode,
    until_encoding,
)
from vora.config import Settings

HEARTBEAT_TIMEOUT = 5


async def test_a_partitioned_stale_attempt_does_not_replace_the_published_output(
        client: Client, stack: Settings, tmp_path: Path) -> None:
    """Pass: node 1 reaches Temporal through a proxy; it is frozen mid-encode and the
    proxy is cut. Node 2 finishes the retry (READY). Node 1 is thawed, finishes its
    encode without Temporal and ends its attempt; afterwards every published object
    keeps its ETag and Last-Modified, and the ladder is still whole and playable."""
    settings = stack.model_copy(update={"farm_heartbeat_timeout_seconds": HEARTBEAT_TIMEOUT})
    video = upload_processing_video(stack, await make_source(tmp_path, "1280x720", 12))
    farm_queue = f"reliability-farm-{uuid.uuid4().hex}"
    host, port = stack.temporal_address.rsplit(":", 1)
    link = CuttableProxy((host, int(port)), cut_after=1 << 60)
    try:
        with farm_workers(tmp_path, farm_queue, HEARTBEAT_TIMEOUT) as start:
            stale: FarmWorker = start("stale",
                                      VORA_TEMPORAL_ADDRESS=f"127.0.0.1:{link.port}")
            await asyncio.to_thread(stale.wait_polling)
            async with conductor(client, settings) as queue:
                handle = await start_transcode(client, queue, farm_queue, video,
                                               run_seconds=180)
                await until_encoding(handle, stale)
                stale.freeze()
                link.cut.set()  # from now on node 1 cannot reach Temporal
                start("healthy")
                outcome = await asyncio.wait_for(handle.result(), timeout=120)
            assert outcome.state == "READY", outcome
            before = await asyncio.to_thread(published, stack, video.video_id)

            stale.thaw()
            deadline = time.monotonic() + 60
            while stale.ffmpeg_pids() or any(stale.scratch.iterdir()):
                assert time.monotonic() < deadline, stale.log.read_text()[-3000:]
                await asyncio.sleep(0.2)
            after = await asyncio.to_thread(published, stack, video.video_id)
            log = stale.log.read_text(errors="replace")
    finally:
        link.close()

    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == [], f"the stale attempt rewrote {len(changed)} objects: {changed[:5]}\n" \
                          f"{log[-3000:]}"
    await asyncio.to_thread(assert_playable_ladder, stack, video.video_id, ["720p", "360p"],
                            tmp_path)
