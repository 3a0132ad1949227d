"""The event parser on its own: fuzzed with hypothesis, and the time rules spelled out."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.events import COLUMNS, EVENT_TYPES, EventError, parse_body, parse_event

NOW = 1_780_000_000.0
ids = st.from_regex(r"[A-Za-z0-9_.:-]{8,64}", fullmatch=True)
valid_events = st.fixed_dictionaries(
    {"video_id": st.uuids(version=4).map(str), "user_id": ids,
     "event_type": st.sampled_from(sorted(EVENT_TYPES))},
    optional={"event_id": ids, "session_id": ids,
              "event_time": st.floats(NOW - 86400, NOW + 3600),
              "position": st.floats(0, 86400), "buffer_duration": st.floats(0, 600),
              "rendition": st.sampled_from(["360p", "720p", "1080p", "2160p"])},
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
# Any JSON object, with the real field names more likely than random ones.
hostile_events = st.dictionaries(
    st.sampled_from([*COLUMNS, "x"]) | st.text(max_size=5), json_values, max_size=12)


@settings(max_examples=100, deadline=None)
@given(valid_events)
def test_valid_events_round_trip(event: dict[str, Any]) -> None:
    row: dict[str, Any] = dict(zip(COLUMNS, parse_event(event, NOW), strict=True))
    assert row["video_id"] == event["video_id"]
    assert row["event_type"] == event["event_type"]
    assert row["event_id"] == event.get("event_id", row["event_id"]) and row["event_id"]
    assert row["session_id"] == event.get("session_id", "")
    assert row["position"] == event.get("position", 0.0)
    assert row["rendition"] == event.get("rendition", "")
    assert row["received_time"] == int(NOW)
    when = event.get("event_time", NOW)
    assert abs(row["event_time"] + row["event_ms"] / 1000 - when) <= 0.001
    assert 0 <= row["event_ms"] <= 999


@settings(max_examples=120, deadline=None)
@given(hostile_events)
def test_any_object_is_accepted_or_refused_with_a_reason(event: dict[str, Any]) -> None:
    try:
        row = parse_event(event, NOW)
    except EventError as exc:
        assert str(exc)
    else:
        assert len(row) == len(COLUMNS)
        assert all(math.isfinite(v) for v in row if isinstance(v, float))


@settings(max_examples=120, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_body_parses_or_raises_event_error(body: bytes) -> None:
    try:
        parsed = parse_body(body, NOW)
    except EventError:
        return
    assert len(parsed.rows) + len(parsed.rejections) >= 1


def test_missing_event_ids_are_assigned_uniquely() -> None:
    event = {"video_id": "0b6f8a5e-2d4c-4d1e-9a7b-3c2e1f0a9b8c", "user_id": "u",
             "event_type": "play"}
    first, second = parse_event(event, NOW), parse_event(event, NOW)
    assert first[0] != second[0]


@pytest.mark.parametrize(("event_time", "expected"), [
    ("2026-05-28T20:26:40.125Z", (1_780_000_000, 125)),
    ("2026-05-28T22:26:40+02:00", (1_780_000_000, 0)),
    (1_780_000_000.9996, (1_780_000_001, 0)),
    (None, (1_780_000_000, 0)),
])
def test_event_time_forms(event_time: Any, expected: tuple[int, int]) -> None:
    event = {"video_id": "0b6f8a5e-2d4c-4d1e-9a7b-3c2e1f0a9b8c", "user_id": "u",
             "event_type": "play", "event_time": event_time}
    row = parse_event(event, NOW)
    assert (row[5], row[6]) == expected


def test_events_from_the_future_are_refused() -> None:
    event = {"video_id": "0b6f8a5e-2d4c-4d1e-9a7b-3c2e1f0a9b8c", "user_id": "u",
             "event_type": "play", "event_time": time.time() + 3 * 86400}
    with pytest.raises(EventError, match="not in the future"):
        parse_event(event, time.time())
