"""Scenario 6, the transcode half: the stack's S3 stops (`vora dev stop s3`) while FFmpeg
encodes, so the farm's publish meets a dead object store; S3 comes back and the
transcode activity's retries finish the video. The user meanwhile sees PROCESSING."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from control.workflows import TranscodeOutcome
from tests.conductor.test_end_to_end import (
    Video,
    make_source,
    upload_processing_video,
    video_row,
)
from tests.e2e.helpers import rest
from tests.reliability.farmrun import (
    FarmWorker,
    assert_playable_ladder,
    conductor,
    farm_workers,
    start_transcode,
    transcode_started,
    until_encoding,
)
from vora import devstack, jobs
from vora.client import mint_user_token
from vora.config import Settings

HEARTBEAT_TIMEOUT = 10


class StateWatcher:
    """Polls GET /v1/videos/{id} as its owner would, in a thread, and keeps every state."""

    def __init__(self, settings: Settings, video_id: str) -> None:
        self.settings, self.video_id = settings, video_id
        self.token = mint_user_token(settings, "conductor-test")  # the rows' owner
        self.states: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            status, body = rest(self.settings, "GET", f"/v1/videos/{self.video_id}", self.token)
            self.states.append(str(body["video"]["state"]) if status == 200 else f"HTTP {status}")

    def close(self) -> list[str]:
        self.stop.set()
        self.thread.join(10)
        return self.states


async def _until_pending_attempt(handle: WorkflowHandle[Any, Any], attempt: int,
                                 within: float = 90) -> str:
    """Wait until the transcode activity waits for (or runs) ``attempt``, i.e. attempt - 1
    attempts failed; returns the failure Temporal recorded for the last one."""
    deadline = time.monotonic() + within
    while True:
        described = await handle.describe()
        for pending in described.raw_description.pending_activities:
            if pending.activity_type.name == jobs.TRANSCODE and pending.attempt >= attempt:
                return str(pending.last_failure.message)
        assert time.monotonic() < deadline, f"the transcode never reached attempt {attempt}"
        await asyncio.sleep(0.2)


@dataclass
class OutageRun:
    outcome: TranscodeOutcome
    attempt: int  # the transcode attempt that finished
    failure: str
    farm_log: str
    states: list[str]
    outage_seconds: float


async def _until_publish_retried(farm: FarmWorker, within: float = 90) -> str:
    """Wait until the farm logs a publish that met the dead S3 and will be retried in the
    same attempt; returns that log line."""
    deadline = time.monotonic() + within
    while True:
        for line in farm.log.read_text(errors="replace").splitlines():
            if "publishing failed; retrying" in line:
                return line
        assert time.monotonic() < deadline, "the farm never retried a publish"
        await asyncio.sleep(0.2)


async def _transcode_through_an_s3_outage(client: Client, stack: Settings, video: Video,
                                          tmp_path: Path, hold_until_attempt: int
                                          ) -> OutageRun:
    """Transcode ``video`` on a private farm node; stop S3 once FFmpeg encodes and start
    it again once the transcode is pending ``hold_until_attempt``, or, when that is 1,
    once the farm is retrying its publish inside the first attempt (the farm's
    VORA_FARM_PUBLISH_RETRY_SECONDS is 0 otherwise, so every S3 failure fails an
    attempt)."""
    settings = stack.model_copy(update={"farm_heartbeat_timeout_seconds": HEARTBEAT_TIMEOUT})
    farm_queue = f"reliability-farm-{uuid.uuid4().hex}"
    watcher = StateWatcher(stack, video.video_id)
    s3_down = False
    try:
        with farm_workers(tmp_path, farm_queue, HEARTBEAT_TIMEOUT) as start:
            farm: FarmWorker = start("farm", VORA_FARM_PUBLISH_RETRY_SECONDS=(
                "120" if hold_until_attempt == 1 else "0"))
            await asyncio.to_thread(farm.wait_polling)
            async with conductor(client, settings) as queue:
                handle = await start_transcode(client, queue, farm_queue, video,
                                               run_seconds=400)
                await until_encoding(handle, farm)
                stopped_at = time.monotonic()
                s3_down = True
                stopping = asyncio.create_task(asyncio.to_thread(devstack.stop, stack, ["s3"]))
                if hold_until_attempt == 1:
                    failure = await _until_publish_retried(farm)
                else:
                    failure = await _until_pending_attempt(handle, hold_until_attempt)
                await stopping
                await asyncio.to_thread(devstack.start, stack, ["s3"])
                await asyncio.to_thread(devstack.wait_healthy, stack, ["s3"], 60)
                s3_down = False
                outage = time.monotonic() - stopped_at
                outcome = await asyncio.wait_for(handle.result(), timeout=120)
                states = watcher.close()
            attempt, _, _ = await transcode_started(handle)
    finally:
        if s3_down:
            devstack.start(stack, ["s3"])
            devstack.wait_healthy(stack, ["s3"], timeout=60)
        watcher.close()
    return OutageRun(outcome, attempt, failure, farm.log.read_text(errors="replace"), states,
                     outage)


def _assert_ready_after_the_outage(run: OutageRun, stack: Settings, video: Video,
                                   tmp_path: Path, min_attempt: int) -> None:
    assert run.outcome.state == "READY", run.outcome
    assert run.attempt >= min_attempt, f"attempt {run.attempt} finished"
    # What an operator reads in Temporal for the failed attempt: short and to the point
    # (Temporal keeps a failure only up to 4 KiB; boto's chained tracebacks were longer).
    assert "object storage failed while" in run.failure, run.failure
    assert "Could not connect to the endpoint URL" in run.failure, run.failure
    assert "Could not connect to the endpoint URL" in run.farm_log, run.farm_log[-3000:]
    assert run.states and set(run.states) <= {"PROCESSING", "READY"}, run.states
    row = video_row(stack, video.video_id)
    assert row is not None and row["state"] == "READY", row
    assert_playable_ladder(stack, video.video_id, ["720p", "360p"], tmp_path)


async def test_s3_down_during_a_transcode_is_retried_to_ready(
        client: Client, stack: Settings, tmp_path: Path) -> None:
    """Pass: S3 is stopped while FFmpeg encodes; the transcode activity fails on S3 (the
    farm logs the connection error) and Temporal retries it (a pending attempt >= 2 while
    S3 is down); every poll of the owner's GET /v1/videos/{id} meanwhile says PROCESSING;
    once S3 is started again the video ends READY through attempt 2 or later, with a
    master listing 720p and 360p and every listed segment present and decodable."""
    video = upload_processing_video(stack, await make_source(tmp_path, "1280x720", 8))
    run = await _transcode_through_an_s3_outage(client, stack, video, tmp_path, 2)
    await asyncio.to_thread(_assert_ready_after_the_outage, run, stack, video, tmp_path, 2)


async def test_s3_down_at_publish_is_ridden_out_without_a_second_encode(
        client: Client, stack: Settings, tmp_path: Path) -> None:
    """Pass: S3 is stopped while FFmpeg encodes; the finished encode's publish meets the
    dead S3 and is retried inside the same attempt (the farm logs the retry, with the
    connection error); once S3 is back the video ends READY through attempt 1 (no second
    download or encode), PROCESSING all along, with a consistent, playable ladder."""
    video = upload_processing_video(stack, await make_source(tmp_path, "1280x720", 8))
    run = await _transcode_through_an_s3_outage(client, stack, video, tmp_path, 1)
    assert run.outcome.state == "READY", run.outcome
    assert run.attempt == 1, f"attempt {run.attempt} finished: the encode was thrown away"
    assert "Could not connect to the endpoint URL" in run.failure, run.failure
    assert run.states and set(run.states) <= {"PROCESSING", "READY"}, run.states
    assert_playable_ladder(stack, video.video_id, ["720p", "360p"], tmp_path)


@pytest.mark.soak
async def test_s3_down_for_longer_than_five_attempts_still_ends_ready(
        client: Client, stack: Settings, tmp_path: Path) -> None:
    """Pass: as above, but S3 stays down until five transcode attempts failed (the whole
    retry budget before it grew to 8 attempts, about 15 s of backoff, under which this
    video ended FAILED); the video still ends READY, through attempt 6 or later, with
    PROCESSING shown all along."""
    video = upload_processing_video(stack, await make_source(tmp_path, "1280x720", 8))
    run = await _transcode_through_an_s3_outage(client, stack, video, tmp_path, 6)
    await asyncio.to_thread(_assert_ready_after_the_outage, run, stack, video, tmp_path, 6)
    print(f"S3 down {run.outage_seconds:.1f} s; READY on attempt {run.attempt}")
