"""Faults around the workflow: the Temporal server restarts mid-workflow, a farm worker
is SIGKILLed mid-transcode, and the control worker process starts and stops cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from control.workflows import TranscodeOutcome
from tests.conductor.standins import StandInFarm, new_harness, running
from vora import devstack, jobs
from vora.config import Settings

REPO = Path(__file__).resolve().parents[2]


async def restart_temporal(settings: Settings) -> None:
    """`vora dev stop temporal` then `vora dev start temporal`, as an operator would."""
    def bounce() -> None:
        devstack.stop(settings, ["temporal"])
        devstack.start(settings, ["temporal"])
        devstack.wait_healthy(settings, ["temporal"], timeout=60)

    await asyncio.to_thread(bounce)


async def test_a_workflow_survives_a_temporal_restart(client: Client,
                                                      infra: Settings) -> None:
    # Heartbeat timeout long enough to cover the outage; the stand-in keeps encoding.
    settings = infra.model_copy(update={"farm_heartbeat_timeout_seconds": 30})
    h = new_harness(client, steps=[10.0 * i for i in range(1, 11)], step_seconds=0.5)
    async with running(h, settings):
        handle = await client.start_workflow(
            jobs.TRANSCODE_WORKFLOW, h.transcode_input(),
            id=jobs.transcode_workflow_id(h.video_id), task_queue=h.queue,
            result_type=TranscodeOutcome, execution_timeout=timedelta(seconds=120))
        await h.farm.transcode_started.wait()
        await restart_temporal(infra)
        outcome = await asyncio.wait_for(handle.result(), timeout=90)

    assert outcome.state == "READY"
    assert [r.video_id for r in h.books.ready] == [h.video_id]
    assert h.books.failed == []


async def test_a_killed_farm_worker_is_replaced_after_the_heartbeat_timeout(
        client: Client, fast_settings: Settings) -> None:
    h = new_harness(client)
    async with running(h, fast_settings, farm_worker=False):
        handle = await client.start_workflow(
            jobs.TRANSCODE_WORKFLOW, h.transcode_input(),
            id=jobs.transcode_workflow_id(h.video_id), task_queue=h.queue,
            result_type=TranscodeOutcome, execution_timeout=timedelta(seconds=60))
        doomed = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.conductor.standin_farm_process", h.farm_queue,
            cwd=REPO)
        try:
            await _until_transcoding(handle)
        finally:
            doomed.send_signal(signal.SIGKILL)
            await doomed.wait()
        attempts: list[int] = []

        @activity.defn(name=jobs.TRANSCODE)
        async def transcode(job: jobs.TranscodeInput) -> jobs.TranscodeResult:
            attempts.append(activity.info().attempt)
            return StandInFarm.result(job)

        async with Worker(client, task_queue=h.farm_queue,
                          activities=[h.farm.probe, transcode, h.farm.remove_output]):
            outcome = await handle.result()

    assert outcome.state == "READY"
    assert attempts == [2]  # the dead worker's attempt timed out, a new one finished it
    assert len(h.books.ready) == 1


async def _until_transcoding(handle: WorkflowHandle[Any, Any]) -> None:
    for _ in range(200):
        progress = await handle.query(jobs.PROGRESS_QUERY, result_type=jobs.ProgressUpdate)
        if progress.phase == "transcoding" and progress.percent > 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the farm never reported progress: {progress}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 (loopback)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_the_worker_process_reports_health_and_stops_on_sigterm(infra: Settings) -> None:
    port = _free_port()
    env = {**os.environ, "VORA_CONTROL_WORKER_METRICS_PORT": str(port)}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control.worker", cwd=REPO, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        status, body = 0, ""
        for _ in range(100):
            await asyncio.sleep(0.1)
            try:
                status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz")
            except OSError:
                continue
            if status == 200:
                break
        assert status == 200, body
        assert json.loads(body)["checks"] == {"temporal": "ok"}
        _, metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        assert "vora_control_worker_temporal_connected 1.0" in metrics
        assert "temporal_worker_start_total" in metrics  # the SDK's own metrics
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(worker.communicate(), timeout=40)
    assert worker.returncode == 0, stderr.decode()[-2000:]
    assert b'"draining"' in stderr
