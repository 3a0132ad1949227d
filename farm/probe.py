"""ffprobe a source, refuse what cannot or must not be transcoded, describe the rest."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

from farm import process
from farm.limits import ALLOWED_DEMUXERS, SUPPORTED_CONTAINERS, input_options, probe_limits
from vora import jobs
from vora.config import Settings


class BadMediaError(Exception):
    """The source can never be transcoded; the message says why, for a person to act on."""


def demuxer_for(format_name: str) -> str | None:
    """The allow-listed demuxer for ffprobe's ``format_name`` (e.g. 'mov,mp4,m4a,...')."""
    for name in format_name.split(","):
        if name in ALLOWED_DEMUXERS:
            return ALLOWED_DEMUXERS[name]
    return None


def ffprobe_args(settings: Settings, path: Path) -> list[str]:
    args = [settings.farm_ffprobe, "-v", "error", "-hide_banner"]
    for key, value in input_options(settings).items():
        args += [f"-{key}", str(value)]
    return [*args, "-show_format", "-show_streams", "-of", "json", "file:" + str(path)]


async def ffprobe(settings: Settings, path: Path) -> dict[str, Any]:
    """ffprobe's JSON for ``path``; BadMediaError when no allowed demuxer can read it."""
    try:
        out = await process.run(ffprobe_args(settings, path), limits=probe_limits(settings),
                                timeout=settings.farm_probe_timeout_seconds)
    except process.FfmpegTimeout:
        raise BadMediaError("the file took too long to inspect; it may be damaged") from None
    except process.FfmpegError as exc:
        raise BadMediaError(_explain_probe_failure(exc.stderr)) from None
    data: dict[str, Any] = json.loads(out or "{}")
    return data


def _explain_probe_failure(stderr: str) -> str:
    if "not on whitelist" in stderr:
        return f"the file is not a supported container; upload {SUPPORTED_CONTAINERS}"
    if "Invalid data" in stderr or "could not find codec" in stderr.lower():
        return ("the file could not be read as video; it may be damaged or in an "
                f"unsupported format ({SUPPORTED_CONTAINERS} are supported)")
    return "the file could not be read as video: " + (stderr.strip().splitlines() or ["?"])[-1]


def describe(data: dict[str, Any], settings: Settings) -> tuple[jobs.ProbeResult, str]:
    """Validate ffprobe's JSON against the farm's limits; return the result and demuxer."""
    fmt = data.get("format") or {}
    demuxer = demuxer_for(str(fmt.get("format_name", "")))
    if demuxer is None:
        raise BadMediaError(f"the file is not a supported container; upload {SUPPORTED_CONTAINERS}")
    streams = data.get("streams") or []
    video = _first(streams, "video")
    audio = _first(streams, "audio")
    if video is None:
        raise BadMediaError("the file has no video stream")
    if not video.get("codec_name"):
        raise BadMediaError("the video stream uses a codec this farm cannot decode")
    rotation = _rotation(video)
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if rotation % 180:
        width, height = height, width
    result = jobs.ProbeResult(
        duration_seconds=_duration(fmt, video), has_video=True, has_audio=audio is not None,
        width=width, height=height, rotation=rotation, frame_rate=_frame_rate(video),
        video_codec=str(video.get("codec_name", "")),
        audio_codec=str(audio.get("codec_name", "")) if audio else "",
        bit_rate=_int(fmt.get("bit_rate")), format_name=str(fmt.get("format_name", "")),
    )
    _check_limits(result, settings)
    return result, demuxer


def _first(streams: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    for stream in streams:
        # Cover art in an audio file is a one-frame "video" stream; it is not a video.
        if stream.get("codec_type") == kind and not (stream.get("disposition") or {}).get(
                "attached_pic"):
            return stream
    return None


def _check_limits(result: jobs.ProbeResult, settings: Settings) -> None:
    if result.width <= 0 or result.height <= 0:
        raise BadMediaError("the video stream has no picture size; the file may be damaged")
    if result.width > settings.farm_max_width or result.height > settings.farm_max_height:
        raise BadMediaError(
            f"the video is {result.width}x{result.height}; the largest accepted is "
            f"{settings.farm_max_width}x{settings.farm_max_height}")
    if not math.isfinite(result.duration_seconds) or result.duration_seconds <= 0:
        raise BadMediaError("the file has no readable duration; it may be damaged or truncated")
    if result.duration_seconds > settings.farm_max_duration_seconds:
        raise BadMediaError(
            f"the video lasts {result.duration_seconds:.0f} s; the longest accepted is "
            f"{settings.farm_max_duration_seconds} s")
    if result.frame_rate <= 0 or result.frame_rate > 240:
        raise BadMediaError(f"the video's frame rate ({result.frame_rate:g}) is not usable")


def _rotation(video: dict[str, Any]) -> int:
    for side in video.get("side_data_list") or []:
        if "rotation" in side:
            return round(float(side["rotation"])) % 360
    return _int((video.get("tags") or {}).get("rotate")) % 360


def _frame_rate(video: dict[str, Any]) -> float:
    for key in ("avg_frame_rate", "r_frame_rate"):
        try:
            rate = Fraction(str(video.get(key, "0/1")))
        except (ValueError, ZeroDivisionError):
            continue
        if rate > 0:
            return round(float(rate), 3)
    return 0.0


def _duration(fmt: dict[str, Any], video: dict[str, Any]) -> float:
    for value in (fmt.get("duration"), video.get("duration")):
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
    return 0.0


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


async def probe_file(settings: Settings, path: Path) -> tuple[jobs.ProbeResult, str]:
    return describe(await ffprobe(settings, path), settings)
