"""The Temporal worker of FARM_TASK_QUEUE: takes only as many activities as it has slots."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from farm.activities import FarmActivities
from vora import jobs
from vora.config import Settings
from vora.logs import get_logger

log = get_logger(__name__)
# Running encodes get this long to finish on SIGTERM; the rest are retried elsewhere.
GRACEFUL_SHUTDOWN = timedelta(seconds=30)


async def connect(settings: Settings) -> Client:
    """Connect to Temporal, retrying with backoff until it answers."""
    backoff = 1.0
    while True:
        try:
            return await Client.connect(settings.temporal_address,
                                        namespace=settings.temporal_namespace)
        except Exception as exc:  # Temporal down at start: keep trying, the node stays up
            log.warning("temporal unreachable; will retry", reason=str(exc), retry_in=backoff)
            await asyncio.sleep(backoff)
            backoff = min(30.0, backoff * 2)


def build_worker(client: Client, activities: FarmActivities, slots: int,
                 task_queue: str = jobs.FARM_TASK_QUEUE) -> Worker:
    # One activity per slot: further work waits in Temporal, where another node can
    # take it, instead of queueing inside this process.
    return Worker(client, task_queue=task_queue, activities=activities.all(),
                  max_concurrent_activities=slots,
                  graceful_shutdown_timeout=GRACEFUL_SHUTDOWN)


