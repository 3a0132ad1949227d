"""A workflow that queues activity tasks on the farm's task queue, so the tests can make a
real backlog in Temporal. The activity name is one no farm registers: a farm worker that
polls the queue fails it harmlessly (nothing touches storage)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow

FARM_TASK_QUEUE = "vora-farm"  # vora.jobs.FARM_TASK_QUEUE (kept literal: workflow sandbox)
NOOP_ACTIVITY = "capacity-tests.noop"


@workflow.defn(name="CapacityTestsQueueFarmTasks")
class QueueFarmTasks:
    @workflow.run
    async def run(self, count: int) -> None:
        await asyncio.gather(*(
            workflow.execute_activity(NOOP_ACTIVITY, f"task-{i}", task_queue=FARM_TASK_QUEUE,
                                      schedule_to_close_timeout=timedelta(seconds=60))
            for i in range(count)))


@workflow.defn(name="CapacityTestsTranscode")
class TranscodeOnFarm:
    """Runs the farm's real TRANSCODE activity as control's workflow does (heartbeat
    timeout included), so a killed worker's job is retried elsewhere by Temporal."""

    @workflow.signal(name="transcode_progress")  # vora.jobs.PROGRESS_SIGNAL
    def progress(self, beat: object) -> None:
        """The farm signals progress to its workflow; this test does not need it."""

    @workflow.run
    async def run(self, request: dict[str, Any], heartbeat_timeout_seconds: int) -> None:
        await workflow.execute_activity(
            "farm.transcode", request, task_queue=FARM_TASK_QUEUE,
            start_to_close_timeout=timedelta(minutes=3),
            heartbeat_timeout=timedelta(seconds=heartbeat_timeout_seconds))
