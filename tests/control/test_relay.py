"""The outbox relay against real PostgreSQL and Temporal: the crash matrix, concurrent
relays, retries that reuse the workflow id, and the circuit breaker."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from control.auth import Caller
from control.relay import MEMO_OUTBOX_ID, CircuitBreaker, OutboxRelay, TemporalStarter
from control.store import VideoStore, create_pool
from control.videos import VideoService
from tests.control.conftest import count_runs, create_database, described, drop_database
from vora import jobs, storage
from vora.config import Settings


@dataclass
class Outbox:
    settings: Settings
    store: VideoStore
    videos: VideoService

    def relay(self, batch_size: int = 20) -> OutboxRelay:
        return OutboxRelay(self.store, TemporalStarter(self.settings), 0.1, batch_size)

    async def processing_video(self) -> str:
        """A video in PROCESSING with its transcode row in the outbox, as CompleteUpload
        leaves it."""
        user = Caller(subject="relay-tester")
        created = await self.videos.create_video(user, "t", "", 0)
        upload_id = storage.new_upload_id()
        await self.videos.upload_completed(Caller("", is_service=True), upload_id, 1,
                                           "0" * 64, {}, user.subject)
        await self.videos.complete_upload(user, created.video.id, upload_id)
        return created.video.id

    async def pending(self, video_id: str) -> list[tuple[int, int, str]]:
        async with self.store.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, attempts, last_error FROM outbox WHERE video_id = %s"
                " AND sent_at IS NULL ORDER BY id", (video_id,))
            return [tuple(row) for row in await cursor.fetchall()]


@pytest.fixture
async def outbox(test_settings: Settings) -> AsyncIterator[Outbox]:
    """A database of its own, so the control fixture's relay never drains these rows."""
    settings = create_database(test_settings)
    pool = create_pool(settings)
    await pool.open(wait=True)
    store = VideoStore(pool)
    yield Outbox(settings, store, VideoService(settings, store))
    await pool.close()
    drop_database(settings)


async def crash_relay(settings: Settings, when: str) -> int:
    env = {**os.environ, "VORA_PG_DATABASE": settings.pg_database,
           "VORA_TEMPORAL_NAMESPACE": settings.temporal_namespace, "VORA_LOG_LEVEL": "WARNING"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.control.crashing_relay", when, env=env)
    return await asyncio.wait_for(process.wait(), timeout=60)


async def test_crash_between_commit_and_start_loses_nothing(outbox: Outbox,
                                                            temporal: Client) -> None:
    video_id = await outbox.processing_video()
    assert await crash_relay(outbox.settings, "before-start") == 137
    assert len(await outbox.pending(video_id)) == 1
    with pytest.raises(RPCError) as missing:
        await temporal.get_workflow_handle(jobs.transcode_workflow_id(video_id)).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    assert await outbox.relay().drain_once() == 1
    assert await outbox.pending(video_id) == []
    assert await count_runs(temporal, jobs.transcode_workflow_id(video_id), 1) == 1


async def test_crash_between_start_and_marking_sent_starts_once(outbox: Outbox,
                                                                temporal: Client) -> None:
    video_id = await outbox.processing_video()
    workflow_id = jobs.transcode_workflow_id(video_id)
    assert await crash_relay(outbox.settings, "after-start") == 137
    [(row_id, _, _)] = await outbox.pending(video_id)  # started, but not marked sent
    first = await described(temporal, workflow_id)
    assert first.status == WorkflowExecutionStatus.RUNNING
    assert await outbox.relay().drain_once() == 1
    assert await outbox.pending(video_id) == []
    after = await temporal.get_workflow_handle(workflow_id).describe()
    assert after.run_id == first.run_id
    assert (await after.memo())[MEMO_OUTBOX_ID] == row_id
    await asyncio.sleep(0.5)
    assert await count_runs(temporal, workflow_id, 1) == 1


async def test_concurrent_relays_start_each_workflow_once(outbox: Outbox,
                                                          temporal: Client) -> None:
    video_ids = [await outbox.processing_video() for _ in range(8)]
    relays = [outbox.relay(batch_size=2) for _ in range(3)]
    for _ in range(10):
        sent = await asyncio.gather(*(relay.drain_once() for relay in relays))
        if sum(sent) == 0:
            break
    assert await outbox.store.outbox_depth() == 0
    for video_id in video_ids:
        assert await count_runs(temporal, jobs.transcode_workflow_id(video_id), 1) == 1


async def test_retry_reuses_the_workflow_id_once_the_old_run_closed(
        outbox: Outbox, temporal: Client) -> None:
    video_id = await outbox.processing_video()
    workflow_id = jobs.transcode_workflow_id(video_id)
    relay = outbox.relay()
    assert await relay.drain_once() == 1
    await outbox.store.mark_failed(video_id, "the file has no video stream")
    await outbox.videos.retry_processing(Caller("relay-tester"), video_id)
    # The failed run is still finishing (e.g. compensating): the start waits.
    assert await relay.drain_once() == 0
    [(_, attempts, error)] = await outbox.pending(video_id)
    assert attempts == 1 and "still running" in error
    await temporal.get_workflow_handle(workflow_id).terminate(reason="test: run closed")
    assert await relay.drain_once() == 1
    assert await count_runs(temporal, workflow_id, 2) == 2
    latest = await temporal.get_workflow_handle(workflow_id).describe()
    assert latest.status == WorkflowExecutionStatus.RUNNING


def test_circuit_breaker_opens_after_failures_and_backs_off() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=1.0, max_cooldown=3.0, clock=lambda: now[0])
    breaker.failure()
    assert not breaker.is_open
    breaker.failure()
    assert breaker.is_open
    now[0] = 1.1
    assert not breaker.is_open  # half-open: one probe allowed
    breaker.failure()
    assert breaker.is_open and breaker.open_until == pytest.approx(3.1)
    now[0] = 3.2
    breaker.success()
    assert not breaker.is_open and breaker.failures == 0


async def test_a_transcode_queued_for_a_deleted_video_is_skipped(outbox: Outbox,
                                                                 temporal: Client) -> None:
    video_id = await outbox.processing_video()
    await outbox.videos.delete_video(Caller("relay-tester"), video_id)
    assert await outbox.relay().drain_once() == 1  # the delete only
    assert await outbox.pending(video_id) == []
    with pytest.raises(RPCError) as missing:
        await temporal.get_workflow_handle(jobs.transcode_workflow_id(video_id)).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    deleting = await described(temporal, jobs.delete_workflow_id(video_id))
    assert deleting.workflow_type == jobs.DELETE_WORKFLOW
