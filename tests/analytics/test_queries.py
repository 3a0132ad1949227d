"""Dashboard queries on hand-made sessions, stored twice as a replay would: every figure
is the one a person computes from the events once."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from clickhouse_driver import Client

from analytics import queries
from analytics.events import Row
from analytics.sink import INSERT_SQL
from vora import storage

T0 = 1_772_359_200  # 2026-03-01 10:00:00 UTC
WINDOW = queries.TimeRange(dt.datetime(2026, 3, 1, 9), dt.datetime(2026, 3, 1, 11))

# (session, user, type, seconds after T0, position, rendition, buffer seconds)
SESSIONS = [
    ("s1", "u1", "play", 0, 0.0, "720p", 0.0),
    ("s1", "u1", "heartbeat", 10, 10.0, "720p", 0.0),        # +10 watched
    ("s1", "u1", "buffer", 12, 10.0, "720p", 2.0),
    ("s1", "u1", "heartbeat", 22, 20.0, "1080p", 0.0),       # +10
    ("s1", "u1", "seek", 23, 100.0, "1080p", 0.0),           # a jump, not watching
    ("s1", "u1", "heartbeat", 33, 110.0, "1080p", 0.0),      # +10
    ("s1", "u1", "pause", 35, 112.0, "1080p", 0.0),          # +2
    ("s1", "u1", "play", 95, 112.0, "1080p", 0.0),           # paused: +0
    ("s1", "u1", "ended", 100, 117.0, "1080p", 0.0),         # +5
    ("s2", "u2", "play", 0, 0.0, "360p", 0.0),
    ("s2", "u2", "heartbeat", 5, 5.0, "360p", 0.0),          # +5
    ("s2", "u2", "buffer", 6, 5.0, "360p", 3.0),
    ("s2", "u2", "heartbeat", 7, 60.0, "360p", 0.0),         # 55 s in 1 s: not watched
    ("", "u1", "play", 50, 0.0, "", 0.0),                     # no session: its own view
]


@pytest.fixture
def video_id(clickhouse: Client) -> str:
    video = storage.new_video_id()
    rows: list[Row] = [
        (str(uuid.uuid4()), video, user, session, kind, T0 + at, 0, T0 + at, position,
         rendition, buffered)
        for session, user, kind, at, position, rendition, buffered in SESSIONS
    ]
    clickhouse.execute(INSERT_SQL, rows)
    clickhouse.execute(INSERT_SQL, rows[:9])  # a replay stored the first session twice
    return video


def test_views_viewers_watch_time_and_buffering(clickhouse: Client, video_id: str) -> None:
    summary = queries.video_summary(clickhouse, video_id, WINDOW)
    assert summary.views == 3
    assert summary.unique_viewers == 2
    assert summary.events == len(SESSIONS)
    assert summary.watch_seconds == pytest.approx(37 + 5)
    assert summary.buffering_seconds == pytest.approx(5.0)
    assert summary.buffering_ratio == pytest.approx(5 / 47)


def test_rendition_mix(clickhouse: Client, video_id: str) -> None:
    mix = queries.rendition_mix(clickhouse, video_id, WINDOW)
    assert mix == pytest.approx({"720p": 3 / 13, "1080p": 6 / 13, "360p": 4 / 13})


def test_events_per_minute(clickhouse: Client, video_id: str) -> None:
    minutes = queries.events_per_minute(clickhouse, WINDOW, video_id)
    assert minutes == [(dt.datetime(2026, 3, 1, 10, 0), 12),
                       (dt.datetime(2026, 3, 1, 10, 1), 2)]


def test_the_window_bounds_the_figures(clickhouse: Client, video_id: str) -> None:
    later = queries.TimeRange(dt.datetime(2026, 3, 1, 10, 1), dt.datetime(2026, 3, 1, 11))
    assert queries.video_summary(clickhouse, video_id, later).events == 2


def test_a_video_id_that_is_not_one_is_refused(clickhouse: Client) -> None:
    with pytest.raises(storage.InvalidIdError):
        queries.video_summary(clickhouse, "' OR 1=1 --", WINDOW)
