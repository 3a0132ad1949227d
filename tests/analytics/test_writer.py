"""The batch writer in process, against the real ClickHouse: a spooled batch ClickHouse
cannot take is set aside instead of blocking every batch behind it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, cast

from clickhouse_driver import Client
from prometheus_client import REGISTRY

from analytics.events import EventColumns, Row
from analytics.sink import ClickHouseSink
from analytics.spool import DiskSpool
from analytics.writer import BatchWriter, EventQueue, WriterPolicy
from vora import storage
from vora.config import Settings


def _rows(video_id: str, count: int) -> list[Row]:
    now = int(time.time())
    return [(f"writer-{video_id}-{i}", video_id, "u", "", "play", now, 0, now, 0.0, "", 0.0)
            for i in range(count)]


def _dropped(reason: str) -> float:
    value = REGISTRY.get_sample_value("vora_analytics_events_dropped_total",
                                      {"reason": reason})
    return value or 0.0


async def test_a_refused_batch_is_set_aside_and_the_rest_replayed(
        analytics_stack: Settings, clickhouse: Client, tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, 10**6)
    video_id = storage.new_video_id()
    broken: list[Any] = [list(row) for row in _rows(video_id, 2)]
    for row in broken:
        row[5] = "not a time"  # e.g. a spool file written by an older, different version
    spool.append(cast(list[Row], broken))
    good = _rows(video_id, 3)[2:]
    spool.append(good)
    before = _dropped("refused_by_clickhouse")
    policy = WriterPolicy(batch_size=100, flush_seconds=0.1, max_buffer_events=1000,
                          insert_timeout_seconds=2, retry_seconds=0.05)
    writer = BatchWriter([ClickHouseSink(analytics_stack)], spool, policy)
    writer.start()
    try:
        for _ in range(400):  # up to 20 s
            if not spool.depth().batches:
                break
            await asyncio.sleep(0.05)
    finally:
        await writer.close()
    assert spool.depth().batches == 0
    assert len(list((tmp_path / "corrupt").glob("*.batch"))) == 1
    assert _dropped("refused_by_clickhouse") - before == 2
    stored = clickhouse.execute("SELECT event_id FROM PlaybackEvents WHERE video_id = %(v)s",
                                {"v": video_id})
    assert [row[0] for row in stored] == [good[0][0]]


def test_the_queue_hands_out_batches_in_acceptance_order() -> None:
    queue = EventQueue()
    requests = [_rows("v", n) for n in (3, 5, 1, 4)]
    for number, rows in enumerate(requests):
        queue.append(EventColumns.from_rows([(f"r{number}-{row[0]}", *row[1:]) for row in rows]))
    assert len(queue) == 13
    batches = [queue.take(4) for _ in range(4)]
    assert [len(batch) for batch in batches] == [4, 4, 4, 1] and len(queue) == 0
    taken = [event_id for batch in batches for event_id in batch.event_ids]
    assert taken == [f"r{n}-{row[0]}" for n, rows in enumerate(requests) for row in rows]
    assert all(len(set(map(len, batch.columns))) == 1 for batch in batches)
