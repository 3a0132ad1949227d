"""The outbox relay: turns committed outbox rows into started Temporal workflows.

Rows are claimed with FOR UPDATE SKIP LOCKED, so several relays can run; a row is
marked sent in the same transaction that claimed it, after Temporal accepted the
start. A crash anywhere before that commit leaves the row pending, and the next
attempt finds out whether the workflow already started (its memo carries the outbox
row id), so each row starts its workflow exactly once.

While Temporal is unreachable a circuit breaker makes the relay fail fast: after a few
failures it stops calling Temporal for a cool-down that grows up to a minute, then
tries one batch again. The APIs never wait for the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from control import metrics
from control.errors import Unavailable
from control.store import OUTBOX_DELETE, OUTBOX_TRANSCODE, OutboxRow, VideoStore
from vora import jobs
from vora.config import Settings
from vora.logs import get_logger

log = get_logger(__name__)
MEMO_OUTBOX_ID = "vora_outbox_id"
_RPC_TIMEOUT = timedelta(seconds=5)
_CONNECT_TIMEOUT_SECONDS = 5.0
OUTBOX_RETENTION_SECONDS = 7 * 24 * 3600  # sent rows stay a week for inspection
PRUNE_EVERY_SECONDS = 600.0


class PreviousRunStillOpen(Exception):
    """A retry's workflow id is still held by the previous run (it is finishing its
    compensation); the row stays pending and is tried again later."""


class WorkflowStarter(Protocol):
    async def start(self, row: OutboxRow) -> None:
        """Start the row's workflow, or return if this row's workflow already started.
        Raise PreviousRunStillOpen to try later, anything else on failure."""


def workflow_for(row: OutboxRow) -> tuple[str, str, Any]:
    """(workflow name, workflow id, input) for an outbox row."""
    upload_id = str(row.payload.get("upload_id", ""))
    if row.kind == OUTBOX_TRANSCODE:
        return (jobs.TRANSCODE_WORKFLOW, jobs.transcode_workflow_id(row.video_id),
                jobs.TranscodeWorkflowInput(video_id=row.video_id, upload_id=upload_id))
    if row.kind == OUTBOX_DELETE:
        return (jobs.DELETE_WORKFLOW, jobs.delete_workflow_id(row.video_id),
                jobs.DeleteWorkflowInput(video_id=row.video_id, upload_id=upload_id))
    raise ValueError(f"unknown outbox kind {row.kind!r}")


class TemporalStarter:
    """Starts workflows on the control task queue; connects lazily and reconnects."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Client | None = None

    async def client(self) -> Client:
        if self._client is None:
            self._client = await asyncio.wait_for(
                Client.connect(self.settings.temporal_address,
                               namespace=self.settings.temporal_namespace),
                timeout=_CONNECT_TIMEOUT_SECONDS)
        return self._client

    async def start(self, row: OutboxRow) -> None:
        name, workflow_id, arg = workflow_for(row)
        try:
            client = await self.client()
            if await self._already_started(client, workflow_id, row):
                return
            await client.start_workflow(
                name, arg, id=workflow_id, task_queue=jobs.CONTROL_TASK_QUEUE,
                # A retry reuses the id of a closed run; a running one is never replaced.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                memo={MEMO_OUTBOX_ID: row.id}, rpc_timeout=_RPC_TIMEOUT)
        except WorkflowAlreadyStartedError:
            # Another relay started it between our describe and start: check it is ours.
            if not await self._already_started(await self.client(), workflow_id, row):
                raise PreviousRunStillOpen(f"{workflow_id} is still running") from None
        except (RPCError, OSError, TimeoutError, RuntimeError):
            self._client = None  # reconnect next time; the server may have restarted
            raise

    async def _already_started(self, client: Client, workflow_id: str, row: OutboxRow) -> bool:
        try:
            description = await client.get_workflow_handle(workflow_id).describe(
                rpc_timeout=_RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        memo = await description.memo()
        if memo.get(MEMO_OUTBOX_ID) == row.id:
            return True
        if description.status == WorkflowExecutionStatus.RUNNING:
            if row.kind == OUTBOX_DELETE:
                return True  # one delete per video; it is already under way
            raise PreviousRunStillOpen(
                f"{workflow_id} is still running from an earlier start; will retry")
        return False


class CircuitBreaker:
    """Closed until ``threshold`` failures in a row; then open for a cool-down that
    doubles on each failed probe, up to ``max_cooldown``."""

    def __init__(self, threshold: int = 3, cooldown: float = 2.0, max_cooldown: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.base, self.max_cooldown = threshold, cooldown, max_cooldown
        self.clock = clock
        self.failures = 0
        self.cooldown = cooldown
        self.open_until = 0.0

    @property
    def is_open(self) -> bool:
        return self.clock() < self.open_until

    def success(self) -> None:
        self.failures, self.cooldown, self.open_until = 0, self.base, 0.0

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = self.clock() + self.cooldown
            self.cooldown = min(self.max_cooldown, self.cooldown * 2)


class OutboxRelay:
    """Drains the outbox in batches; ``wake()`` makes it look at once."""

    def __init__(self, store: VideoStore, starter: WorkflowStarter, poll_seconds: float,
                 batch_size: int = 20, breaker: CircuitBreaker | None = None) -> None:
        self.store = store
        self.starter = starter
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.breaker = breaker or CircuitBreaker()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        next_prune = 0.0
        while True:
            try:
                started = await self.drain_once()
                metrics.OUTBOX_DEPTH.set(await self.store.outbox_depth())
                if time.monotonic() >= next_prune:
                    await self.store.prune_outbox(OUTBOX_RETENTION_SECONDS)
                    next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
            except Unavailable:
                metrics.RELAY_ERRORS.labels(reason="database").inc()
                started = 0
            except Exception:  # the relay must outlive any one bad batch
                log.exception("outbox relay batch failed")
                metrics.RELAY_ERRORS.labels(reason="internal").inc()
                started = 0
            if started < self.batch_size:
                await self._sleep()

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
        self._wake.clear()

    async def drain_once(self) -> int:
        """Handle one batch; returns how many rows were sent."""
        metrics.RELAY_CIRCUIT_OPEN.set(1 if self.breaker.is_open else 0)
        if self.breaker.is_open:
            return 0
        sent = 0
        async with self.store.claim_outbox(self.batch_size) as (conn, rows):
            for row in rows:
                if row.kind == OUTBOX_TRANSCODE and row.video_deleted:
                    await self.store.mark_sent(conn, row.id, "skipped: the video was deleted")
                    continue
                error = await self._start(row)
                if error is None:
                    await self.store.mark_sent(conn, row.id)
                    sent += 1
                    continue
                await self.store.mark_attempt(conn, row.id, error)
                if self.breaker.is_open:
                    break  # fail fast: leave the rest of the batch for later
        return sent

    async def _start(self, row: OutboxRow) -> str | None:
        try:
            await self.starter.start(row)
        except PreviousRunStillOpen as exc:
            return str(exc)
        except Exception as exc:  # Temporal down or refusing: counted, retried later
            self.breaker.failure()
            metrics.RELAY_ERRORS.labels(reason="temporal").inc()
            log.warning("workflow start failed", outbox_id=row.id, kind=row.kind,
                        video_id=row.video_id, error=str(exc) or type(exc).__name__)
            return f"{type(exc).__name__}: {exc}"
        self.breaker.success()
        metrics.RELAY_STARTED.labels(kind=row.kind).inc()
        log.info("workflow started", outbox_id=row.id, kind=row.kind, video_id=row.video_id)
        return None
