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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, cast

import msgspec
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
# The same character set for checking a whole column at once (see _all_ids).
_ID_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"

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


class EventColumns:
    """Events as one list per PlaybackEvents column, in COLUMNS order: the shape in which
    clickhouse-driver writes a block without transposing it (``columnar=True``). The
    spool keeps rows (``rows``/``from_rows``), so its files are the same as ever."""

    __slots__ = ("columns",)

    def __init__(self, columns: list[list[Any]] | None = None) -> None:
        self.columns = columns if columns is not None else [[] for _ in COLUMNS]

    def __len__(self) -> int:
        return len(self.columns[0])

    @property
    def event_ids(self) -> list[str]:
        return self.columns[0]

    def extend(self, other: EventColumns) -> None:
        for mine, theirs in zip(self.columns, other.columns, strict=True):
            mine.extend(theirs)

    def take(self, count: int) -> EventColumns:
        """Remove the first ``count`` events and return them."""
        head = [column[:count] for column in self.columns]
        for column in self.columns:
            del column[:count]
        return EventColumns(head)

    @classmethod
    def concat(cls, parts: Sequence[EventColumns]) -> EventColumns:
        if len(parts) == 1:
            return parts[0]
        joined = cls()
        for part in parts:
            joined.extend(part)
        return joined

    def rows(self) -> list[Row]:
        return cast(list[Row], list(zip(*self.columns, strict=True)))

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]]) -> EventColumns:
        """Raises ValueError for rows that are not all sequences of len(COLUMNS) values."""
        if any(not isinstance(row, list | tuple) or len(row) != len(COLUMNS) for row in rows):
            raise ValueError(f"each row must hold the {len(COLUMNS)} PlaybackEvents columns")
        if not rows:
            return cls()
        return cls([list(column) for column in zip(*rows, strict=True)])


@dataclass(frozen=True)
class ParsedBatch:
    events: EventColumns
    rejections: list[Rejection]


def parse_body(body: bytes, now: float | None = None) -> ParsedBatch:
    """Parse a request body holding one event object or a JSON array of them.

    A body whose events are all valid (the usual case) takes a fast path: msgspec decodes
    it into typed structs and whole columns are checked at once. Anything else (a bad
    event, an unusual body) is parsed again event by event, which yields exactly the same
    rows and a reason per bad event; tests hold the two paths to the same results.
    """
    received = time.time() if now is None else now
    fast = _parse_fast(body, received)
    if fast is not None:
        return ParsedBatch(fast, [])
    return _parse_slow(body, received)


def _parse_slow(body: bytes, received: float) -> ParsedBatch:
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
    rows: list[Row] = []
    rejections: list[Rejection] = []
    for index, item in enumerate(document):
        try:
            rows.append(parse_event(item, received))
        except EventError as exc:
            rejections.append(Rejection(index, str(exc)))
    return ParsedBatch(EventColumns.from_rows(rows), rejections)


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


# --- the fast path: a whole body of valid events, checked column by column ----------------


class _Event(msgspec.Struct, gc=False):
    """One event as the fast path decodes it. Types and bounds are parse_event's rules;
    what msgspec cannot check cheaply (character sets, event types, times) _parse_fast
    checks per column. Unknown fields are skipped, as in parse_event."""

    event_type: str
    video_id: str
    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
    event_id: Annotated[str, msgspec.Meta(min_length=8, max_length=MAX_ID_CHARS)] | None = None
    session_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)] | None = None
    event_time: float | str | None = None  # a JSON integer decodes to float, as float(value)
    position: Annotated[float, msgspec.Meta(ge=0.0, le=MAX_POSITION_SECONDS)] | None = None
    rendition: str | None = None
    buffer_duration: Annotated[float, msgspec.Meta(ge=0.0, le=MAX_BUFFER_SECONDS)] | None = None


_DECODER = msgspec.json.Decoder(list[_Event] | _Event)


def _parse_fast(body: bytes, received: float) -> EventColumns | None:
    """The columns of a body whose events are all valid; None sends the body to the
    event-by-event path, which gives the reasons (or the same rows, for odd bodies)."""
    # msgspec skips unknown fields without checking their UTF-8; orjson refuses the body.
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError:
            return None
    try:
        document = _DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    events: list[_Event] = [document] if isinstance(document, _Event) else document
    if not 0 < len(events) <= MAX_EVENTS_PER_BODY:
        return None
    times = _event_times(events, received)
    if times is None:
        return None
    event_ids = [str(uuid.uuid4()) if e.event_id is None else e.event_id for e in events]
    video_ids = [e.video_id for e in events]
    user_ids = [e.user_id for e in events]
    session_ids = ["" if e.session_id is None else e.session_id for e in events]
    event_types = [e.event_type for e in events]
    renditions = ["" if e.rendition is None else e.rendition for e in events]
    if not (EVENT_TYPES.issuperset(event_types) and _all_ids(event_ids)
            and _all_ids(user_ids) and _all_ids(session_ids)
            and _all_valid(validate_video_id, video_ids)
            and _all_valid(validate_rendition, renditions, allow_empty=True)):
        return None
    millis = [round(seconds * 1000) for seconds in times]
    return EventColumns([
        event_ids, video_ids, user_ids, session_ids, event_types,
        [m // 1000 for m in millis], [m % 1000 for m in millis], [int(received)] * len(events),
        [0.0 if e.position is None else e.position for e in events],
        renditions,
        [0.0 if e.buffer_duration is None else e.buffer_duration for e in events],
    ])


def _event_times(events: list[_Event], received: float) -> list[float] | None:
    """Event times as Unix seconds, or None when one is not acceptable."""
    values = [received if e.event_time is None else e.event_time for e in events]
    if str in set(map(type, values)):  # ISO 8601 strings among them (rare)
        try:
            values = [_event_time_seconds(value) for value in values]
        except EventError:
            return None
    times = cast(list[float], values)
    if not received - MAX_AGE_SECONDS <= min(times) <= max(times) \
            <= received + MAX_CLOCK_SKEW_SECONDS:
        return None
    return times


def _event_time_seconds(value: float | str) -> float:
    if isinstance(value, float):
        return value
    if len(value) > 64:
        raise EventError("event_time must be Unix seconds or an ISO 8601 string")
    return _iso_seconds(value)


def _all_ids(values: list[str]) -> bool:
    """Every value made of the id characters only (the decoder checked the lengths)."""
    joined = "".join(values)
    return joined.isascii() and not joined.encode("ascii").translate(None, _ID_BYTES)


def _all_valid(validate: Callable[[str], str], values: Iterable[str], *,
               allow_empty: bool = False) -> bool:
    """Each distinct value passes ``validate`` (players repeat video ids and renditions)."""
    try:
        for value in set(values):
            if value or not allow_empty:
                validate(value)
    except InvalidIdError:
        return False
    return True
