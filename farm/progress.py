"""Turning FFmpeg's progress into activity heartbeats and signals to the workflow."""

from __future__ import annotations

import time
from typing import Protocol

from temporalio import activity

from farm.metrics import ENCODE_FPS_NOW
from farm.process import Progress
from vora import jobs
from vora.logs import get_logger

log = get_logger(__name__)


class ProgressSignaller(Protocol):
    """Sends a TranscodeHeartbeat to a workflow (PROGRESS_SIGNAL)."""

    async def signal(self, workflow_id: str, beat: jobs.TranscodeHeartbeat) -> None: ...


class TemporalSignaller:
    def __init__(self, client: object) -> None:
        from temporalio.client import Client

        assert isinstance(client, Client)
        self.client = client

    async def signal(self, workflow_id: str, beat: jobs.TranscodeHeartbeat) -> None:
        await self.client.get_workflow_handle(workflow_id).signal(jobs.PROGRESS_SIGNAL, beat)


class ProgressReporter:
    """Heartbeats every progress block; signals the workflow at most every ``interval``."""

    def __init__(self, signaller: ProgressSignaller | None, duration: float, pipeline: str,
                 interval: float) -> None:
        self.signaller = signaller
        self.duration = max(duration, 0.001)
        self.pipeline = pipeline
        self.interval = interval
        self._last_signal = 0.0
        self.last: jobs.TranscodeHeartbeat = jobs.TranscodeHeartbeat(0.0, pipeline=pipeline)

    async def __call__(self, progress: Progress) -> None:
        percent = 100.0 if progress.done else min(99.9, 100 * progress.out_seconds / self.duration)
        self.last = jobs.TranscodeHeartbeat(percent=round(percent, 1), fps=progress.fps,
                                            speed=progress.speed, pipeline=self.pipeline)
        ENCODE_FPS_NOW.labels(self.pipeline).set(progress.fps)
        activity.heartbeat(self.last)
        now = time.monotonic()
        if progress.done or now - self._last_signal >= self.interval:
            self._last_signal = now
            await self.send(self.last)

    async def send(self, beat: jobs.TranscodeHeartbeat) -> None:
        if self.signaller is None:
            return
        workflow_id = activity.info().workflow_id or ""
        try:
            await self.signaller.signal(workflow_id, beat)
        except Exception as exc:  # progress is advisory: never fail the transcode for it
            log.warning("progress signal failed", workflow_id=workflow_id, reason=str(exc))
