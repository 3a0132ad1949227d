"""A stand-in farm worker in its own process, so a test can SIGKILL it mid-transcode.

    python -m tests.conductor.standin_farm_process <farm task queue>
"""

from __future__ import annotations

import asyncio
import sys

from temporalio.client import Client
from temporalio.worker import Worker

from tests.conductor.standins import StandInFarm
from vora.config import load_settings


async def main(queue: str) -> None:
    settings = load_settings()
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    # Slow enough to be killed in the middle: 1 % every 0.2 s.
    farm = StandInFarm(client, [], steps=[float(i) for i in range(1, 101)], step_seconds=0.2)
    async with Worker(client, task_queue=queue, activities=farm.activities()):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
