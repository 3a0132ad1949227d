"""A real farm worker killed in the middle of a real transcode: control shows its job
requeued and counts it in the backlog until Temporal's heartbeat timeout hands it to
another real worker, which finishes it; that worker's counters then drive throughput."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from farm.objects import S3OutputStore
from tests.capacity.backlog_workflow import TranscodeOnFarm
from tests.capacity.conftest import (
    ACTIVITY_HEARTBEAT_TIMEOUT_SECONDS,
    LOST_AFTER_SECONDS,
    NAMESPACE,
    ControlProcess,
    wait_for,
)
from vora import jobs, storage
from vora.config import Settings

SOURCE_SECONDS = 30


@pytest.fixture
def source(control: ControlProcess, tmp_path: Path) -> Iterator[str]:
    """A 30 s 640x360 source in bucket-raw (removed afterwards); its upload id."""
    path = tmp_path / "source.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size=640x360:rate=30:duration={SOURCE_SECONDS}", "-f", "lavfi",
                    "-i", f"sine=frequency=440:duration={SOURCE_SECONDS}", "-c:v", "libx264",
                    "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(path)],
                   check=True, timeout=60)
    settings = control.settings
    s3 = storage.s3_client(settings)
    upload_id = storage.new_upload_id()
    key = storage.raw_original_key(upload_id)
    s3.put_object(Bucket=settings.bucket_raw, Key=key, Body=path.read_bytes())
    yield upload_id
    s3.delete_object(Bucket=settings.bucket_raw, Key=key)


def transcode_input(video_id: str, upload_id: str) -> dict[str, Any]:
    plan = jobs.LadderPlan(renditions=[jobs.RenditionPlan("360p", 640, 360, 800_000,
                                                          1_000_000, 96_000, "main")],
                           segment_seconds=6, frame_rate=30.0, has_audio=True)
    return dataclasses.asdict(jobs.TranscodeInput(video_id, upload_id, plan,
                                                  float(SOURCE_SECONDS)))


def running_on(control: ControlProcess, node_id: str, video_id: str) -> dict[str, Any] | None:
    node = control.known_node(node_id)
    return next((j for j in node["running_jobs"] if j["video_id"] == video_id), None)


async def _scenario(control: ControlProcess, start_farm: Any, upload_id: str,
                    video_id: str) -> None:
    settings: Settings = control.settings
    client = await Client.connect(settings.temporal_address, namespace=NAMESPACE)
    task_queue = f"capacity-tests-{secrets.token_hex(4)}"
    # "slow" keeps the first attempt running long enough to be caught mid-job.
    first = await asyncio.to_thread(start_farm, 1, "slow")
    async with Worker(client, task_queue=task_queue, workflows=[TranscodeOnFarm]):
        handle = await client.start_workflow(
            TranscodeOnFarm.run, args=[transcode_input(video_id, upload_id),
                                       ACTIVITY_HEARTBEAT_TIMEOUT_SECONDS],
            id=f"capacity-transcode-{video_id}", task_queue=task_queue)
        try:
            await asyncio.to_thread(wait_for, lambda: running_on(control, first.node_id,
                                                                 video_id), 20,
                                    "the first worker to report the job")
            first.process.kill()
            first.process.wait()
            await asyncio.to_thread(
                wait_for, lambda: control.known_node(first.node_id)["state"] == "LOST",
                LOST_AFTER_SECONDS + 3, "the killed worker to be LOST")
            job = running_on(control, first.node_id, video_id)
            assert job is not None and job["status"] == "requeued"
            capacity = control.api("/v1/farm/capacity")
            requeued = {j["video_id"]: j for j in capacity["requeued_jobs"]}
            assert requeued[video_id]["counted_in_backlog"] is True
            assert capacity["backlog"] >= 1

            second = await asyncio.to_thread(start_farm, 1)
            # Temporal retries the job on the live worker after the heartbeat timeout.
            await asyncio.to_thread(wait_for, lambda: running_on(control, second.node_id,
                                                                 video_id),
                                    ACTIVITY_HEARTBEAT_TIMEOUT_SECONDS + 15,
                                    "the job to run again on the second worker")
            assert (running_on(control, first.node_id, video_id) or {}).get(
                "status") == "running elsewhere"
            capacity = control.api("/v1/farm/capacity")
            assert video_id not in {j["video_id"] for j in capacity["requeued_jobs"]}
            await asyncio.wait_for(handle.result(), timeout=90)
        finally:
            if first.process.poll() is None:
                first.stop()
            with contextlib.suppress(RPCError):  # already completed: the normal case
                await handle.terminate(reason="capacity test done")

    def finished() -> dict[str, Any] | None:
        node = control.known_node(second.node_id)
        return node if node["jobs_completed"] == 1 and not node["running_jobs"] else None

    node = await asyncio.to_thread(wait_for, finished, 5, "the second worker's counters")
    assert node["output_seconds"] == pytest.approx(SOURCE_SECONDS, abs=1.0)


def test_a_killed_workers_job_is_requeued_then_finished_elsewhere(
        control: ControlProcess, start_farm: Any, source: str) -> None:
    video_id = storage.new_video_id()
    started = time.monotonic()
    try:
        asyncio.run(_scenario(control, start_farm, source, video_id))
    finally:
        S3OutputStore(control.settings).remove_output(video_id)
    assert time.monotonic() - started < 120
