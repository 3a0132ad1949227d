"""Scenario 4, the hung half: a farm node that freezes mid-encode (alive, holding its TCP
connections, silent) is caught by the transcode's heartbeat timeout, another node finishes
the video, and the frozen one, once it wakes up, cannot touch what was published.

A hung node is modelled as the whole node frozen: the farm worker and its FFmpeg get
SIGSTOP together. Freezing only the Python worker would leave FFmpeg encoding, which is
a different fault (a wedged event loop) and not what a hung machine, a stuck kernel or a
paused VM looks like. FFmpeg runs in its own session, so a process-group signal to the
worker would not reach it; the test stops each process below the worker by pid.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from temporalio.client import Client

from control.workflows import MEDIA_RETRY
from tests.conductor.test_end_to_end import make_source, upload_processing_video, video_row
from tests.reliability.farmrun import (
    FarmWorker,
    assert_playable_ladder,
    conductor,
    farm_workers,
    process_state,
    published,
    start_transcode,
    transcode_started,
    until_encoding,
)
from vora.config import Settings

HEARTBEAT_TIMEOUT = 5
# The retry's first backoff; the frozen attempt's retry cannot start before it.
RETRY_SECONDS = MEDIA_RETRY.initial_interval.total_seconds() if MEDIA_RETRY.initial_interval else 1
# Scheduling slack on a loaded 2-core machine: the server's timer, the healthy worker's poll.
SLACK_SECONDS = 4


async def _until_stale_attempt_ends(farm: FarmWorker, within: float = 40) -> None:
    """The thawed node's attempt is over: no FFmpeg under it, its scratch dir emptied."""
    deadline = time.monotonic() + within
    while farm.ffmpeg_pids() or any(farm.scratch.iterdir()):
        assert time.monotonic() < deadline, (
            f"the thawed node is still working:\n{farm.log.read_text()[-3000:]}")
        await asyncio.sleep(0.2)


async def test_a_frozen_farm_node_is_caught_by_the_heartbeat_timeout(
        client: Client, stack: Settings, tmp_path: Path) -> None:
    """Pass: with a 5 s heartbeat timeout, a node frozen (SIGSTOP of worker and FFmpeg)
    mid-encode is replaced: the transcode attempt that finishes is attempt 2, run by the
    second node, and it starts at most timeout + first retry backoff + 4 s after the
    freeze, while the frozen node is still frozen (so the heartbeat timeout, not a crash,
    caught it). The video ends READY; the master lists 720p and 360p, every segment each
    playlist lists exists and decodes. After SIGCONT the frozen node's attempt ends (FFmpeg
    gone, scratch emptied) and every published object keeps its ETag and Last-Modified."""
    settings = stack.model_copy(update={"farm_heartbeat_timeout_seconds": HEARTBEAT_TIMEOUT})
    video = upload_processing_video(stack, await make_source(tmp_path, "1280x720", 12))
    farm_queue = f"reliability-farm-{uuid.uuid4().hex}"
    with farm_workers(tmp_path, farm_queue, HEARTBEAT_TIMEOUT) as start:
        hung: FarmWorker = start("hung")
        await asyncio.to_thread(hung.wait_polling)
        async with conductor(client, settings) as queue:
            handle = await start_transcode(client, queue, farm_queue, video, run_seconds=180)
            percent = await until_encoding(handle, hung)
            hung.freeze()
            frozen_at = time.time()
            assert percent < 100, "the encode finished before the node froze"
            healthy: FarmWorker = start("healthy")
            outcome = await asyncio.wait_for(handle.result(), timeout=120)
        assert [process_state(pid) for pid in hung.frozen] == ["T"] * len(hung.frozen)
        attempt, started_at, identity = await transcode_started(handle)

        assert outcome.state == "READY", outcome
        assert attempt == 2, f"attempt {attempt} finished; expected the first retry"
        assert identity.startswith(f"{healthy.popen.pid}@"), identity
        caught_after = started_at - frozen_at
        assert 0 < caught_after <= HEARTBEAT_TIMEOUT + RETRY_SECONDS + SLACK_SECONDS, (
            f"the retry started {caught_after:.1f} s after the freeze")
        row = video_row(stack, video.video_id)
        assert row is not None and row["state"] == "READY", row
        assert [r["name"] for r in row["renditions"]] == ["720p", "360p"]
        await asyncio.to_thread(assert_playable_ladder, stack, video.video_id,
                                ["720p", "360p"], tmp_path)
        before = await asyncio.to_thread(published, stack, video.video_id)

        hung.thaw()
        await _until_stale_attempt_ends(hung)
        after = await asyncio.to_thread(published, stack, video.video_id)
        assert after == before, f"the late attempt changed the output:\n{hung.log.read_text()}"
