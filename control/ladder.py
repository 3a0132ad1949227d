"""Planning the HLS ladder from what ffprobe found: a pure, deterministic function.

The workflow calls ``plan_ladder`` with the probe result and a snapshot of the
settings (``TranscodeSettings``) that a local activity recorded in the workflow's
history, so a replay plans exactly what the first run planned even if the
environment of the worker changed in between.

Rules (docs/conductor.md says why):
- a rung's ``height`` is the target of the picture's *short* side, so a portrait
  1080x1920 source gets 1080p = 1080x1920 and a landscape 1920x1080 one 1920x1080;
- never upscale: a rung is kept only when the source's short side reaches it (one
  pixel of slack, so a 1919x1079 source still gets 1080p, encoded at 1078 lines);
- a source smaller than every rung gets one rendition at its own (even) size;
- the long side keeps the display aspect ratio and every dimension is even
  (4:2:0 chroma needs it);
- above 60 fps the frame rate is halved until it fits (120 -> 60, 100 -> 50);
- no audio stream: the plan carries no audio; no video stream: rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from temporalio import activity

from vora.config import Settings
from vora.jobs import LadderPlan, ProbeResult, RenditionPlan

# The local activity that snapshots the settings the workflow needs into its history.
TRANSCODE_SETTINGS_ACTIVITY = "control.transcode_settings"

MIN_SHORT_SIDE = 100  # a rendition name is at least three digits ("100p")
MAX_FRAME_RATE = 60.0
DEFAULT_FRAME_RATE = 30.0  # when the container does not say


class UnplayableSourceError(ValueError):
    """The source can never become an HLS ladder; the message tells the uploader why."""


@dataclass
class LadderRungSpec:
    """One configured rung (settings.farm_ladder), as a plain dataclass for the history."""

    name: str
    height: int
    video_bitrate: int
    max_bitrate: int
    audio_bitrate: int
    profile: str = "high"


@dataclass
class TranscodeSettings:
    """What the workflow takes from the worker's settings, recorded once per run."""

    ladder: list[LadderRungSpec]
    segment_seconds: int
    heartbeat_timeout_seconds: int
    probe_timeout_seconds: int
    transcode_timeout_seconds: int


def transcode_settings(settings: Settings) -> TranscodeSettings:
    rungs = [
        LadderRungSpec(name=r.name, height=r.height, video_bitrate=r.video_bitrate,
                       max_bitrate=r.max_bitrate, audio_bitrate=r.audio_bitrate,
                       profile=r.profile)
        for r in settings.farm_ladder
    ]
    return TranscodeSettings(
        ladder=rungs,
        segment_seconds=settings.farm_segment_seconds,
        heartbeat_timeout_seconds=settings.farm_heartbeat_timeout_seconds,
        probe_timeout_seconds=settings.farm_probe_timeout_seconds,
        transcode_timeout_seconds=settings.farm_ffmpeg_timeout_seconds,
    )


class TranscodeSettingsActivity:
    """Local activity: hands the worker's settings to the workflow through its history."""

    def __init__(self, settings: Settings) -> None:
        self._snapshot = transcode_settings(settings)

    @activity.defn(name=TRANSCODE_SETTINGS_ACTIVITY)
    async def load(self) -> TranscodeSettings:
        return self._snapshot


def plan_ladder(probe: ProbeResult, config: TranscodeSettings) -> LadderPlan:
    """The renditions to encode for this source; raises UnplayableSourceError."""
    if not probe.has_video:
        raise UnplayableSourceError(
            "the file has no video stream; upload a video file, not audio only")
    short, long_ = sorted((probe.width, probe.height))
    if short < MIN_SHORT_SIDE:
        raise UnplayableSourceError(
            f"the video is {probe.width}x{probe.height}; upload a video at least "
            f"{MIN_SHORT_SIDE} pixels on its short side")
    if not config.ladder:
        raise UnplayableSourceError("no ladder is configured (VORA_FARM_LADDER is empty)")
    portrait = probe.height > probe.width
    renditions = [
        _rendition(spec, target, _long_side(target, short, long_), portrait, probe.has_audio)
        for spec, target in _rungs_for(short, config.ladder)
    ]
    return LadderPlan(renditions=renditions, segment_seconds=config.segment_seconds,
                      frame_rate=output_frame_rate(probe.frame_rate),
                      has_audio=probe.has_audio)


def _rungs_for(short: int, ladder: Sequence[LadderRungSpec]) -> list[tuple[LadderRungSpec, int]]:
    """Each kept rung with the short side to encode it at, tallest first."""
    tallest_first = sorted(ladder, key=lambda spec: spec.height, reverse=True)
    kept = [(spec, min(spec.height, _even_down(short)))
            for spec in tallest_first if spec.height <= short + 1]
    if kept:
        return kept
    # Smaller than every rung: one rendition at the source's own size, with the
    # bit rates of the smallest rung (never more bits than that rung would get).
    smallest = tallest_first[-1]
    native = _even_down(short)
    return [(LadderRungSpec(name=f"{native}p", height=native,
                            video_bitrate=smallest.video_bitrate,
                            max_bitrate=smallest.max_bitrate,
                            audio_bitrate=smallest.audio_bitrate,
                            profile=smallest.profile), native)]


def _long_side(target_short: int, source_short: int, source_long: int) -> int:
    """The long side for this short side at the source's aspect ratio, never above the source."""
    return min(_even(target_short * source_long / source_short), _even_down(source_long))


def _rendition(spec: LadderRungSpec, short_side: int, long_side: int, portrait: bool,
               has_audio: bool) -> RenditionPlan:
    width, height = (short_side, long_side) if portrait else (long_side, short_side)
    return RenditionPlan(name=spec.name, width=width, height=height,
                         video_bitrate=spec.video_bitrate, max_bitrate=spec.max_bitrate,
                         audio_bitrate=spec.audio_bitrate if has_audio else 0,
                         profile=spec.profile)


def output_frame_rate(source: float) -> float:
    """The source rate, halved until it is at most 60 fps (keeps frames evenly spaced)."""
    if source <= 0:
        return DEFAULT_FRAME_RATE
    rate = source
    while rate > MAX_FRAME_RATE:
        rate /= 2
    return round(rate, 3)


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def _even_down(value: int) -> int:
    return max(2, value - value % 2)
