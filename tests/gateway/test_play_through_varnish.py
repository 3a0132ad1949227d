"""Play a real HLS ladder from S3 through Varnish and the gateway, as a player would."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import m3u8

from tests.gateway.conftest import Delivery
from tests.gateway.http import fetch


def _metric(delivery: Delivery, name: str, **labels: str) -> float:
    """Sum of a metric's samples on the gateway's /metrics matching ``labels``."""
    with urllib.request.urlopen(f"{delivery.gateway_url}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match[2])
    return total


def _playlist(delivery: Delivery, path: str) -> m3u8.M3U8:
    response = fetch(delivery.varnish_url, path)
    assert response.status == 200, response.body
    assert response.header("Content-Type") == "application/vnd.apple.mpegurl"
    return m3u8.loads(response.body.decode())


def test_master_manifest_follows_hls_authoring_rules(delivery: Delivery) -> None:
    response = fetch(delivery.varnish_url, delivery.video.path("master.m3u8"))
    assert response.status == 200
    assert response.header("Cache-Control") == "public, max-age=30"
    text = response.body.decode()
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in text
    master = m3u8.loads(text)
    assert master.is_variant
    bandwidths = [p.stream_info.bandwidth for p in master.playlists]
    assert bandwidths == sorted(bandwidths) and len(bandwidths) == 2
    ladder = {r.name: r for r in delivery.video.ladder.renditions}
    for playlist in master.playlists:
        info = playlist.stream_info
        rendition = ladder[playlist.uri.split("/")[0]]
        assert playlist.uri == f"{rendition.name}/playlist.m3u8"  # relative
        assert info.bandwidth == rendition.bandwidth
        assert info.average_bandwidth == rendition.average_bandwidth
        assert info.codecs == rendition.codecs
        assert info.resolution == (rendition.width, rendition.height)
        assert info.frame_rate == rendition.frame_rate


def test_every_playlist_and_segment_is_served_as_mpeg_ts(delivery: Delivery,
                                                          tmp_path: Path) -> None:
    master = _playlist(delivery, delivery.video.path("master.m3u8"))
    for variant in master.playlists:
        media = _playlist(delivery, delivery.video.path(variant.uri))
        assert media.is_endlist and media.playlist_type == "vod"
        assert media.segments
        rendition = variant.uri.split("/")[0]
        for segment in media.segments:
            path = delivery.video.path(f"{rendition}/{segment.uri}")
            response = fetch(delivery.varnish_url, path)
            assert response.status == 200
            assert response.header("Content-Type") == "video/mp2t"
            assert response.header("Cache-Control") == "public, max-age=31536000, immutable"
            assert int(response.header("Content-Length") or -1) == len(response.body)
            local = delivery.video.ladder.root / rendition / segment.uri
            assert response.body == local.read_bytes()
            copy = tmp_path / f"{rendition}-{segment.uri}"
            copy.write_bytes(response.body)
            probe = subprocess.run(
                ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json",
                 str(copy)], capture_output=True, text=True, check=True, timeout=30,
            )
            info = json.loads(probe.stdout)
            assert info["format"]["format_name"] == "mpegts"
            assert {s["codec_type"] for s in info["streams"]} == {"video", "audio"}


def test_ffmpeg_reads_the_whole_stream_from_the_master_url(delivery: Delivery) -> None:
    url = delivery.varnish_url + delivery.video.path("master.m3u8")
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-v", "error", "-i", url, "-map", "0:v:0", "-map", "0:a:0",
         "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_thumbnail_is_a_jpeg(delivery: Delivery) -> None:
    response = fetch(delivery.varnish_url, delivery.video.path("thumbnail.jpg"))
    assert response.status == 200
    assert response.header("Content-Type") == "image/jpeg"
    assert response.body[:3] == b"\xff\xd8\xff"


def test_cached_segment_with_a_bad_token_never_reaches_the_gateway(delivery: Delivery) -> None:
    path = delivery.video.path("240p/seg_001.ts")
    fetch(delivery.varnish_url, path)
    cached = fetch(delivery.varnish_url, path)
    assert cached.status == 200 and cached.header("X-Cache") == "HIT"
    before = _metric(delivery, "vora_gateway_requests_total")
    token = delivery.video.token
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    expired = delivery.sign(delivery.video.video_id, ttl=-10)
    other = delivery.sign("6f1c1d1e-0a0b-4c0d-8e0f-101112131415")
    for bad, reason in ((forged, "bad signature"), (expired, "expired"), (other, "bad signature")):
        refused = fetch(delivery.varnish_url, delivery.video.path("240p/seg_001.ts", bad))
        assert refused.status == 403
        assert reason in json.loads(refused.body)["error"]
        assert refused.body != cached.body
    assert _metric(delivery, "vora_gateway_requests_total") == before


def test_one_cached_copy_serves_every_viewer(delivery: Delivery) -> None:
    path = "480p/seg_000.ts"
    first = fetch(delivery.varnish_url, delivery.video.path(path))
    segments_fetched = _metric(delivery, "vora_gateway_requests_total", kind="segment")
    for _ in range(3):
        viewer = delivery.sign(delivery.video.video_id, ttl=600 + _)
        again = fetch(delivery.varnish_url, delivery.video.path(path, viewer))
        assert again.status == 200 and again.body == first.body
        assert again.header("X-Cache") == "HIT"
    assert _metric(delivery, "vora_gateway_requests_total", kind="segment") == segments_fetched
