"""A real farm worker on a private task queue, as its own process:
``python -m tests.reliability.farm_process QUEUE``.

The same parts `vora-farm` runs (FarmActivities, the S3 output store, the slot allocator,
progress signals to the workflow, FFmpeg under its limits), settings from the environment
as usual; only the task queue differs, so a test's workflow reaches this process and no
other farm of the stack. It leaves out the node's HTTP server and control link, which
these tests do not look at. Prints ``polling <queue>`` once the worker runs.
"""

from __future__ import annotations

import asyncio
import sys

from farm import node
from farm.activities import FarmActivities
from farm.objects import S3OutputStore
from farm.progress import TemporalSignaller
from farm.worker import build_worker, connect
from vora.config import load_settings


async def serve(queue: str) -> None:
    settings = load_settings()
    inventory, allocator = await node.discover(settings)
    client = await connect(settings)
    activities = FarmActivities(settings, S3OutputStore(settings), allocator,
                                TemporalSignaller(client))
    worker = build_worker(client, activities, allocator.capacity(), task_queue=queue)
    try:
        async with worker:
            print(f"polling {queue}", flush=True)
            await asyncio.Event().wait()  # until the test stops this process
    finally:
        inventory.stop()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
