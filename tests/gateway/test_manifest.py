"""The master playlist and the client hints, as plain functions."""

from __future__ import annotations

import m3u8
import pytest

from gateway.catalog import Rendition
from gateway.handlers import accepts_gzip
from gateway.manifest import HintError, parse_hints, render_master, select_variants

LADDER = [
    Rendition("720p", 1280, 720, 2_996_000, 2_650_000, "avc1.64001f,mp4a.40.2", 30.0),
    Rendition("360p", 640, 360, 856_000, 700_000, "avc1.4d401e,mp4a.40.2", 29.97),
    Rendition("1080p", 1920, 1080, 5_350_000, 4_900_000, "avc1.640028,mp4a.40.2", 30.0),
]


def test_master_lists_every_variant_with_all_attributes_by_bandwidth() -> None:
    text = render_master(select_variants(LADDER, parse_hints({}, None)))
    assert text.splitlines()[:3] == ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    playlists = m3u8.loads(text).playlists
    assert [p.uri for p in playlists] == ["360p/playlist.m3u8", "720p/playlist.m3u8",
                                         "1080p/playlist.m3u8"]
    first = playlists[0].stream_info
    assert (first.bandwidth, first.average_bandwidth) == (856_000, 700_000)
    assert first.codecs == "avc1.4d401e,mp4a.40.2"
    assert first.resolution == (640, 360)
    assert first.frame_rate == pytest.approx(29.97)


@pytest.mark.parametrize(
    ("args", "save_data", "names", "vary"),
    [
        ({}, None, ["360p", "720p", "1080p"], ("Save-Data",)),
        ({}, "on", ["360p"], ("Save-Data",)),
        ({}, " On ", ["360p"], ("Save-Data",)),
        ({}, "off", ["360p", "720p", "1080p"], ("Save-Data",)),
        ({"max_height": "720"}, "on", ["360p", "720p"], ()),
        ({"max_bandwidth": "3000000"}, None, ["360p", "720p"], ()),
        ({"max_height": "1080", "max_bandwidth": "1000000"}, None, ["360p"], ()),
        ({"max_height": "144"}, None, ["360p"], ()),  # never empty: the lowest stays
    ],
)
def test_hints_choose_variants(args: dict[str, str], save_data: str | None,
                               names: list[str], vary: tuple[str, ...]) -> None:
    hints = parse_hints(args, save_data)
    assert [r.name for r in select_variants(LADDER, hints)] == names
    assert hints.vary == vary


@pytest.mark.parametrize("value", ["", "-1", "0", "1e3", "abc", "9" * 12])
def test_malformed_hints_are_refused_with_the_name(value: str) -> None:
    with pytest.raises(HintError, match="max_height"):
        parse_hints({"max_height": value}, None)


@pytest.mark.parametrize(
    ("header", "accepted"),
    [("gzip", True), ("br, gzip;q=0.5", True), ("gzip;q=0", False), ("identity", False),
     ("", False), ("x-gzip", False)],
)
def test_gzip_negotiation(header: str, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted
