"""PROBE_SOURCE: what ffprobe finds, and hostile uploads refused without reading them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from farm.activities import FarmActivities
from farm.probe import probe_file
from vora import jobs, storage
from vora.config import Settings


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=60)


def unguarded_ffprobe(path: Path) -> str:
    """ffprobe as a careless service would call it: no whitelists."""
    return subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                          capture_output=True, text=True, timeout=30).stdout


async def probe(activities: FarmActivities, upload_id: str) -> jobs.ProbeResult:
    video_id = storage.new_video_id()
    return await ActivityEnvironment().run(activities.probe_source,
                                           jobs.ProbeInput(video_id, upload_id))


async def refused(activities: FarmActivities, upload_id: str) -> str:
    with pytest.raises(ApplicationError) as caught:
        await probe(activities, upload_id)
    assert caught.value.type == jobs.BAD_MEDIA_ERROR
    assert caught.value.non_retryable
    assert list(activities.settings.scratch_dir.iterdir()) == []  # removed on failure too
    return caught.value.message


@pytest.mark.parametrize(("name", "width", "height", "rate", "audio", "rotation"), [
    ("1080p", 1920, 1080, 30.0, True, 0),
    ("720p", 1280, 720, 25.0, True, 0),
    ("portrait", 720, 1280, 30.0, True, 0),
    ("odd", 641, 359, 24.0, True, 0),
    ("noaudio", 640, 360, 30.0, False, 0),
    ("rotated", 360, 640, 30.0, False, 90),
])
async def test_probe_describes_the_source(farm_settings: Settings,
                                          media: Callable[[str], Path], name: str,
                                          width: int, height: int, rate: float, audio: bool,
                                          rotation: int) -> None:
    result, demuxer = await probe_file(farm_settings, media(name))
    assert demuxer == ("matroska" if name == "720p" else "mov")
    assert (result.width, result.height, result.rotation) == (width, height, rotation)
    assert result.frame_rate == pytest.approx(rate, rel=0.01)
    assert result.has_video and result.has_audio is audio
    assert result.video_codec == "h264"
    assert 1.9 < result.duration_seconds < 4.2


async def test_variable_frame_rate_source_through_the_activity(
        activities: FarmActivities, media: Callable[[str], Path],
        uploaded: Callable[[Path], str]) -> None:
    result = await probe(activities, uploaded(media("vfr")))
    assert 0 < result.frame_rate <= 30.0 and result.duration_seconds > 3


async def test_probe_reads_only_the_start_and_end_of_a_large_upload(
        activities: FarmActivities, media: Callable[[str], Path],
        uploaded: Callable[[Path], str]) -> None:
    """An MP4 written with its index (moov) at the end, probed from 64 KiB of its start and
    64 KiB of its end: the same answer as probing the whole file."""
    source = media("1080p")
    assert source.stat().st_size > 10 * 64 * 1024
    activities.probe_window = (64 * 1024, 64 * 1024)
    windowed = await probe(activities, uploaded(source))
    whole, _ = await probe_file(activities.settings, source)
    assert windowed == whole


async def test_audio_only_is_bad_media(activities: FarmActivities, media: Callable[[str], Path],
                                       uploaded: Callable[[Path], str]) -> None:
    assert await refused(activities, uploaded(media("audioonly"))) == "the file has no video stream"


async def test_garbage_is_bad_media(activities: FarmActivities,
                                    uploaded: Callable[[bytes], str]) -> None:
    message = await refused(activities, uploaded(b"\x00\x01not a video at all" * 100))
    assert "not a supported container" in message or "could not be read" in message


async def test_absurd_dimensions_are_refused(activities: FarmActivities, tmp_path: Path,
                                             uploaded: Callable[[Path], str]) -> None:
    source = tmp_path / "wide.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=size=16000x16:duration=0.1:rate=10", "-c:v", "libx264",
           "-preset", "ultrafast", str(source))
    message = await refused(activities, uploaded(source))
    assert "16000x16" in message and "largest accepted" in message


def hls_playlist_pointing_at(target: Path) -> bytes:
    return (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n{target}\n"
            "#EXT-X-ENDLIST\n").encode()


async def test_hls_playlist_pointing_at_local_media_is_refused(
        activities: FarmActivities, farm_settings: Settings, tmp_path: Path,
        uploaded: Callable[[bytes], str]) -> None:
    """A playlist naming a local, perfectly playable file: unguarded ffprobe follows it
    (shown first, so this test proves the guard and not a broken fixture)."""
    local = tmp_path / "local.ts"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:duration=1", "-c:v", "libx264",
           "-preset", "ultrafast", "-f", "mpegts", str(local))
    evil = tmp_path / "original.mp4"
    evil.write_bytes(hls_playlist_pointing_at(local))
    assert '"codec_type": "video"' in unguarded_ffprobe(evil)
    message = await refused(activities, uploaded(evil.read_bytes()))
    assert "not a supported container" in message


async def test_hls_playlist_pointing_at_etc_passwd_is_refused(
        activities: FarmActivities, uploaded: Callable[[bytes], str]) -> None:
    message = await refused(activities, uploaded(hls_playlist_pointing_at(Path("/etc/passwd"))))
    assert "root:" not in message and "not a supported container" in message


async def test_concat_list_is_refused(activities: FarmActivities, media: Callable[[str], Path],
                                      uploaded: Callable[[bytes], str]) -> None:
    body = f"ffconcat version 1.0\nfile '{media('noaudio')}'\nfile '/etc/passwd'\n".encode()
    message = await refused(activities, uploaded(body))
    assert "root:" not in message and "not a supported container" in message


async def test_invalid_upload_id_is_non_retryable(activities: FarmActivities) -> None:
    with pytest.raises(ApplicationError) as caught:
        await probe(activities, "../../etc/passwd")
    assert caught.value.non_retryable and "upload id" in caught.value.message
