"""POST /v1/events against a running ingester and the real ClickHouse: what players see
(status, per-event reasons, CORS) and where the rows land (daily partitions)."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from clickhouse_driver import Client

from tests.analytics.conftest import launch, stop
from tests.analytics.helpers import Ingester, play_event
from vora import storage
from vora.config import Settings

MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def ingester(analytics_stack: Settings, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Ingester]:
    folder = tmp_path_factory.mktemp("ingest")
    running = launch(folder / "spool", folder, analytics_max_body_bytes=str(MAX_BODY),
                     analytics_flush_seconds="0.1", analytics_cors_origins='["https://player.example"]')
    yield running
    stop(running)


def request(ingester: Ingester, method: str, body: Any = None,
            headers: dict[str, str] | None = None, raw: bytes | None = None,
            chunked: bool = False) -> tuple[int, dict[str, str], dict[str, Any]]:
    port = int(ingester.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        payload: Any = iter([data[i:i + 8192] for i in range(0, len(data), 8192)]) \
            if chunked and data else data
        connection.request(method, "/v1/events", payload, headers or {}, encode_chunked=chunked)
        response = connection.getresponse()
        text = response.read()
        return response.status, dict(response.headers), json.loads(text) if text else {}
    finally:
        connection.close()


def test_rows_land_in_their_daily_partitions(ingester: Ingester, clickhouse: Client) -> None:
    video_id = storage.new_video_id()
    today = dt.datetime.now(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    days = [today - dt.timedelta(days=n) for n in (0, 1, 2)]
    events = [play_event(video_id, day.timestamp() + 0.25, position=n * 10.0)
              for n, day in enumerate(days)]
    events.append({**play_event(video_id, days[0].isoformat()), "event_id": None})
    del events[-1]["event_id"]
    status, _, reply = request(ingester, "POST", events)
    assert status == 202 and reply["accepted"] == 4 and reply["rejected"] == []
    ingester.wait_until(lambda s: s["durable_events"] == s["accepted_events"], 10, "flushed")

    rows = clickhouse.execute(
        "SELECT event_id, _partition_id, event_ms, position, rendition FROM PlaybackEvents"
        " WHERE video_id = %(v)s", {"v": video_id})
    found = {row[0]: row[1:] for row in rows}
    for n, (event, day) in enumerate(zip(events, days, strict=False)):
        assert found.pop(event["event_id"]) == (day.strftime("%Y%m%d"), 250, n * 10.0, "720p")
    [(assigned, (partition, *_))] = found.items()  # given on arrival when the player sent none
    assert uuid.UUID(assigned) and partition == days[0].strftime("%Y%m%d")


GOOD = {"video_id": "0b6f8a5e-2d4c-4d1e-9a7b-3c2e1f0a9b8c", "user_id": "viewer-1",
        "event_type": "buffer", "buffer_duration": 1.5}


@pytest.mark.parametrize(("body", "reason"), [
    ({**GOOD, "position": "ten"}, "position must be a number"),
    ({**GOOD, "buffer_duration": True}, "buffer_duration must be a number"),
    ({**GOOD, "position": -1}, "position must be between 0"),
    ({k: v for k, v in GOOD.items() if k != "video_id"}, "video_id is required"),
    ({k: v for k, v in GOOD.items() if k != "event_type"}, "event_type is required"),
    ({**GOOD, "event_type": "dance"}, "event_type must be one of"),
    ({**GOOD, "video_id": "../../etc/passwd"}, "video_id: video id must be"),
    ({**GOOD, "user_id": "x" * 20_000}, "user_id must be 1 to 128"),
    ({**GOOD, "event_id": "short"}, "event_id must be 8 to 128"),
    ({**GOOD, "rendition": "huge" * 100}, "rendition must look like 720p"),
    ({**GOOD, "event_time": "yesterday"}, "event_time is not an ISO 8601 time"),
    ({**GOOD, "event_time": "2026-01-01T00:00:00"}, "event_time needs a zone"),
    ({**GOOD, "event_time": 1.0}, "event_time must be within the last 30 days"),
    ([42], "each event must be a JSON object"),
])
def test_bad_events_are_refused_with_the_reason(ingester: Ingester, body: Any,
                                                reason: str) -> None:
    status, _, reply = request(ingester, "POST", body)
    assert status == 400
    assert reply["error"] == "no valid events in the body"
    assert len(reply["rejected"]) == 1 and reply["rejected"][0]["index"] == 0
    assert reason in reply["rejected"][0]["reason"]


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "not valid JSON"),
    (b'{"position": NaN', "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b'"play"', "one event object or an array"),
    (b"[]", "no events"),
])
def test_unusable_bodies_get_400(ingester: Ingester, raw: bytes, reason: str) -> None:
    status, _, reply = request(ingester, "POST", raw=raw)
    assert status == 400 and reason in reply["error"]


def test_nan_is_no_number(ingester: Ingester) -> None:
    raw = json.dumps({**GOOD, "position": float("nan")}).encode()
    status, _, reply = request(ingester, "POST", raw=raw)
    assert status == 400 and "not valid JSON" in reply["error"]


def test_a_mixed_batch_keeps_the_good_events(ingester: Ingester) -> None:
    good = {**GOOD, "video_id": storage.new_video_id(), "event_time": time.time()}
    status, _, reply = request(ingester, "POST", [good, {**good, "position": []}, good])
    assert status == 202
    assert reply["accepted"] == 2
    assert reply["rejected"] == [{"index": 1, "reason": "position must be a number of seconds"}]
    assert reply["rejected_count"] == 1


def test_many_bad_events_get_a_short_answer(ingester: Ingester) -> None:
    status, _, reply = request(ingester, "POST", [{}] * 5000)
    assert status == 400
    assert reply["rejected_count"] == 5000 and len(reply["rejected"]) == 100
    status, _, reply = request(ingester, "POST", [{}] * 10_001)
    assert status == 400 and "at most 10000 events" in reply["error"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_gets_413(ingester: Ingester, chunked: bool) -> None:
    raw = json.dumps([GOOD] * (MAX_BODY // 50)).encode()
    assert len(raw) > MAX_BODY
    status, _, reply = request(ingester, "POST", raw=raw, chunked=chunked)
    assert status == 413 and str(MAX_BODY) in reply["error"]


def test_cors_preflight_and_post_from_a_player_origin(ingester: Ingester) -> None:
    origin = {"Origin": "https://player.example"}
    status, headers, _ = request(ingester, "OPTIONS", headers={
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "https://player.example"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in headers["Access-Control-Allow-Headers"]
    event = {**GOOD, "video_id": storage.new_video_id()}
    status, headers, _ = request(ingester, "POST", event,
                                 headers={**origin, "Content-Type": "text/plain"})
    assert status == 202 and headers["Access-Control-Allow-Origin"] == "https://player.example"
    _, headers, _ = request(ingester, "OPTIONS", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in headers


def test_health_and_metrics(ingester: Ingester) -> None:
    health = ingester.health()
    assert health["status"] == "ok" and health["clickhouse"] == "up"
    port = int(ingester.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    for name in ("events_accepted_total", "events_rejected_total", "events_written_total",
                 "events_spooled_total", "events_dropped_total", "batch_events_bucket",
                 "flush_seconds_bucket", "spool_bytes", "clickhouse_up"):
        assert f"vora_analytics_{name}" in text


def test_unknown_fields_are_ignored(ingester: Ingester) -> None:
    status, _, reply = request(ingester, "POST", {**GOOD, "player": "hls.js 1.5"})
    assert status == 202 and reply["accepted"] == 1
