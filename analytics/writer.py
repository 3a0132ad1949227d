"""The batch writer: accepted events -> memory -> ClickHouse, or the disk spool when
ClickHouse is down or slow, replayed from the spool oldest first when it is back.

Blocking work runs on single-thread pools, one per sink (a connection to ClickHouse) and
one for the spool (fsync), so the IOLoop never waits on either and a hung ClickHouse
cannot hold up the spool. With several sinks, that many batches are inserted at once:
ClickHouse stores one while the driver encodes the next. Their outcomes are taken in
acceptance order, so ``durable_events`` always counts a prefix of the accepted events and
failed batches reach the spool in order.

Every failure is logged, counted and absorbed here: analytics never crashes the process.
A batch may reach ClickHouse twice (an insert that timed out but landed, a replay
interrupted before its file was removed); the dashboard queries count each event_id once,
so that is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from analytics import metrics
from analytics.events import EventColumns
from analytics.sink import EventSink
from analytics.spool import DiskSpool
from vora.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")
MAX_RETRY_SECONDS = 3.0
# A spooled batch that ClickHouse keeps refusing while it answers pings is set aside after
# this many tries, so one poisoned batch cannot hold up every batch behind it.
MAX_BATCH_ATTEMPTS = 5


@dataclass(frozen=True)
class WriterPolicy:
    batch_size: int
    flush_seconds: float
    max_buffer_events: int
    insert_timeout_seconds: float
    retry_seconds: float = 0.5


class EventQueue:
    """Accepted events waiting for a flush, kept as the parsed requests they came in, so
    accepting costs O(1) and taking a batch O(batch), however long the queue grows."""

    def __init__(self) -> None:
        self._parts: deque[EventColumns] = deque()
        self._events = 0

    def __len__(self) -> int:
        return self._events

    def append(self, events: EventColumns) -> None:
        self._parts.append(events)
        self._events += len(events)

    def take(self, count: int) -> EventColumns:
        """Remove the oldest ``count`` events (or all there are) and return them in order."""
        parts: list[EventColumns] = []
        taken = 0
        while self._parts and taken < count:
            part = self._parts.popleft()
            if taken + len(part) > count:
                self._parts.appendleft(part)
                part = part.take(count - taken)  # the rest stays first in line
            parts.append(part)
            taken += len(part)
        self._events -= taken
        return EventColumns.concat(parts)


@dataclass(frozen=True)
class _SinkWorker:
    """A sink and the one thread that calls it (sinks are not thread-safe)."""

    sink: EventSink
    pool: ThreadPoolExecutor


class BatchWriter:
    def __init__(self, sinks: Sequence[EventSink], spool: DiskSpool,
                 policy: WriterPolicy) -> None:
        if not sinks:
            raise ValueError("the writer needs at least one sink")
        self._workers = [
            _SinkWorker(sink, ThreadPoolExecutor(1, thread_name_prefix=f"analytics-sink{n}"))
            for n, sink in enumerate(sinks)]
        self._idle: asyncio.Queue[_SinkWorker] = asyncio.Queue()
        for worker in self._workers:
            self._idle.put_nowait(worker)
        self._spool = spool
        self._policy = policy
        self._buffer = EventQueue()
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._spool_pool = ThreadPoolExecutor(1, thread_name_prefix="analytics-spool")
        self._flush_task: asyncio.Task[None] | None = None
        self._replay_task: asyncio.Task[None] | None = None
        self._closing = False
        self.clickhouse_error = ""  # empty while ClickHouse is believed up
        self._refusals: dict[str, int] = {}  # spooled batch -> inserts refused while up
        self.flushing = False
        self.accepted_events = 0
        self.durable_events = 0  # accepted events now in ClickHouse or in the spool
        metrics.CLICKHOUSE_UP.set(1)
        self._publish_spool_depth()

    # --- ingest side (IOLoop, never blocks) ------------------------------------------------

    def accept(self, events: EventColumns) -> bool:
        """Take events into memory; False when memory is full (the client should retry)."""
        if len(self._buffer) + len(events) > self._policy.max_buffer_events:
            return False
        self._buffer.append(events)
        self.accepted_events += len(events)
        metrics.ACCEPTED.inc(len(events))
        metrics.BUFFERED.set(len(self._buffer))
        if len(self._buffer) >= self._policy.batch_size:
            self._wake.set()
        return True

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._flush_task = asyncio.create_task(self._flush_loop(), name="analytics-flush")
        self._replay_task = asyncio.create_task(self._replay_loop(), name="analytics-replay")

    async def close(self) -> None:
        """Flush what is in memory (to ClickHouse if it is up, else the spool) and stop."""
        self._closing = True
        self._wake.set()
        if self._replay_task is not None:
            self._replay_task.cancel()  # a batch being replayed stays in the spool for next time
        # The flush loop is never cancelled: a batch it holds must reach ClickHouse or disk.
        tasks = [t for t in (self._flush_task, self._replay_task) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.flush()
        for worker in self._workers:
            worker.pool.submit(worker.sink.close)
            worker.pool.shutdown(wait=False, cancel_futures=False)
        self._spool_pool.shutdown(wait=True)
        log.info("writer stopped", accepted=self.accepted_events, durable=self.durable_events)

    # --- flushing ---------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._policy.flush_seconds)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # flushing must outlive any surprise
                log.exception("flush failed")

    async def flush(self) -> None:
        """Write everything buffered now, in batches of at most batch_size, up to one
        insert per sink at a time; each batch's outcome is taken in acceptance order."""
        async with self._flush_lock:
            started: deque[tuple[EventColumns, asyncio.Task[bool] | None]] = deque()
            try:
                while len(self._buffer) or started:
                    # A short batch (the rest) waits for the others: it may fill up meanwhile.
                    full = len(self._buffer) >= self._policy.batch_size
                    if (full or not started) and len(started) < len(self._workers):
                        started.append(self._start_batch())
                    else:
                        await self._finish_batch(*started.popleft())
            finally:
                while started:  # whatever went wrong, no started batch goes unaccounted
                    await self._finish_batch(*started.popleft())
                self.flushing = False

    def _start_batch(self) -> tuple[EventColumns, asyncio.Task[bool] | None]:
        batch = self._buffer.take(self._policy.batch_size)
        self.flushing = True
        metrics.BUFFERED.set(len(self._buffer))
        metrics.BATCH_SIZE.observe(len(batch))
        # While older batches wait in the spool, new ones queue behind them to keep order.
        if self.clickhouse_error or self._spool.depth().batches:
            return batch, None
        return batch, asyncio.create_task(self._insert(batch))

    async def _finish_batch(self, batch: EventColumns,
                            insert: asyncio.Task[bool] | None) -> None:
        try:
            if insert is not None and await insert:
                metrics.WRITTEN.inc(len(batch))
            elif not await self._to_spool(batch):
                return
            self.durable_events += len(batch)
        except Exception:  # the last line of defence: count, log, carry on
            log.exception("batch lost to an unexpected error", events=len(batch))
            metrics.DROPPED.labels(reason="internal_error").inc(len(batch))

    async def _insert(self, events: EventColumns) -> bool:
        worker = await self._idle.get()
        try:
            started = time.monotonic()
            await asyncio.wait_for(self._run(worker.pool, worker.sink.insert, events),
                                   self._policy.insert_timeout_seconds)
        except Exception as exc:  # down, slow, refused: all mean "spool it"
            self._mark_down(exc)
            return False
        finally:
            self._idle.put_nowait(worker)  # a timed-out call still holds its thread
        metrics.FLUSH_SECONDS.labels(target="clickhouse").observe(time.monotonic() - started)
        self._mark_up()
        return True

    async def _to_spool(self, batch: EventColumns) -> bool:
        started = time.monotonic()
        try:
            dropped = await self._run(self._spool_pool, self._spool_append, batch)
        except OSError as exc:
            log.error("spool write failed, batch lost", events=len(batch), error=str(exc))
            metrics.DROPPED.labels(reason="spool_unwritable").inc(len(batch))
            return False
        metrics.FLUSH_SECONDS.labels(target="spool").observe(time.monotonic() - started)
        metrics.SPOOLED.inc(len(batch))
        if dropped:
            metrics.DROPPED.labels(reason="spool_full").inc(dropped)
        self._publish_spool_depth()
        return True

    # --- replay -----------------------------------------------------------------------------

    async def _replay_loop(self) -> None:
        delay = self._policy.retry_seconds
        while not self._closing:
            try:
                progressed = await self._replay_one()
            except Exception:
                log.exception("spool replay step failed")
                progressed = False
            if progressed:
                delay = self._policy.retry_seconds
                continue
            await asyncio.sleep(delay)
            if self.clickhouse_error:
                delay = min(MAX_RETRY_SECONDS, delay * 2)

    async def _replay_one(self) -> bool:
        """Insert the oldest spooled batch; True when one was replayed."""
        batch = await self._run(self._spool_pool, self._spool.oldest)
        if batch is None:
            if self.clickhouse_error:
                await self._probe()
            return False
        try:
            events = EventColumns.from_rows(batch.rows)
        except ValueError:  # not rows of PlaybackEvents: ClickHouse would refuse them too
            await self._note_refusal(batch.name, len(batch.rows))
            return False
        if not await self._insert(events):
            await self._probe()
            if not self.clickhouse_error:
                await self._note_refusal(batch.name, len(batch.rows))
            return False
        self._refusals.pop(batch.name, None)
        await self._run(self._spool_pool, self._spool.remove, batch.name)
        metrics.WRITTEN.inc(len(batch.rows))
        metrics.REPLAYED.inc(len(batch.rows))
        self._publish_spool_depth()
        log.info("spooled batch replayed", batch=batch.name, events=len(batch.rows))
        return True

    async def _note_refusal(self, name: str, events: int) -> None:
        """ClickHouse answers but refused this batch: after a few tries, set it aside."""
        self._refusals[name] = self._refusals.get(name, 0) + 1
        if self._refusals[name] < MAX_BATCH_ATTEMPTS:
            return
        del self._refusals[name]
        await self._run(self._spool_pool, self._spool.quarantine, name)
        metrics.DROPPED.labels(reason="refused_by_clickhouse").inc(events)
        self._publish_spool_depth()

    async def _probe(self) -> None:
        worker = await self._idle.get()
        try:
            await asyncio.wait_for(self._run(worker.pool, worker.sink.ping),
                                   self._policy.insert_timeout_seconds)
        except Exception as exc:
            self._mark_down(exc)
        else:
            self._mark_up()
        finally:
            self._idle.put_nowait(worker)

    # --- state --------------------------------------------------------------------------------

    def _mark_down(self, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:300]
        if not self.clickhouse_error:
            log.warning("clickhouse unavailable, spooling batches", error=reason)
        self.clickhouse_error = reason
        metrics.CLICKHOUSE_UP.set(0)

    def _mark_up(self) -> None:
        if self.clickhouse_error:
            log.info("clickhouse is back, replaying the spool")
        self.clickhouse_error = ""
        metrics.CLICKHOUSE_UP.set(1)

    def _publish_spool_depth(self) -> None:
        depth = self._spool.depth()
        metrics.SPOOL_BATCHES.set(depth.batches)
        metrics.SPOOL_EVENTS.set(depth.events)
        metrics.SPOOL_BYTES.set(depth.bytes)

    def status(self) -> dict[str, Any]:
        depth = self._spool.depth()
        return {
            "clickhouse": f"down: {self.clickhouse_error}" if self.clickhouse_error else "up",
            "buffered_events": len(self._buffer),
            "spool": {"batches": depth.batches, "events": depth.events, "bytes": depth.bytes},
            "flushing": self.flushing,
            "accepted_events": self.accepted_events,
            "durable_events": self.durable_events,
        }

    def _spool_append(self, batch: EventColumns) -> int:
        """On the spool thread: the spool keeps rows, so its files stay what they were."""
        return self._spool.append(batch.rows())

    @staticmethod
    async def _run(pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
