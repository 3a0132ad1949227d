"""Scenario 9, bombs whose declared size is harmless: every stream within the size limits,
yet decoding is huge. A 1.9 MB MP4 holding one hour of 320x240 (108,000 frames), and an
MKV with 48 video streams. FFmpeg must stay inside the farm's limits whatever the file
asks: the first ends FAILED at the wall-clock limit, the second READY from its first
video stream only."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path

from temporalio.client import Client

from tests.conductor.test_end_to_end import upload_processing_video, video_row
from tests.reliability.farmrun import (
    FarmWorker,
    assert_playable_ladder,
    cmdline,
    conductor,
    farm_workers,
    start_transcode,
)
from vora.config import Settings

FFMPEG_TIMEOUT = 8  # the farm's wall-clock limit for one encode, lowered for the test
SLACK_SECONDS = 6


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, timeout=60)


def _bombs(tmp_path: Path) -> tuple[Path, Path]:
    """(one hour of frames in 1.9 MB, 48 video streams), made by stream copy in ~1 s."""
    clip = tmp_path / "ten-seconds.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=320x240:rate=30:duration=10",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "9000", "-pix_fmt", "yuv420p",
            str(clip))
    listing = tmp_path / "list.txt"
    listing.write_text(f"file '{clip}'\n" * 360)
    hour = tmp_path / "hour.mp4"
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(hour))
    streams = tmp_path / "streams.mkv"
    _ffmpeg("-i", str(clip), *["-map", "0:v"] * 48, "-c", "copy", str(streams))
    return hour, streams


def _limits(pid: int) -> dict[str, str]:
    """The soft limits of a running process, by name, from /proc/PID/limits."""
    found = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name, soft = line[:26].strip(), line[26:47].strip()
        found[name] = soft
    return found


async def _ffmpeg_of(farm: FarmWorker, video_id: str) -> tuple[int, float]:
    """The pid of the farm's FFmpeg for ``video_id`` and when it was first seen."""
    deadline = time.monotonic() + 60
    while True:
        for pid in farm.ffmpeg_pids():
            if video_id.encode() in cmdline(pid):
                return pid, time.monotonic()
        assert time.monotonic() < deadline, "the farm never started FFmpeg for the bomb"
        await asyncio.sleep(0.05)


async def test_bombs_with_harmless_dimensions_stay_within_the_farm_limits(
        client: Client, stack: Settings, tmp_path: Path) -> None:
    """Pass: with an 8 s FFmpeg limit (CPU time 8 s x cores, address space the configured
    bytes, as /proc/PID/limits of the running FFmpeg shows), the hour-long 1.9 MB file ends
    FAILED after one attempt with a reason saying it took longer than the farm allows,
    at most 8 + 6 s after its FFmpeg started, and no FFmpeg of the farm is left; the
    48-stream file ends READY with a playable 240p-or-less ladder."""
    settings = stack.model_copy(update={"farm_ffmpeg_timeout_seconds": FFMPEG_TIMEOUT})
    hour_file, streams_file = _bombs(tmp_path)
    hour = upload_processing_video(stack, hour_file)
    streams = upload_processing_video(stack, streams_file)
    farm_queue = f"reliability-farm-{uuid.uuid4().hex}"
    with farm_workers(tmp_path, farm_queue, settings.farm_heartbeat_timeout_seconds) as start:
        farm: FarmWorker = start(
            "farm", VORA_FARM_FFMPEG_TIMEOUT_SECONDS=str(FFMPEG_TIMEOUT))
        await asyncio.to_thread(farm.wait_polling)
        async with conductor(client, settings) as queue:
            hour_run = await start_transcode(client, queue, farm_queue, hour, run_seconds=180)
            pid, started = await _ffmpeg_of(farm, hour.video_id)
            limits = _limits(pid)
            hour_outcome = await asyncio.wait_for(hour_run.result(), timeout=60)
            hour_seconds = time.monotonic() - started
            leftover = farm.ffmpeg_pids()
            streams_run = await start_transcode(client, queue, farm_queue, streams,
                                                run_seconds=180)
            streams_outcome = await asyncio.wait_for(streams_run.result(), timeout=90)

    cores = int(limits["Max cpu time"]) // FFMPEG_TIMEOUT
    assert cores >= 1 and int(limits["Max cpu time"]) == FFMPEG_TIMEOUT * cores, limits
    assert limits["Max address space"] == str(settings.farm_ffmpeg_memory_bytes), limits
    assert hour_outcome.state == "FAILED", hour_outcome
    assert "longer than the farm allows" in hour_outcome.reason, hour_outcome.reason
    assert hour_seconds <= FFMPEG_TIMEOUT + SLACK_SECONDS, f"{hour_seconds:.1f} s"
    assert leftover == [], f"FFmpeg still running after the limit: {leftover}"
    history = await hour_run.fetch_history()
    attempts = [e.activity_task_started_event_attributes.attempt for e in history.events
                if e.HasField("activity_task_started_event_attributes")]
    assert max(attempts) == 1, "a bomb is not retried"

    assert streams_outcome.state == "READY", streams_outcome
    row = video_row(stack, streams.video_id)
    assert row is not None and row["state"] == "READY", row
    names = [r["name"] for r in row["renditions"]]
    assert names and all(r["height"] <= 240 for r in row["renditions"]), row["renditions"]
    await asyncio.to_thread(assert_playable_ladder, stack, streams.video_id, names, tmp_path)
