"""Stand-in farm and bookkeeping activities under the real names, and a harness that runs
the real Conductor worker plus a stand-in farm worker, each on a fresh task queue.

The stand-ins are real activity implementations of the same contract (vora/jobs.py):
they heartbeat, signal their workflow with PROGRESS_SIGNAL, honour cancellation and
raise the contract's errors. They record what happened in one shared event log.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import Worker

from control.worker import conductor_worker
from vora import jobs, storage
from vora.config import Settings

HD_PROBE = jobs.ProbeResult(duration_seconds=4.0, has_video=True, has_audio=True, width=1280,
                            height=720, frame_rate=25.0, video_codec="h264", audio_codec="aac")


def bad_media(message: str = "the file has no video stream") -> ApplicationError:
    return ApplicationError(message, type=jobs.BAD_MEDIA_ERROR, non_retryable=True)


@dataclass
class StandInFarm:
    """PROBE_SOURCE, TRANSCODE, REMOVE_OUTPUT, REMOVE_SOURCE as the farm would run them."""

    client: Client
    events: list[str]
    probe_result: jobs.ProbeResult = field(default_factory=lambda: HD_PROBE)
    probe_error: Callable[[], BaseException] | None = None
    # The first `transcode_failures` attempts raise `transcode_error()`.
    transcode_error: Callable[[], BaseException] | None = None
    transcode_failures: int = 0
    steps: list[float] = field(default_factory=lambda: [25.0, 50.0, 75.0, 100.0])
    step_seconds: float = 0.2
    probe_attempts: int = 0
    transcode_attempts: int = 0
    transcode_inputs: list[jobs.TranscodeInput] = field(default_factory=list)
    heartbeat_timeouts: list[float] = field(default_factory=list)
    transcode_started: asyncio.Event = field(default_factory=asyncio.Event)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.probe, self.transcode, self.remove_output, self.remove_source]

    @activity.defn(name=jobs.PROBE_SOURCE)
    async def probe(self, job: jobs.ProbeInput) -> jobs.ProbeResult:
        self.probe_attempts += 1
        self.events.append("probe")
        if self.probe_error is not None:
            raise self.probe_error()
        return self.probe_result

    @activity.defn(name=jobs.TRANSCODE)
    async def transcode(self, job: jobs.TranscodeInput) -> jobs.TranscodeResult:
        self.transcode_attempts += 1
        self.transcode_inputs.append(job)
        timeout = activity.info().heartbeat_timeout
        self.heartbeat_timeouts.append(timeout.total_seconds() if timeout else 0.0)
        self.events.append("transcode")
        self.transcode_started.set()
        if self.transcode_error is not None and self.transcode_attempts <= self.transcode_failures:
            raise self.transcode_error()
        try:
            await self._encode()
        except asyncio.CancelledError:
            self.events.append("ffmpeg killed")
            raise
        return self.result(job)

    async def _encode(self) -> None:
        workflow = self.client.get_workflow_handle(activity.info().workflow_id or "")
        for percent in self.steps:
            await asyncio.sleep(self.step_seconds)
            beat = jobs.TranscodeHeartbeat(percent=percent, fps=100.0, speed=4.0)
            activity.heartbeat(beat)
            # Progress signals are best effort, as in the farm: a closed workflow is fine.
            with contextlib.suppress(RPCError):
                await workflow.signal(jobs.PROGRESS_SIGNAL, beat)

    @staticmethod
    def result(job: jobs.TranscodeInput) -> jobs.TranscodeResult:
        renditions = [
            jobs.RenditionResult(
                name=r.name, width=r.width, height=r.height, bandwidth=r.max_bitrate,
                average_bandwidth=r.video_bitrate, codecs="avc1.64001f,mp4a.40.2",
                frame_rate=job.plan.frame_rate,
                playlist_key=storage.playlist_key(job.video_id, r.name))
            for r in job.plan.renditions
        ]
        return jobs.TranscodeResult(
            renditions=renditions, duration_seconds=job.duration_seconds,
            thumbnail_key=storage.thumbnail_key(job.video_id),
            master_key=storage.master_key(job.video_id))

    @activity.defn(name=jobs.REMOVE_OUTPUT)
    async def remove_output(self, job: jobs.RemoveOutputInput) -> None:
        self.events.append("remove output")

    @activity.defn(name=jobs.REMOVE_SOURCE)
    async def remove_source(self, job: jobs.RemoveSourceInput) -> None:
        self.events.append("remove source")


@dataclass
class StandInBookkeeping:
    """RECORD_PROGRESS, MARK_READY, MARK_FAILED, MARK_DELETED, remembering each call."""

    events: list[str]
    progress: list[jobs.ProgressUpdate] = field(default_factory=list)
    ready: list[jobs.MarkReadyInput] = field(default_factory=list)
    failed: list[jobs.MarkFailedInput] = field(default_factory=list)
    deleted: list[jobs.MarkDeletedInput] = field(default_factory=list)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.record_progress, self.mark_ready, self.mark_failed, self.mark_deleted]

    @activity.defn(name=jobs.RECORD_PROGRESS)
    async def record_progress(self, update: jobs.ProgressUpdate) -> None:
        self.progress.append(update)

    @activity.defn(name=jobs.MARK_READY)
    async def mark_ready(self, ready: jobs.MarkReadyInput) -> None:
        self.events.append("mark ready")
        self.ready.append(ready)

    @activity.defn(name=jobs.MARK_FAILED)
    async def mark_failed(self, failed: jobs.MarkFailedInput) -> None:
        self.events.append("mark failed")
        self.failed.append(failed)

    @activity.defn(name=jobs.MARK_DELETED)
    async def mark_deleted(self, deleted: jobs.MarkDeletedInput) -> None:
        self.events.append("mark deleted")
        self.deleted.append(deleted)


@dataclass
class Harness:
    client: Client
    queue: str
    farm: StandInFarm
    books: StandInBookkeeping
    video_id: str = field(default_factory=storage.new_video_id)
    upload_id: str = field(default_factory=storage.new_upload_id)

    @property
    def farm_queue(self) -> str:
        return f"{self.queue}-farm"

    def transcode_input(self) -> jobs.TranscodeWorkflowInput:
        return jobs.TranscodeWorkflowInput(video_id=self.video_id, upload_id=self.upload_id,
                                           farm_task_queue=self.farm_queue)

    def delete_input(self) -> jobs.DeleteWorkflowInput:
        return jobs.DeleteWorkflowInput(video_id=self.video_id, upload_id=self.upload_id,
                                        farm_task_queue=self.farm_queue)


def new_harness(client: Client, **farm_options: Any) -> Harness:
    events: list[str] = []
    return Harness(client=client, queue=f"conductor-test-{uuid.uuid4().hex}",
                   farm=StandInFarm(client, events, **farm_options),
                   books=StandInBookkeeping(events))


@asynccontextmanager
async def running(harness: Harness, settings: Settings,
                  farm_worker: bool = True) -> AsyncIterator[Harness]:
    """The real Conductor worker (stand-in bookkeeping) and a stand-in farm worker."""
    control = conductor_worker(harness.client, settings, harness.queue,
                               harness.books.activities())
    async with control:
        if not farm_worker:
            yield harness
            return
        async with Worker(harness.client, task_queue=harness.farm_queue,
                          activities=harness.farm.activities()):
            yield harness
