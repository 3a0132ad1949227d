"""kill -9 during a flush: what was flushed before survives, retries are counted once."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from clickhouse_driver import Client

from analytics import queries
from tests.analytics.helpers import Ingester, Poster, play_event
from vora import storage

BATCH = 500
FLUSH_SECONDS = 0.2


def _window(now: float) -> queries.TimeRange:
    since = dt.datetime.fromtimestamp(now - 3600, dt.UTC).replace(tzinfo=None)
    return queries.TimeRange(since, since + dt.timedelta(hours=2))


def _views(clickhouse: Client, video_id: str, now: float) -> int:
    return queries.video_summary(clickhouse, video_id, _window(now)).views


def _present(clickhouse: Client, video_id: str) -> set[str]:
    rows = clickhouse.execute("SELECT DISTINCT event_id FROM PlaybackEvents"
                              " WHERE video_id = %(v)s", {"v": video_id})
    return {row[0] for row in rows}


class Sender(threading.Thread):
    """Keeps posting batches, in order, until the ingester dies."""

    def __init__(self, url: str, video_id: str, now: float) -> None:
        super().__init__(daemon=True)
        self.url, self.video_id, self.now = url, video_id, now
        self.sent: list[dict[str, object]] = []

    def run(self) -> None:
        poster = Poster(self.url)
        try:
            while True:
                batch = [play_event(self.video_id, self.now) for _ in range(BATCH)]
                self.sent.extend(batch)
                status, _ = poster.post(batch)
                assert status == 202
        except (OSError, AssertionError):
            return  # the ingester was killed
        finally:
            poster.close()


def test_kill_during_flush(start_ingester: Callable[..., Ingester], clickhouse: Client,
                           tmp_path: Path) -> None:
    spool = tmp_path / "crash-spool"
    options = {"analytics_batch_size": str(BATCH), "analytics_flush_seconds": str(FLUSH_SECONDS)}
    ingester = start_ingester(spool, **options)
    now = time.time()
    before, during = storage.new_video_id(), storage.new_video_id()
    first = [play_event(before, now) for _ in range(10 * BATCH)]
    poster = Poster(ingester.url)
    for start in range(0, len(first), BATCH):
        assert poster.post(first[start:start + BATCH])[0] == 202
    poster.close()
    ingester.wait_until(lambda s: s["durable_events"] == s["accepted_events"], 10, "flushed")

    sender = Sender(ingester.url, during, now)
    sender.start()
    # Caught mid-flush, after some of the sender's events were flushed already.
    status = ingester.wait_until(
        lambda s: s["flushing"] and s["durable_events"] > len(first), 15, "a flush in progress")
    os.kill(ingester.process.pid, signal.SIGKILL)
    ingester.process.wait()
    sender.join(10)

    restarted = start_ingester(spool, **options)
    restarted.wait_until(lambda s: s["spool"]["batches"] == 0, 30, "the spool replayed")
    assert _present(clickhouse, before) == {e["event_id"] for e in first}
    # Flushes take events in acceptance order (one sender: the order it sent them), so the
    # first durable_events accepted were in ClickHouse or the spool before the kill.
    flushed = [str(e["event_id"]) for e in sender.sent[:status["durable_events"] - len(first)]]
    assert flushed
    assert set(flushed) <= _present(clickhouse, during)

    # The player retries everything it is unsure of (and more): counted once each.
    poster = Poster(restarted.url)
    for events in (first, sender.sent):
        for start in range(0, len(events), BATCH):
            assert poster.post(events[start:start + BATCH])[0] == 202
    poster.close()
    restarted.wait_until(lambda s: s["durable_events"] == s["accepted_events"], 10, "flushed")
    assert _views(clickhouse, before, now) == len(first)
    assert _views(clickhouse, during, now) == len(sender.sent)
