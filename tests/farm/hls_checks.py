"""What a player and an operator would check on a published HLS ladder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import m3u8
import pytest

from vora import jobs, storage
from vora.config import Settings


def download_output(s3, settings: Settings, video_id: str, into: Path) -> list[str]:
    keys = []
    prefix = storage.processed_prefix(video_id)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket_processed,
                                                            Prefix=prefix):
        for item in page.get("Contents", []):
            target = into / item["Key"].removeprefix(prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(settings.bucket_processed, item["Key"], str(target))
            keys.append(item["Key"].removeprefix(prefix))
    return sorted(keys)


def ffprobe_json(path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", *args, "-of", "json", str(path)],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    data: dict[str, Any] = json.loads(out)
    return data


def keyframe_times(segment: Path) -> tuple[list[float], bool]:
    """Video keyframe times in a segment, and whether its first video packet is one."""
    packets = ffprobe_json(segment, "-select_streams", "v:0", "-show_entries",
                           "packet=pts_time,flags")["packets"]
    keys = [round(float(p["pts_time"]), 3) for p in packets if "K" in p["flags"]]
    return keys, bool(packets) and "K" in packets[0]["flags"]


def check_ladder(root: Path, result: jobs.TranscodeResult, plan: jobs.LadderPlan,
                 source: jobs.ProbeResult) -> None:
    master = m3u8.load(str(root / "master.m3u8"))
    assert master.is_variant
    by_name = {r.name: r for r in result.renditions}
    assert sorted(p.uri for p in master.playlists) == sorted(
        f"{name}/playlist.m3u8" for name in by_name)
    keyframes: dict[str, list[float]] = {}
    for variant in master.playlists:
        rendition = by_name[variant.uri.split("/")[0]]
        info = variant.stream_info
        assert info.bandwidth == rendition.bandwidth >= rendition.average_bandwidth > 0
        assert info.resolution == (rendition.width, rendition.height)
        assert info.codecs == rendition.codecs
        keyframes[rendition.name] = check_rendition(root / rendition.name, rendition, plan, source)
    assert len({tuple(times) for times in keyframes.values()}) == 1, keyframes


def check_rendition(folder: Path, rendition: jobs.RenditionResult, plan: jobs.LadderPlan,
                    source: jobs.ProbeResult) -> list[float]:
    planned = next(r for r in plan.renditions if r.name == rendition.name)
    assert (rendition.width, rendition.height) == (planned.width, planned.height)
    assert rendition.width <= source.width and rendition.height <= source.height  # no upscaling
    playlist = m3u8.load(str(folder / "playlist.m3u8"))
    assert playlist.playlist_type == "vod" and playlist.is_endlist
    assert playlist.target_duration == plan.segment_seconds
    durations = [s.duration for s in playlist.segments]
    assert durations[:-1] == pytest.approx([plan.segment_seconds] * (len(durations) - 1),
                                           abs=0.05)
    assert 0 < durations[-1] <= plan.segment_seconds + 0.05
    assert sum(durations) == pytest.approx(source.duration_seconds, abs=0.2)
    bits = sum((folder / s.uri).stat().st_size * 8 for s in playlist.segments)
    assert rendition.average_bandwidth == pytest.approx(bits / sum(durations), rel=0.01)
    first = folder / playlist.segments[0].uri
    streams = ffprobe_json(first, "-show_streams")["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert (video["width"], video["height"]) == (rendition.width, rendition.height)
    # The stream's own profile: x264 may encode below the planned ceiling (ultrafast
    # makes Constrained Baseline), and CODECS must name what is really there.
    profile = {"High": "avc1.64", "Main": "avc1.4d", "Constrained Baseline": "avc1.42"}
    assert rendition.codecs.startswith(profile[video["profile"]])
    if video["profile"] != "Constrained Baseline":
        assert video["profile"].lower() == planned.profile
    assert int(rendition.codecs[9:11], 16) == video["level"]
    audio = [s for s in streams if s["codec_type"] == "audio"]
    if plan.has_audio:
        assert rendition.codecs.endswith(",mp4a.40.2")
        assert audio[0]["codec_name"] == "aac" and audio[0]["channels"] == 2
    else:
        assert audio == [] and "," not in rendition.codecs
    times: list[float] = []
    for segment in playlist.segments:
        keys, starts_with_key = keyframe_times(folder / segment.uri)
        assert starts_with_key, f"{rendition.name}/{segment.uri} does not start on a keyframe"
        times += keys
    return times


def check_thumbnail(path: Path, source: jobs.ProbeResult) -> None:
    assert path.read_bytes()[:2] == b"\xff\xd8"
    image = ffprobe_json(path, "-show_streams")["streams"][0]
    assert image["width"] <= min(640, source.width)
    assert image["width"] / image["height"] == pytest.approx(source.width / source.height,
                                                             rel=0.05)
