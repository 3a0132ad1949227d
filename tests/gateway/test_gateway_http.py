"""The gateway on its own (what Varnish sees on a miss): headers, ranges, gzip, refusals."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import m3u8
import pytest

from tests.gateway.conftest import Delivery
from tests.gateway.http import fetch
from tests.gateway.servers import free_port, start_gateway
from vora import storage
from vora.v1 import video_pb2


def test_segment_headers_and_byte_ranges(delivery: Delivery) -> None:
    path = delivery.video.path("480p/seg_000.ts")
    local = (delivery.video.ladder.root / "480p" / "seg_000.ts").read_bytes()
    whole = fetch(delivery.gateway_url, path)
    assert whole.status == 200 and whole.body == local
    assert whole.header("Content-Length") == str(len(local))
    assert whole.header("Accept-Ranges") == "bytes"
    etag = whole.header("ETag")
    assert etag and etag.startswith('"')

    part = fetch(delivery.gateway_url, path, {"Range": "bytes=188-375"})
    assert part.status == 206
    assert part.header("Content-Range") == f"bytes 188-375/{len(local)}"
    assert part.body == local[188:376] and part.body[0] == 0x47  # an MPEG-TS sync byte

    tail = fetch(delivery.gateway_url, path, {"Range": "bytes=-100"})
    assert tail.status == 206 and tail.body == local[-100:]
    beyond = fetch(delivery.gateway_url, path, {"Range": f"bytes={len(local) + 10}-"})
    assert beyond.status == 416

    unchanged = fetch(delivery.gateway_url, path, {"If-None-Match": etag})
    assert unchanged.status == 304 and unchanged.body == b""

    head = fetch(delivery.gateway_url, path, method="HEAD")
    assert head.status == 200 and head.header("Content-Length") == str(len(local))


def test_playlists_are_gzipped_when_accepted(delivery: Delivery) -> None:
    path = delivery.video.path("240p/playlist.m3u8")
    local = (delivery.video.ladder.root / "240p" / "playlist.m3u8").read_bytes()
    plain = fetch(delivery.gateway_url, path)
    assert plain.body == local and plain.header("Content-Encoding") is None
    assert plain.header("Vary") == "Accept-Encoding"
    packed = fetch(delivery.gateway_url, path, {"Accept-Encoding": "gzip, br"})
    assert packed.header("Content-Encoding") == "gzip"
    assert gzip.decompress(packed.body) == local
    assert packed.header("ETag") != plain.header("ETag")
    assert packed.header("Cache-Control") == "public, max-age=31536000, immutable"
    # Through Varnish, both kinds of client get what they can read from one cached copy.
    via = fetch(delivery.varnish_url, path, {"Accept-Encoding": "gzip"})
    assert gzip.decompress(via.body) == local
    assert fetch(delivery.varnish_url, path).body == local
    master = fetch(delivery.gateway_url, delivery.video.path("master.m3u8"),
                   {"Accept-Encoding": "gzip"})
    assert master.header("Content-Encoding") == "gzip"
    assert m3u8.loads(gzip.decompress(master.body).decode()).is_variant


def _variants(delivery: Delivery, query: str = "", headers: dict[str, str] | None = None,
              ) -> tuple[list[int], str | None]:
    response = fetch(delivery.gateway_url, delivery.video.path(f"master.m3u8{query}"), headers)
    assert response.status == 200, response.body
    heights = [p.stream_info.resolution[1] for p in m3u8.loads(response.body.decode()).playlists]
    return heights, response.header("Vary")


def test_client_hints_choose_the_variant_set(delivery: Delivery) -> None:
    assert _variants(delivery) == ([240, 480], "Accept-Encoding, Save-Data")
    assert _variants(delivery, headers={"Save-Data": "on"}) == ([240], "Accept-Encoding, Save-Data")
    # Query hints win and the response no longer depends on the header.
    assert _variants(delivery, "?max_height=480", {"Save-Data": "on"}) == (
        [240, 480], "Accept-Encoding")
    assert _variants(delivery, "?max_height=300")[0] == [240]
    low = min(r.bandwidth for r in delivery.video.ladder.renditions)
    assert _variants(delivery, f"?max_bandwidth={low}")[0] == [240]
    # A cap below every rung still plays: the lowest rung stays.
    assert _variants(delivery, "?max_height=100")[0] == [240]
    bad = fetch(delivery.gateway_url, delivery.video.path("master.m3u8?max_height=tall"))
    assert bad.status == 400 and "max_height" in json.loads(bad.body)["error"]


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("expired", 403, "token expired"),
        ("forged", 403, "bad signature"),
        ("other_video", 403, "bad signature"),
        ("malformed", 403, "malformed"),
        ("unknown_video", 404, "no such video"),
        ("processing", 404, "not ready"),
        ("no_rendition", 404, "no rendition"),
        ("bad_segment", 404, "no segment"),
        ("bad_video_id", 404, "no such video"),
    ],
)
def test_refusals_say_why(delivery: Delivery, case: str, status: int, reason: str) -> None:
    video_id, token = delivery.video.video_id, delivery.video.token
    rest = "240p/seg_000.ts"
    if case == "expired":
        token = delivery.sign(video_id, ttl=-1)
    elif case == "forged":
        token = token[:-2] + ("00" if not token.endswith("00") else "11")
    elif case == "other_video":
        token = delivery.sign(storage.new_video_id())
    elif case == "malformed":
        token = "abc"
    elif case in ("unknown_video", "processing"):
        video_id = storage.new_video_id()
        token = delivery.sign(video_id)
        if case == "processing":
            delivery.control.videos[video_id] = video_pb2.Video(
                id=video_id, state=video_pb2.Video.STATE_PROCESSING)
    elif case == "no_rendition":
        rest = "1080p/seg_000.ts"
    elif case == "bad_segment":
        rest = "240p/seg_0001.ts"
    elif case == "bad_video_id":
        video_id = "not-a-uuid"
    response = fetch(delivery.gateway_url, f"/v1/play/{token}/{video_id}/{rest}")
    assert response.status == status
    assert response.header("Content-Type") == "application/json"
    assert reason in json.loads(response.body)["error"]
    if status == 403:
        assert response.header("Cache-Control") == "no-store"


def test_video_lookups_are_cached_in_process(delivery: Delivery) -> None:
    video_id = storage.new_video_id()
    delivery.control.videos[video_id] = video_pb2.Video(
        id=video_id, state=video_pb2.Video.STATE_FAILED)
    token = delivery.sign(video_id)
    before = delivery.control.calls
    for _ in range(5):
        assert fetch(delivery.gateway_url, f"/v1/play/{token}/{video_id}/master.m3u8").status == 404
    assert delivery.control.calls == before + 1


def test_health_and_metrics(delivery: Delivery) -> None:
    health = fetch(delivery.gateway_url, "/healthz")
    assert health.status == 200 and json.loads(health.body)["checks"] == {"s3": "ok"}
    metrics = fetch(delivery.gateway_url, "/metrics").body.decode()
    for name in ("vora_gateway_requests_total", "vora_gateway_request_seconds_bucket",
                 "vora_gateway_bytes_out_total", "vora_gateway_video_lookups_total"):
        assert name in metrics


def test_control_down_is_a_503_that_says_so(delivery: Delivery, tmp_path: Path) -> None:
    gateway, url = start_gateway(delivery.settings, free_port(), tmp_path)  # nobody listens
    try:
        token, video_id = delivery.video.token, delivery.video.video_id
        response = fetch(url, f"/v1/play/{token}/{video_id}/master.m3u8")
        assert response.status == 503
        assert response.header("Cache-Control") == "no-store"
        assert "video lookup unavailable" in json.loads(response.body)["error"]
        # The token is still checked first: a bad one is a 403 whatever control's state.
        forged = token[:-1] + ("1" if token.endswith("0") else "0")
        refused = fetch(url, f"/v1/play/{forged}/{video_id}/master.m3u8")
        assert refused.status == 403
    finally:
        gateway.stop()
