"""Playback events: validating what players send and turning it into PlaybackEvents rows.

Everything here is pure (no I/O), so the parser can be fuzzed on its own. A player's
batch is checked event by event: good events are kept, each bad one is reported with
its index and a reason a player developer can act on.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from vora.storage import InvalidIdError, validate_rendition, validate_video_id

EVENT_TYPES = frozenset(
    {"play", "pause", "buffer", "seek", "ended", "error", "rendition_change", "heartbeat"}
)
MAX_ID_CHARS = 128
MAX_EVENTS_PER_BODY = 10_000
MAX_POSITION_SECONDS = 7 * 24 * 3600.0  # a week-long stream is the longest we expect
MAX_BUFFER_SECONDS = 24 * 3600.0
# Events older than this or from the future beyond the skew are refused: they would land in
# partitions nobody queries, or come from a broken clock.
MAX_AGE_SECONDS = 30 * 24 * 3600
MAX_CLOCK_SKEW_SECONDS = 24 * 3600
_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")

# The PlaybackEvents columns in insert order (see vora/migrations/clickhouse/0001).
COLUMNS = (
    "event_id", "video_id", "user_id", "session_id", "event_type", "event_time", "event_ms",
    "received_time", "position", "rendition", "buffer_duration",
)
# One row: the column values, times as Unix seconds (clickhouse-driver writes ints as is,
# and JSON keeps them exact in the spool).
Row = tuple[str, str, str, str, str, int, int, int, float, str, float]


class EventError(ValueError):
    """One event is unusable; the message names the field and what it must be."""


@dataclass(frozen=True)
class Rejection:
    index: int
    reason: str


@dataclass(frozen=True)
class ParsedBatch:
    rows: list[Row]
    rejections: list[Rejection]


def parse_body(body: bytes, now: float | None = None) -> ParsedBatch:
    """Parse a request body holding one event object or a JSON array of them."""
    try:
        document = orjson.loads(body)  # strict: no NaN, valid UTF-8 only
    except orjson.JSONDecodeError as exc:
        raise EventError(f"the body is not valid JSON: {exc}") from None
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list):
        raise EventError("the body must be one event object or an array of event objects")
    if not document:
        raise EventError("the batch holds no events")
    if len(document) > MAX_EVENTS_PER_BODY:
        raise EventError(f"at most {MAX_EVENTS_PER_BODY} events per request; split the batch")
    received = time.time() if now is None else now
    rows: list[Row] = []
    rejections: list[Rejection] = []
    for index, item in enumerate(document):
        try:
            rows.append(parse_event(item, received))
        except EventError as exc:
            rejections.append(Rejection(index, str(exc)))
    return ParsedBatch(rows, rejections)


def parse_event(item: Any, received: float) -> Row:
    """One event object to a row; raises EventError with the first problem found."""
    if not isinstance(item, dict):
        raise EventError("each event must be a JSON object")
    event_type = _required_str(item, "event_type")
    if event_type not in EVENT_TYPES:
        raise EventError(f"event_type must be one of {sorted(EVENT_TYPES)}")
    event_time, event_ms = _event_time(item.get("event_time"), received)
    return (
        _event_id(item.get("event_id")),
        _video_id(item),
        _id_field(item, "user_id", required=True),
        _id_field(item, "session_id", required=False),
        event_type,
        event_time,
        event_ms,
        int(received),
        _number(item, "position", MAX_POSITION_SECONDS),
        _rendition(item.get("rendition")),
        _number(item, "buffer_duration", MAX_BUFFER_SECONDS),
    )


def _required_str(item: dict[str, Any], name: str) -> str:
    value = item.get(name)
    if value is None:
        raise EventError(f"{name} is required")
    if not isinstance(value, str):
        raise EventError(f"{name} must be a string")
    return value


def _event_id(value: Any) -> str:
    """The client's id makes retries idempotent; without one we assign a fresh UUID."""
    if value is None:
        return str(uuid.uuid4())
    if not isinstance(value, str) or not 8 <= len(value) <= MAX_ID_CHARS \
            or not _ID_RE.fullmatch(value):
        raise EventError(
            f"event_id must be 8 to {MAX_ID_CHARS} characters of A-Z a-z 0-9 _ . : - "
            "(a UUID is best)")
    return value


def _video_id(item: dict[str, Any]) -> str:
    try:
        return validate_video_id(_required_str(item, "video_id"))
    except InvalidIdError as exc:
        raise EventError(f"video_id: {exc}") from None


def _id_field(item: dict[str, Any], name: str, *, required: bool) -> str:
    value = item.get(name)
    if value is None and not required:
        return ""
    value = _required_str(item, name)
    if not 1 <= len(value) <= MAX_ID_CHARS or not _ID_RE.fullmatch(value):
        raise EventError(f"{name} must be 1 to {MAX_ID_CHARS} characters of A-Z a-z 0-9 _ . : -")
    return value


def _number(item: dict[str, Any], name: str, maximum: float) -> float:
    value = item.get(name, 0.0)
    if value is None:
        return 0.0
    # bool is an int in Python, but `true` is no position.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventError(f"{name} must be a number of seconds")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= maximum:
        raise EventError(f"{name} must be between 0 and {maximum:.0f} seconds")
    return number


def _rendition(value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise EventError("rendition must be a string such as 720p")
    try:
        return validate_rendition(value)
    except InvalidIdError as exc:
        raise EventError(str(exc)) from None


def _event_time(value: Any, received: float) -> tuple[int, int]:
    """Unix seconds (a number) or an ISO 8601 string with a zone; missing means now."""
    if value is None:
        seconds = received
    elif isinstance(value, bool):
        raise EventError("event_time must be Unix seconds or an ISO 8601 string")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        seconds = _iso_seconds(value)
    else:
        raise EventError("event_time must be Unix seconds or an ISO 8601 string")
    if not math.isfinite(seconds) or not (
        received - MAX_AGE_SECONDS <= seconds <= received + MAX_CLOCK_SKEW_SECONDS
    ):
        raise EventError("event_time must be within the last 30 days and not in the future")
    whole, millis = divmod(round(seconds * 1000), 1000)
    return whole, millis


def _iso_seconds(value: str) -> float:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise EventError("event_time is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise EventError("event_time needs a zone, e.g. 2026-03-01T12:00:00Z")
    return parsed.timestamp()
