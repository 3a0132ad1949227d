"""Fixtures for the farm: short synthetic sources, the stack's S3, a ladder planner."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from farm.activities import FarmActivities
from farm.objects import S3OutputStore
from farm.slots import SlotAllocator
from vora import jobs, storage
from vora.config import Settings

SEGMENT_SECONDS = 2

# name -> (ffmpeg arguments after the lavfi inputs, file suffix). Short and small: the
# farm's real pipeline runs on them, only with the fast x264 preset.
SOURCES: dict[str, tuple[list[str], str]] = {
    "1080p": (["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=3",
               "-f", "lavfi", "-i", "sine=frequency=440:duration=3"], ".mp4"),
    "720p": (["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=4",
              "-f", "lavfi", "-i", "sine=frequency=220:duration=4"], ".mkv"),
    "portrait": (["-f", "lavfi", "-i", "testsrc2=size=720x1280:rate=30:duration=3",
                  "-f", "lavfi", "-i", "sine=duration=3"], ".mp4"),
    # 4:4:4 allows odd sizes (4:2:0 does not), so the farm must make them even.
    "odd": (["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=24:duration=3",
             "-f", "lavfi", "-i", "sine=duration=3", "-vf", "scale=641:359",
             "-pix_fmt", "yuv444p"], ".mp4"),
    "noaudio": (["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=3"], ".mp4"),
    "audioonly": (["-f", "lavfi", "-i", "sine=duration=3"], ".m4a"),
    # Frames dropped unevenly and timestamps kept: a variable frame rate source.
    "vfr": (["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=4",
             "-vf", "select='lt(n\\,30)+not(mod(n\\,3))+eq(mod(n\\,7)\\,1)'",
             "-fps_mode", "vfr"], ".mkv"),
    # Stored landscape, shown portrait: a display matrix, as phones write (see make()).
    "rotated": (["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=3"], ".mp4"),
}


@pytest.fixture(scope="session")
def farm_settings(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return stack.model_copy(update={
        "farm_x264_preset": "ultrafast", "farm_cpu_slots": 1, "farm_pipeline": "auto",
        "farm_scratch_dir": tmp_path_factory.mktemp("scratch"),
        "farm_progress_signal_seconds": 0.2, "farm_heartbeat_timeout_seconds": 3,
    })


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Build a named synthetic source once per session."""
    folder = tmp_path_factory.mktemp("media")
    built: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in built:
            args, suffix = SOURCES[name]
            path = folder / f"{name}{suffix}"
            codec = ["-c:v", "libx264", "-preset", "ultrafast"] if "testsrc2" in str(args) else []
            subprocess.run(["ffmpeg", "-v", "error", "-y", *args, *codec, "-shortest", str(path)],
                           check=True, timeout=60)
            if name == "rotated":  # FFmpeg 5.1 writes the rotation only when remuxing
                rotated = folder / f"{name}.rot{suffix}"
                subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path), "-c", "copy",
                                "-metadata:s:v:0", "rotate=90", str(rotated)],
                               check=True, timeout=60)
                path = rotated
            built[name] = path
        return built[name]

    return make


@pytest.fixture
def s3(stack: Settings):
    return storage.s3_client(stack)


@pytest.fixture
def uploaded(stack: Settings, s3) -> Iterator[Callable[[Path | bytes], str]]:
    """Put a source at bucket-raw/{upload_id}/original.mp4; removed afterwards."""
    keys: list[str] = []

    def put(source: Path | bytes) -> str:
        upload_id = storage.new_upload_id()
        body = source.read_bytes() if isinstance(source, Path) else source
        key = storage.raw_original_key(upload_id)
        s3.put_object(Bucket=stack.bucket_raw, Key=key, Body=body)
        keys.append(key)
        return upload_id

    yield put
    for key in keys:
        s3.delete_object(Bucket=stack.bucket_raw, Key=key)


@pytest.fixture
def video_id(stack: Settings, s3) -> Iterator[str]:
    """A fresh video id whose processed output is removed afterwards."""
    vid = storage.new_video_id()
    yield vid
    S3OutputStore(stack, s3).remove_output(vid)


@pytest.fixture
def activities(farm_settings: Settings) -> FarmActivities:
    return FarmActivities(farm_settings, S3OutputStore(farm_settings),
                          SlotAllocator(farm_settings))


def even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def plan_for(probe: jobs.ProbeResult, settings: Settings,
             segment_seconds: int = SEGMENT_SECONDS) -> jobs.LadderPlan:
    """What control plans (rung height = short side; never upscale); a test's stand-in
    for control's planner, which the farm must not import."""
    short, long_ = sorted((probe.width, probe.height))
    renditions = []
    for rung in settings.farm_ladder:
        if short + 1 < rung.height:
            continue
        target_short = min(rung.height, even(short - 1) if short % 2 else short)
        target_long = even(target_short * long_ / short)
        width, height = ((target_long, target_short) if probe.width >= probe.height
                         else (target_short, target_long))
        renditions.append(jobs.RenditionPlan(rung.name, width, height, rung.video_bitrate,
                                             rung.max_bitrate, rung.audio_bitrate, rung.profile))
    if not renditions:
        width, height = even(probe.width - 1), even(probe.height - 1)
        rung = settings.farm_ladder[-1]
        renditions.append(jobs.RenditionPlan(f"{min(width, height)}p", width, height,
                                             rung.video_bitrate, rung.max_bitrate,
                                             rung.audio_bitrate, rung.profile))
    return jobs.LadderPlan(renditions=renditions, segment_seconds=segment_seconds,
                           frame_rate=min(probe.frame_rate, 60.0), has_audio=probe.has_audio)


def new_id() -> str:
    return uuid.uuid4().hex
