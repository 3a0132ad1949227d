"""Dashboard queries over PlaybackEvents, exact even when a replay stored an event twice.

A spool replay or a client retry can leave several rows with the same event_id, so every
query reads the events through ``_DEDUPED``: one row per event_id (GROUP BY event_id),
the time range applied first so ClickHouse reads only the partitions (days) it needs.
SQL stays portable down to ClickHouse 18.16 (no window functions).

Definitions a dashboard user can check:
- views: sessions with at least one ``play``; an event without session_id is its own session.
- unique viewers: distinct user_id among ``play`` events.
- watch time: per session, events in time order; each step where the position moved
  forward, not by a ``seek``, and by no more than twice the wall-clock time elapsed plus a
  second (fast playback, clock jitter) counts as watched.
- buffering ratio: buffer seconds (``buffer`` events' buffer_duration) over watch time
  plus buffer seconds.
- rendition mix: share of events that name a rendition, per rendition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from vora.storage import validate_video_id


class QueryClient(Protocol):
    """clickhouse_driver.Client fits; params use its %(name)s style."""

    def execute(self, query: str, params: dict[str, Any] | None = None) -> Any: ...


@dataclass(frozen=True)
class TimeRange:
    """[since, until) in UTC, naive datetimes as ClickHouse returns them."""

    since: datetime
    until: datetime


@dataclass(frozen=True)
class VideoSummary:
    video_id: str
    views: int
    unique_viewers: int
    events: int
    watch_seconds: float
    buffering_seconds: float

    @property
    def buffering_ratio(self) -> float:
        total = self.watch_seconds + self.buffering_seconds
        return self.buffering_seconds / total if total else 0.0


# The inner query renames the columns so that the outer aliases (which keep the column
# names for the queries built on it) never shadow what they aggregate: ClickHouse 18.16
# resolves aliases before columns.
_DEDUPED = """
    SELECT event_id, any(raw_video_id) AS video_id, any(raw_user_id) AS user_id,
           any(raw_session_id) AS session_id, any(raw_event_type) AS event_type,
           any(raw_event_time) AS event_time, any(raw_event_ms) AS event_ms,
           any(raw_position) AS position, any(raw_rendition) AS rendition,
           any(raw_buffer_duration) AS buffer_duration
    FROM (
        SELECT event_id, video_id AS raw_video_id, user_id AS raw_user_id,
               session_id AS raw_session_id, event_type AS raw_event_type,
               event_time AS raw_event_time, event_ms AS raw_event_ms,
               position AS raw_position, rendition AS raw_rendition,
               buffer_duration AS raw_buffer_duration
        FROM PlaybackEvents
        WHERE event_time >= %(since)s AND event_time < %(until)s {video_filter}
    )
    GROUP BY event_id
"""


def _deduped(video: bool) -> str:
    return _DEDUPED.format(video_filter="AND video_id = %(video_id)s" if video else "")


# Only the constant fragments above are interpolated; every value travels as a parameter.
_SUMMARY_SQL = f"""
        SELECT uniqExactIf(if(session_id = '', event_id, session_id), event_type = 'play'),
               uniqExactIf(user_id, event_type = 'play'),
               count(),
               sumIf(buffer_duration, event_type = 'buffer')
        FROM ({_deduped(True)})"""  # noqa: S608
_WATCH_SQL = f"""
        SELECT sum(watched) FROM (
            SELECT arraySum(arrayMap(
                       (step, elapsed_ms, kind) ->
                           if(kind != 'seek' AND step > 0 AND step <= elapsed_ms / 500 + 1,
                              step, 0),
                       arrayDifference(positions), arrayDifference(times), kinds)) AS watched
            FROM (
                SELECT arraySort((p, k) -> k, groupArray(position), groupArray(sort_key))
                           AS positions,
                       arraySort((t, k) -> k, groupArray(time_ms), groupArray(sort_key))
                           AS times,
                       arraySort((e, k) -> k, groupArray(event_type), groupArray(sort_key))
                           AS kinds
                FROM (
                    SELECT if(session_id = '', user_id, session_id) AS session,
                           toInt64(event_time) * 1000 + event_ms AS time_ms,
                           (time_ms, event_id) AS sort_key, position, event_type
                    FROM ({_deduped(True)})
                )
                GROUP BY session
            )
        )"""  # noqa: S608
_RENDITION_SQL = f"""
        SELECT rendition, count() FROM ({_deduped(True)})
        WHERE rendition != '' GROUP BY rendition"""  # noqa: S608
_PER_MINUTE_VIDEO_SQL = f"""
        SELECT toStartOfMinute(event_time) AS minute, count()
        FROM ({_deduped(True)})
        GROUP BY minute ORDER BY minute"""  # noqa: S608
_PER_MINUTE_SQL = f"""
        SELECT toStartOfMinute(event_time) AS minute, count()
        FROM ({_deduped(False)})
        GROUP BY minute ORDER BY minute"""  # noqa: S608


def _params(video_id: str | None, window: TimeRange) -> dict[str, Any]:
    params: dict[str, Any] = {"since": window.since, "until": window.until}
    if video_id is not None:
        params["video_id"] = validate_video_id(video_id)
    return params


def video_summary(client: QueryClient, video_id: str, window: TimeRange) -> VideoSummary:
    params = _params(video_id, window)
    views, viewers, events, buffering = client.execute(_SUMMARY_SQL, params)[0]
    return VideoSummary(video_id, int(views), int(viewers), int(events),
                        watch_seconds(client, video_id, window), float(buffering))


def watch_seconds(client: QueryClient, video_id: str, window: TimeRange) -> float:
    rows = client.execute(_WATCH_SQL, _params(video_id, window))
    return float(rows[0][0] or 0.0)


def rendition_mix(client: QueryClient, video_id: str, window: TimeRange) -> dict[str, float]:
    """Share of rendition-bearing events per rendition (shares sum to 1)."""
    rows = client.execute(_RENDITION_SQL, _params(video_id, window))
    total = sum(count for _, count in rows)
    return {rendition: count / total for rendition, count in rows} if total else {}


def events_per_minute(client: QueryClient, window: TimeRange,
                      video_id: str | None = None) -> list[tuple[datetime, int]]:
    """Distinct events per minute of event_time, oldest first."""
    rows = client.execute(_PER_MINUTE_VIDEO_SQL if video_id is not None else _PER_MINUTE_SQL,
                          _params(video_id, window))
    return [(minute.replace(tzinfo=None), int(count)) for minute, count in rows]
