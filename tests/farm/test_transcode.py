"""TRANSCODE through Temporal's ActivityEnvironment: real FFmpeg, real S3 of the stack."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from farm import metrics
from farm.activities import FarmActivities
from farm.objects import S3OutputStore
from farm.probe import probe_file
from farm.slots import SlotAllocator
from tests.farm.conftest import plan_for
from tests.farm.fake_nvml import FakeGpu, FakeNvml
from tests.farm.hls_checks import check_ladder, check_thumbnail, download_output
from vora import jobs, storage
from vora.config import Settings


async def transcode(activities: FarmActivities, video_id: str, upload_id: str,
                    plan: jobs.LadderPlan) -> tuple[jobs.TranscodeResult, list[object]]:
    env = ActivityEnvironment()
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.extend(details)
    result = await env.run(activities.transcode, jobs.TranscodeInput(video_id, upload_id, plan))
    return result, beats


@pytest.mark.parametrize(("name", "rungs"), [
    ("1080p", ["1080p", "720p", "360p"]),
    ("portrait", ["720p", "360p"]),
    ("odd", ["360p"]),
    ("noaudio", ["360p"]),
    ("vfr", ["360p"]),
    ("rotated", ["360p"]),
])
async def test_transcode_publishes_an_aligned_hls_ladder(
        farm_settings: Settings, activities: FarmActivities, media: Callable[[str], Path],
        uploaded: Callable[[Path], str], video_id: str, s3, tmp_path: Path,
        name: str, rungs: list[str]) -> None:
    source, _ = await probe_file(farm_settings, media(name))
    plan = plan_for(source, farm_settings)
    result, beats = await transcode(activities, video_id, uploaded(media(name)), plan)

    assert [r.name for r in result.renditions] == rungs
    assert result.pipeline == "cpu"
    assert result.master_key == storage.master_key(video_id)
    assert result.duration_seconds == pytest.approx(source.duration_seconds, abs=0.2)
    keys = download_output(s3, farm_settings, video_id, tmp_path)
    assert "master.m3u8" in keys and "thumbnail.jpg" in keys
    check_ladder(tmp_path, result, plan, source)
    check_thumbnail(tmp_path / "thumbnail.jpg", source)
    progress = [b for b in beats if isinstance(b, jobs.TranscodeHeartbeat) and b.pipeline == "cpu"]
    assert progress and progress[-1].percent == 100.0
    assert list(farm_settings.scratch_dir.iterdir()) == []  # scratch removed


async def test_a_retry_after_publishing_returns_the_published_result(
        farm_settings: Settings, activities: FarmActivities, media: Callable[[str], Path],
        uploaded: Callable[[Path], str], video_id: str, s3) -> None:
    source, _ = await probe_file(farm_settings, media("noaudio"))
    plan = plan_for(source, farm_settings)
    upload_id = uploaded(media("noaudio"))
    first, _ = await transcode(activities, video_id, upload_id, plan)
    before = s3.head_object(Bucket=farm_settings.bucket_processed, Key=first.master_key)
    again, beats = await transcode(activities, video_id, upload_id, plan)
    assert again == first
    assert beats == []  # nothing was downloaded or encoded
    after = s3.head_object(Bucket=farm_settings.bucket_processed, Key=first.master_key)
    assert after["ETag"] == before["ETag"] and after["LastModified"] == before["LastModified"]


async def test_leftovers_of_an_unpublished_attempt_are_replaced(
        farm_settings: Settings, activities: FarmActivities, media: Callable[[str], Path],
        uploaded: Callable[[Path], str], video_id: str, s3, tmp_path: Path) -> None:
    """A crashed attempt left segments but no master; the next one must not mix with them."""
    stale = [storage.segment_key(video_id, "360p", 0), storage.segment_key(video_id, "360p", 7)]
    for key in stale:
        s3.put_object(Bucket=farm_settings.bucket_processed, Key=key, Body=b"stale attempt")
    source, _ = await probe_file(farm_settings, media("noaudio"))
    plan = plan_for(source, farm_settings)
    result, _ = await transcode(activities, video_id, uploaded(media("noaudio")), plan)
    keys = download_output(s3, farm_settings, video_id, tmp_path)
    assert "360p/seg_007.ts" not in keys
    assert (tmp_path / "360p/seg_000.ts").read_bytes() != b"stale attempt"
    check_ladder(tmp_path, result, plan, source)


async def test_a_published_video_is_never_removed_as_leftovers(
        farm_settings: Settings, video_id: str, s3) -> None:
    """A late attempt cleaning "leftovers" must not delete what another attempt published."""
    store = S3OutputStore(farm_settings, s3)
    keys = [storage.segment_key(video_id, "360p", 0), storage.playlist_key(video_id, "360p")]
    for key in keys:
        s3.put_object(Bucket=farm_settings.bucket_processed, Key=key, Body=b"published")
    assert store.remove_unpublished(video_id) == 2  # no master yet: an unfinished attempt
    for key in [*keys, storage.master_key(video_id)]:
        s3.put_object(Bucket=farm_settings.bucket_processed, Key=key, Body=b"published")
    assert store.remove_unpublished(video_id) == 0
    listed = s3.list_objects_v2(Bucket=farm_settings.bucket_processed,
                                Prefix=storage.processed_prefix(video_id))
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(
        [*keys, storage.master_key(video_id)])


async def test_objects_are_write_once(farm_settings: Settings, video_id: str, tmp_path: Path,
                                      s3) -> None:
    from farm.objects import AlreadyExistsError, Upload

    store = S3OutputStore(farm_settings, s3)
    body = tmp_path / "seg_000.ts"
    body.write_bytes(b"first")
    key = storage.segment_key(video_id, "360p", 0)
    store.put_new([Upload(body, key)])
    body.write_bytes(b"second")
    with pytest.raises(AlreadyExistsError):
        store.put_new([Upload(body, key)])
    got = s3.get_object(Bucket=farm_settings.bucket_processed, Key=key)
    assert got["Body"].read() == b"first" and got["ContentType"] == "video/mp2t"


async def test_a_gpu_failure_is_retried_on_the_cpu(
        farm_settings: Settings, media: Callable[[str], Path], uploaded: Callable[[Path], str],
        video_id: str, s3, tmp_path: Path) -> None:
    """The allocator believes in an NVENC card (a hardware double); real FFmpeg then fails
    to open CUDA here, and the job must finish on the CPU pipeline."""
    from farm import node

    async def has_nvenc(*_: object) -> bool:
        return True

    _, allocator = await node.discover(
        farm_settings.model_copy(update={"farm_gpu_slots": 1}),
        FakeNvml(gpus=[FakeGpu("NVIDIA L4", "GPU-l4")]), has_nvenc)
    activities = FarmActivities(farm_settings, S3OutputStore(farm_settings), allocator)
    before = metrics.GPU_FALLBACKS._value.get()
    source, _ = await probe_file(farm_settings, media("noaudio"))
    plan = plan_for(source, farm_settings)
    result, _ = await transcode(activities, video_id, uploaded(media("noaudio")), plan)
    assert result.pipeline == "cpu"
    assert metrics.GPU_FALLBACKS._value.get() == before + 1
    assert allocator.gpus["GPU-l4"].jobs == 0 and allocator.cpu_busy == 0
    download_output(s3, farm_settings, video_id, tmp_path)
    check_ladder(tmp_path, result, plan, source)


def process_alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def ffmpeg_processes_under(folder: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(folder).encode() in cmdline and b"ffmpeg" in cmdline:
                pids.append(int(entry.name))
    return pids


async def test_cancel_kills_ffmpeg_and_removes_scratch(
        farm_settings: Settings, media: Callable[[str], Path], uploaded: Callable[[Path], str],
        video_id: str, s3) -> None:
    # A slow preset keeps FFmpeg busy long enough to be cancelled mid-encode.
    slow = farm_settings.model_copy(update={"farm_x264_preset": "slower"})
    activities = FarmActivities(slow, S3OutputStore(slow), SlotAllocator(slow))
    source, _ = await probe_file(slow, media("1080p"))
    plan = plan_for(source, slow)
    env = ActivityEnvironment()
    seen: list[list[int]] = []

    def on_heartbeat(*details: object) -> None:
        beat = details[0] if details else None
        if isinstance(beat, jobs.TranscodeHeartbeat) and beat.pipeline == "cpu" and not seen:
            seen.append(ffmpeg_processes_under(slow.scratch_dir))
            env.cancel()

    env.on_heartbeat = on_heartbeat
    with pytest.raises(BaseException) as caught:
        await env.run(activities.transcode,
                      jobs.TranscodeInput(video_id, uploaded(media("1080p")), plan))
    assert "Cancel" in type(caught.value).__name__
    assert seen and seen[0], "ffmpeg was not running when the activity was cancelled"
    assert not [pid for pid in seen[0] if process_alive(pid)]
    assert ffmpeg_processes_under(slow.scratch_dir) == []
    assert list(slow.scratch_dir.iterdir()) == []
    listed = s3.list_objects_v2(Bucket=slow.bucket_processed,
                                Prefix=storage.processed_prefix(video_id))
    assert listed.get("KeyCount", 0) == 0  # nothing was published


async def test_remove_output_and_source(
        farm_settings: Settings, activities: FarmActivities, media: Callable[[str], Path],
        uploaded: Callable[[Path], str], video_id: str, s3) -> None:
    source, _ = await probe_file(farm_settings, media("noaudio"))
    upload_id = uploaded(media("noaudio"))
    await transcode(activities, video_id, upload_id, plan_for(source, farm_settings))
    env = ActivityEnvironment()
    for _ in range(2):  # idempotent
        await env.run(activities.remove_output, jobs.RemoveOutputInput(video_id))
        await env.run(activities.remove_source, jobs.RemoveSourceInput(upload_id))
    processed = s3.list_objects_v2(Bucket=farm_settings.bucket_processed,
                                   Prefix=storage.processed_prefix(video_id))
    raw = s3.list_objects_v2(Bucket=farm_settings.bucket_raw, Prefix=storage.raw_prefix(upload_id))
    assert processed.get("KeyCount", 0) == 0 and raw.get("KeyCount", 0) == 0
