"""Planning the ladder: a pure function of the probe result and the configured rungs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.ladder import (
    TranscodeSettings,
    UnplayableSourceError,
    output_frame_rate,
    plan_ladder,
    transcode_settings,
)
from vora.config import Settings
from vora.jobs import ProbeResult

CONFIG = transcode_settings(Settings())


def probe(width: int, height: int, *, audio: bool = True, fps: float = 30.0) -> ProbeResult:
    return ProbeResult(duration_seconds=10.0, has_video=True, has_audio=audio, width=width,
                       height=height, frame_rate=fps)


def sizes(source: ProbeResult, config: TranscodeSettings = CONFIG) -> list[tuple[str, int, int]]:
    return [(r.name, r.width, r.height) for r in plan_ladder(source, config).renditions]


@pytest.mark.parametrize(("width", "height", "expected"), [
    (1920, 1080, [("1080p", 1920, 1080), ("720p", 1280, 720), ("360p", 640, 360)]),
    (3840, 2160, [("1080p", 1920, 1080), ("720p", 1280, 720), ("360p", 640, 360)]),
    (1280, 720, [("720p", 1280, 720), ("360p", 640, 360)]),  # never upscaled
    (854, 480, [("360p", 640, 360)]),
    # portrait: the rung names the short side, the aspect ratio is kept
    (1080, 1920, [("1080p", 1080, 1920), ("720p", 720, 1280), ("360p", 360, 640)]),
    (720, 1280, [("720p", 720, 1280), ("360p", 360, 640)]),
    (1080, 1080, [("1080p", 1080, 1080), ("720p", 720, 720), ("360p", 360, 360)]),
    # odd sizes: one pixel of slack, every dimension even, never above the source
    (1919, 1079, [("1080p", 1918, 1078), ("720p", 1280, 720), ("360p", 640, 360)]),
    (1279, 721, [("720p", 1278, 720), ("360p", 638, 360)]),
    (2560, 1080, [("1080p", 2560, 1080), ("720p", 1706, 720), ("360p", 854, 360)]),
    # below every rung: one rendition at its own size
    (320, 240, [("240p", 320, 240)]),
    (175, 143, [("142p", 174, 142)]),
])
def test_rungs_never_exceed_the_source(width: int, height: int,
                                       expected: list[tuple[str, int, int]]) -> None:
    assert sizes(probe(width, height)) == expected


def test_bit_rates_and_segments_come_from_the_settings() -> None:
    plan = plan_ladder(probe(1920, 1080), CONFIG)
    assert plan.segment_seconds == CONFIG.segment_seconds
    assert [(r.video_bitrate, r.max_bitrate, r.audio_bitrate, r.profile)
            for r in plan.renditions] == [
        (5_000_000, 5_350_000, 128_000, "high"), (2_800_000, 2_996_000, 128_000, "high"),
        (800_000, 856_000, 96_000, "main")]


def test_a_source_without_audio_is_planned_without_audio() -> None:
    plan = plan_ladder(probe(1280, 720, audio=False), CONFIG)
    assert plan.has_audio is False
    assert {r.audio_bitrate for r in plan.renditions} == {0}


def test_an_audio_only_source_is_rejected_with_a_reason() -> None:
    with pytest.raises(UnplayableSourceError, match=r"^the file has no video stream"):
        plan_ladder(ProbeResult(duration_seconds=60, has_video=False, has_audio=True), CONFIG)


def test_a_tiny_video_is_rejected_with_its_size() -> None:
    with pytest.raises(UnplayableSourceError, match="the video is 96x64; upload a video"):
        plan_ladder(probe(96, 64), CONFIG)


@pytest.mark.parametrize(("source", "planned"), [
    (29.97, 29.97), (25.0, 25.0), (60.0, 60.0), (119.88, 59.94), (100.0, 50.0),
    (240.0, 60.0), (0.0, 30.0)])
def test_high_frame_rates_are_halved_to_at_most_60(source: float, planned: float) -> None:
    assert output_frame_rate(source) == planned


@given(width=st.integers(100, 8000), height=st.integers(100, 8000))
def test_every_plan_is_even_bounded_and_keeps_the_aspect(width: int, height: int) -> None:
    renditions = plan_ladder(probe(width, height), CONFIG).renditions
    assert renditions
    for r in renditions:
        assert r.width % 2 == 0 and r.height % 2 == 0
        assert r.width <= width and r.height <= height
        assert abs(r.width / r.height - width / height) <= 0.02 * (width / height) + 4 / r.height
