"""Record the histories that test_replay.py replays: one JSON file per workflow path.

Run against your stack after a deliberate, compatible workflow change (and never to
"fix" a failing replay: that failure means running workflows would break):

    VORA_ENV_FILE=... python -m tests.conductor.record_histories

Each scenario runs the real Conductor worker with stand-in farm and bookkeeping
activities (tests/conductor/standins.py) on a fresh task queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowHandle

from control.workflows import TranscodeOutcome
from tests.conductor.standins import Harness, bad_media, new_harness, running
from vora import jobs
from vora.config import Settings, load_settings

HISTORIES = Path(__file__).resolve().parent / "histories"
RUN_TIMEOUT = timedelta(seconds=60)


async def start_transcode(h: Harness) -> WorkflowHandle[object, object]:
    return await h.client.start_workflow(
        jobs.TRANSCODE_WORKFLOW, h.transcode_input(), id=jobs.transcode_workflow_id(h.video_id),
        task_queue=h.queue, result_type=TranscodeOutcome, execution_timeout=RUN_TIMEOUT)


async def delete(h: Harness) -> WorkflowHandle[object, object]:
    handle: WorkflowHandle[object, object] = await h.client.start_workflow(
        jobs.DELETE_WORKFLOW, h.delete_input(), id=jobs.delete_workflow_id(h.video_id),
        task_queue=h.queue, execution_timeout=RUN_TIMEOUT)
    await handle.result()
    return handle


async def ready(h: Harness) -> list[WorkflowHandle[object, object]]:
    handle = await start_transcode(h)
    await handle.result()
    return [handle]


async def deleted_while_processing(h: Harness) -> list[WorkflowHandle[object, object]]:
    transcode = await start_transcode(h)
    await h.farm.transcode_started.wait()
    return [transcode, await delete(h)]


SCENARIOS: dict[str, tuple[dict[str, object], Callable[[Harness], Awaitable[list[
        WorkflowHandle[object, object]]]], tuple[str, ...]]] = {
    # name: (stand-in farm options, scenario, file name of each workflow's history)
    "ready": ({"steps": [20.0, 40.0, 60.0, 80.0, 100.0], "step_seconds": 0.3}, ready,
              ("transcode_ready",)),
    "bad_media": ({"probe_error": lambda: bad_media("the file has no video stream")}, ready,
                  ("transcode_bad_media",)),
    "deleted": ({"steps": [float(i) for i in range(1, 100)], "step_seconds": 0.3},
                deleted_while_processing, ("transcode_cancelled", "delete_processing")),
}


async def record(client: Client, settings: Settings, target: Path = HISTORIES) -> list[Path]:
    written = []
    for options, scenario, names in SCENARIOS.values():
        h = new_harness(client, **options)
        async with running(h, settings):
            handles = await scenario(h)
        for name, handle in zip(names, handles, strict=True):
            history = await handle.fetch_history()
            written.append(_write(target / f"{name}.json", history.to_json() + "\n"))
    return written


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


async def main() -> None:
    settings = load_settings()
    settings = settings.model_copy(update={"farm_heartbeat_timeout_seconds": 2})
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    for path in await record(client, settings):
        print(path)


if __name__ == "__main__":
    asyncio.run(main())
