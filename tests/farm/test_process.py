"""process.run: the wall-clock timeout, the memory limit and progress parsing, on real FFmpeg."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from farm import process
from farm.limits import ProcessLimits
from farm.pipeline import EncodeJob, build_command
from farm.probe import probe_file
from vora import jobs
from vora.config import load_settings

ENDLESS = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i",
           "testsrc2=size=160x120:rate=10", "-progress", "pipe:1", "-stats_period", "0.2",
           "-f", "null", "-"]
LIMITS = ProcessLimits(memory_bytes=2 * 1024**3, cpu_seconds=60)


async def test_timeout_kills_ffmpeg_and_reports_progress_meanwhile() -> None:
    seen: list[process.Progress] = []

    async def on_progress(progress: process.Progress) -> None:
        seen.append(progress)

    started = time.monotonic()
    with pytest.raises(process.FfmpegTimeout, match="longer than 2 s"):
        await process.run(ENDLESS, limits=LIMITS, timeout=2, on_progress=on_progress)
    assert time.monotonic() - started < 5
    assert seen and seen[-1].out_seconds > 0.5 and not seen[-1].done


async def test_memory_limit_stops_a_greedy_ffmpeg() -> None:
    tiny = ProcessLimits(memory_bytes=64 * 1024**2, cpu_seconds=60)
    with pytest.raises(process.FfmpegError) as caught:
        await process.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                           "testsrc2=size=3840x2160:duration=1", "-f", "null", "-"],
                          limits=tiny, timeout=30)
    assert caught.value.returncode != 0


def test_progress_block_parsing() -> None:
    block = {"out_time_us": "2500000", "fps": "48.5", "speed": "1.62x", "progress": "continue"}
    assert process.parse_progress_block(block) == process.Progress(2.5, 48.5, 1.62, False)
    done = process.parse_progress_block({"out_time_us": "N/A", "speed": "N/A", "progress": "end"})
    assert done == process.Progress(0.0, 0.0, 0.0, True)


def make_source(path: Path) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=10:duration=20", "-c:v", "libx264", "-preset",
                    "ultrafast", str(path)], check=True, timeout=60)
    return path


async def test_progress_starts_before_the_thumbnail_frame_is_reached(
        tmp_path: Path) -> None:
    """The thumbnail is taken a quarter into the video; progress (the activity's heartbeat)
    must not wait for it. Read in real time (-re), 20 s of video put it 5 s away."""
    source = make_source(tmp_path / "long.mp4")
    settings = load_settings(farm_x264_preset="ultrafast")
    probe, demuxer = await probe_file(settings, source)
    rendition = jobs.RenditionPlan("90p", 160, 90, 100_000, 120_000, 64_000, "main")
    job = EncodeJob(source, demuxer, probe, [rendition], 2, 10.0, False, tmp_path / "out",
                    extra_global=["-re"])
    first = asyncio.Event()

    async def on_progress(progress: process.Progress) -> None:
        first.set()

    run = asyncio.create_task(process.run(build_command(job, settings), limits=LIMITS,
                                          timeout=60, on_progress=on_progress))
    try:
        await asyncio.wait_for(first.wait(), timeout=3.5)
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
