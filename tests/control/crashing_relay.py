"""A relay process that dies at a chosen point, for the outbox crash matrix.

    python -m tests.control.crashing_relay before-start|after-start

It claims one outbox row of the database named by VORA_PG_DATABASE and then exits
with status 137 (as if SIGKILLed) either before asking Temporal to start the workflow
or right after Temporal accepted it, before the row is marked sent.
"""

from __future__ import annotations

import asyncio
import os
import sys

from control.relay import OutboxRelay, TemporalStarter
from control.store import OutboxRow, VideoStore, create_pool
from vora.config import load_settings

KILLED = 137


class CrashingStarter:
    def __init__(self, real: TemporalStarter, when: str) -> None:
        self.real = real
        self.when = when

    async def start(self, row: OutboxRow) -> None:
        if self.when == "before-start":
            os._exit(KILLED)
        await self.real.start(row)
        os._exit(KILLED)


async def main(when: str) -> int:
    settings = load_settings()
    pool = create_pool(settings)
    await pool.open(wait=True)
    relay = OutboxRelay(VideoStore(pool), CrashingStarter(TemporalStarter(settings), when),
                        poll_seconds=0.1, batch_size=1)
    await relay.drain_once()
    return 3  # reached only when there was no row to claim


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
