"""Entry point of vora-farm. ``vora-farm --check`` prints what this node can do."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable

import tornado.web

from farm import node
from farm.activities import FarmActivities, JobBook, update_slot_metrics
from farm.control_link import ControlLink
from farm.objects import S3OutputStore
from farm.progress import TemporalSignaller
from farm.worker import build_worker, connect
from vora import service, web
from vora.config import Settings, load_settings
from vora.logs import get_logger

log = get_logger(__name__)


async def check(settings: Settings) -> int:
    build = node.ffmpeg_build(settings)
    inventory, allocator = await node.discover(settings)
    print(f"ffmpeg: {build.version}")
    print(f"hwaccels: {', '.join(build.hwaccels) or 'none'}")
    print(f"encoders: {', '.join(build.encoders) or 'none'}; filters: {', '.join(build.filters)}")
    print(f"nvidia driver: {inventory.driver_version or 'none (NVML unavailable)'}")
    print(f"gpus: {len(allocator.gpus)}")
    for gpu in allocator.gpus.values():
        cap = "none" if not gpu.nvenc else (gpu.session_cap or "no driver cap")
        print(f"  [{gpu.info.index}] {gpu.info.name} {gpu.info.uuid} "
              f"memory {gpu.info.memory_total / 1024**3:.1f} GiB; nvenc: "
              f"{'yes' if gpu.nvenc else 'no'}; session cap: {cap}; pipeline: {gpu.pipeline}; "
              f"slots: {gpu.slots}")
    print(f"cpu cores: {os.cpu_count()}; cpu slots: {allocator.cpu_slots()}")
    print(f"pipeline setting: {settings.farm_pipeline}; total slots: {allocator.capacity()}")
    inventory.stop()
    return 0 if build.version != "not found" and allocator.capacity() > 0 else 1


def make_app(settings: Settings,
             checks: dict[str, Callable[[], Awaitable[None]]] | None = None
             ) -> tornado.web.Application:
    return tornado.web.Application(web.ops_routes("farm", checks))


async def serve(settings: Settings) -> None:
    inventory, allocator = await node.discover(settings)
    slots = allocator.capacity()
    if slots <= 0:
        raise SystemExit("vora-farm: no job slots (no usable GPU and VORA_FARM_CPU_SLOTS=0)")
    update_slot_metrics(allocator)
    book = JobBook()
    state: dict[str, object] = {}

    async def temporal_ready() -> None:
        if "worker" not in state:
            raise RuntimeError("not connected to Temporal yet")

    server = web.listen(make_app(settings, {"temporal": temporal_ready}), settings.farm_host,
                        settings.farm_metrics_port)
    link = ControlLink(settings, allocator, book, node.ffmpeg_build(settings).version)

    async def run_worker() -> None:
        client = await connect(settings)
        activities = FarmActivities(settings, S3OutputStore(settings), allocator,
                                    TemporalSignaller(client), book)
        worker = build_worker(client, activities, slots)
        state["worker"] = worker
        log.info("worker started", task_queue=worker.task_queue, slots=slots)
        await worker.run()

    tasks = [asyncio.create_task(coro) for coro in (
        run_worker(), link.run(), node.poll_gpus(settings, inventory, allocator))]

    async def stop() -> None:
        worker = state.get("worker")
        if worker is not None:
            await worker.shutdown()  # type: ignore[attr-defined]
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        inventory.stop()

    await web.serve_until_stopped([server], on_stop=stop)


def main() -> None:
    parser = argparse.ArgumentParser(prog="vora-farm", description=__doc__)
    parser.add_argument("--check", action="store_true", help="print what this node can do")
    args = parser.parse_args()
    if args.check:
        raise SystemExit(asyncio.run(check(load_settings())))
    service.run("farm", serve)


if __name__ == "__main__":
    main()
