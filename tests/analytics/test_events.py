"""The event parser on its own: fuzzed with hypothesis, and the time rules spelled out."""

from __future__ import annotations

import itertools
import json
import math
import time
import uuid
from contextlib import AbstractContextManager
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.events import (
    COLUMNS,
    EVENT_TYPES,
    EventColumns,
    EventError,
    ParsedBatch,
    _parse_fast,
    _parse_slow,
    parse_body,
    parse_event,
)

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
    assert len(parsed.events) + len(parsed.rejections) >= 1


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


# --- the fast path (msgspec, whole columns) against the event-by-event path ---------------

# Values near the edges of each rule, so that mutated events land on both sides of them.
edge_values: st.SearchStrategy[Any] = st.sampled_from([
    None, True, False, 0, -0.0, -1, 0.5, 604800, 604800.5, 86400.5, 1e30, 10**20, "",
    " ", "720p", "720p\n", "72p", "10800p", "a" * 7, "a" * 8, "a" * 128, "a" * 129, "é" * 9,
    "u 1", "u\n", "0b6f8a5e-2d4c-4d1e-9a7b-3c2e1f0a9b8c\n", "0B6F8A5E-2D4C-4D1E-9A7B-3C2E1F0A9B8C",
    "0b6f8a5e-2d4c-4d1e-9a7b-3c2e1f0a9b8c", "play", "PLAY", "2026-05-28T20:26:40.125Z",
    "2026-05-28T20:26:40", "x" * 65, NOW, NOW + 0.0005, NOW - 40 * 86400, NOW + 2 * 86400,
    int(NOW), [], {},
])
field_names = st.sampled_from([*COLUMNS, "x", "Event_Type"])


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    """Arrays of valid events, some with one field set to an edge or random value."""
    events = draw(st.lists(valid_events, min_size=1, max_size=6))
    for event in events:
        if draw(st.booleans()):
            event[draw(field_names)] = draw(edge_values | json_values)
    document: Any = events[0] if len(events) == 1 and draw(st.booleans()) else events
    return json.dumps(document).encode()  # orjson cannot write integers past 64 bits


def _both_paths(body: bytes) -> tuple[EventColumns | None, ParsedBatch]:
    """Both parsers on one body, with the same ids assigned to events that have none."""
    def counter() -> AbstractContextManager[Any]:
        ids = (uuid.UUID(int=n, version=4) for n in itertools.count())
        return mock.patch("analytics.events.uuid.uuid4", side_effect=lambda: next(ids))
    with counter():
        fast = _parse_fast(body, NOW)
    with counter():
        try:
            slow = _parse_slow(body, NOW)
        except EventError as exc:
            slow = ParsedBatch(EventColumns(), [])
            assert fast is None, f"fast path accepted a body refused with {exc}"
    return fast, slow


@settings(max_examples=100, deadline=None)
@given(st.lists(valid_events, min_size=1, max_size=20))
def test_valid_bodies_take_the_fast_path_with_the_same_rows(events: list[Any]) -> None:
    fast, slow = _both_paths(orjson.dumps(events))
    assert fast is not None
    assert fast.rows() == slow.events.rows() and not slow.rejections


@settings(max_examples=200, deadline=None)
@given(mutated_bodies())
def test_the_fast_path_accepts_only_what_the_slow_path_accepts_unchanged(body: bytes) -> None:
    fast, slow = _both_paths(body)
    if fast is None:  # declined only when there is a reason to give
        assert slow.rejections or not len(slow.events)
        return
    assert not slow.rejections
    assert fast.rows() == slow.events.rows()
    assert [tuple(map(type, row)) for row in fast.rows()] == \
        [tuple(map(type, row)) for row in slow.events.rows()]


VALID = {"video_id": "0b6f8a5e-2d4c-4d1e-9a7b-3c2e1f0a9b8c", "user_id": "u1",
         "event_type": "play", "event_id": "event-0001"}


@pytest.mark.parametrize("body", [
    # msgspec skips an unknown field without checking its UTF-8; orjson refuses the body.
    b'[{"video_id": "0b6f8a5e-2d4c-4d1e-9a7b-3c2e1f0a9b8c", "user_id": "u", '
    b'"event_type": "play", "junk": "\xff"}]',
    # Nested deeper than orjson allows, in a field nobody reads.
    orjson.dumps(VALID)[:-1] + b', "junk": ' + b"[" * 1100 + b"]" * 1100 + b"}",
    orjson.dumps([VALID] * 10_001),
    b"[]",
])
def test_bodies_orjson_refuses_are_refused(body: bytes) -> None:
    with pytest.raises(EventError):
        parse_body(body, NOW)


@pytest.mark.parametrize(("body", "expected"), [
    # Escaped keys mean the same fields; the last of duplicate keys wins.
    (b'{"video_id": "0b6f8a5e-2d4c-4d1e-9a7b-3c2e1f0a9b8c", "user_id": "u", '
     b'"event_type": "play", "\\u0070osition": 5, "position": 7}', 7.0),
    (b'{"video_id": "0b6f8a5e-2d4c-4d1e-9a7b-3c2e1f0a9b8c", "user_id": "u", '
     b'"event_type": "play", "position": 7, "\\u0070osition": 5}', 5.0),
    (b'{"video_id": "0b6f8a5e-2d4c-4d1e-9a7b-3c2e1f0a9b8c", "user_id": "u", '
     b'"event_type": "play", "position": 7, "position": null}', 0.0),
])
def test_odd_but_valid_bodies_read_the_same_on_both_paths(body: bytes, expected: float) -> None:
    fast, slow = _both_paths(body)
    assert fast is not None and fast.rows() == slow.events.rows()
    assert fast.columns[COLUMNS.index("position")] == [expected]


def test_one_bad_event_gets_its_reason_and_the_others_are_kept() -> None:
    events = [VALID, {**VALID, "user_id": "not ok"}, {**VALID, "position": True}]
    parsed = parse_body(orjson.dumps(events), NOW)
    assert len(parsed.events) == 1
    assert [(r.index, r.reason.split()[0]) for r in parsed.rejections] == \
        [(1, "user_id"), (2, "position")]
