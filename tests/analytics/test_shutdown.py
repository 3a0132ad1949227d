"""Graceful stops keep what is in memory; a full memory buffer refuses instead of losing."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from clickhouse_driver import Client

from tests.analytics.helpers import Ingester, Poster, play_event
from vora import storage

# Never flush on their own during the test: only the stop can write these events.
HOLD = {"analytics_flush_seconds": "600", "analytics_batch_size": "100000"}


def _present(clickhouse: Client, video_id: str) -> set[str]:
    rows = clickhouse.execute("SELECT DISTINCT event_id FROM PlaybackEvents"
                              " WHERE video_id = %(v)s", {"v": video_id})
    return {row[0] for row in rows}


def _post_and_stop(ingester: Ingester, video_id: str) -> set[str]:
    events = [play_event(video_id, time.time()) for _ in range(2000)]
    poster = Poster(ingester.url)
    assert poster.post(events)[0] == 202
    poster.close()
    assert ingester.health()["buffered_events"] == len(events)
    ingester.process.send_signal(signal.SIGTERM)
    assert ingester.process.wait(timeout=20) == 0
    return {str(e["event_id"]) for e in events}


def test_sigterm_flushes_memory_to_clickhouse(start_ingester: Callable[..., Ingester],
                                              clickhouse: Client) -> None:
    video_id = storage.new_video_id()
    sent = _post_and_stop(start_ingester(**HOLD), video_id)
    assert _present(clickhouse, video_id) == sent


def test_sigterm_during_an_outage_spools_then_replays(
    start_ingester: Callable[..., Ingester], clickhouse_outage: Callable[[], None],
    clickhouse: Client, tmp_path: Path,
) -> None:
    spool = tmp_path / "stop-spool"
    video_id = storage.new_video_id()
    sent = _post_and_stop(start_ingester(spool, **HOLD), video_id)
    assert sum(int(p.stem.split("-")[1]) for p in spool.glob("*.batch")) == len(sent)
    clickhouse_outage()  # back
    again = start_ingester(spool)
    again.wait_until(lambda s: s["spool"]["batches"] == 0, 30, "the spool replayed")
    assert _present(clickhouse, video_id) == sent


def test_a_full_buffer_answers_503_and_keeps_what_it_took(
        start_ingester: Callable[..., Ingester], clickhouse: Client) -> None:
    ingester = start_ingester(analytics_max_buffer_events="1000", **HOLD)
    video_id = storage.new_video_id()
    poster = Poster(ingester.url)
    kept = [play_event(video_id, time.time()) for _ in range(800)]
    assert poster.post(kept)[0] == 202
    status, reply = poster.post([play_event(video_id, time.time()) for _ in range(800)])
    poster.close()
    assert status == 503 and "retry" in reply["error"]
    assert ingester.health()["buffered_events"] == 800
    ingester.process.send_signal(signal.SIGTERM)
    assert ingester.process.wait(timeout=20) == 0
    assert _present(clickhouse, video_id) == {e["event_id"] for e in kept}
