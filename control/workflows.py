"""The Conductor: Temporal workflows that turn an upload into a ladder, or delete a video.

Workflows only orchestrate. Media work runs as farm activities (called by name on
the farm's task queue), bookkeeping as control activities on this worker's queue.
Nothing here reads the clock, the environment or the network except through
Temporal's APIs, so a replay of a history takes exactly the same path.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import exceptions, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from control.ladder import (
        TRANSCODE_SETTINGS_ACTIVITY,
        TranscodeSettings,
        UnplayableSourceError,
        plan_ladder,
    )
    from vora import jobs, storage
    from vora.jobs import (
        DeleteWorkflowInput,
        LadderPlan,
        MarkDeletedInput,
        MarkFailedInput,
        MarkReadyInput,
        ProbeInput,
        ProbeResult,
        ProgressUpdate,
        RemoveOutputInput,
        RemoveSourceInput,
        TranscodeHeartbeat,
        TranscodeInput,
        TranscodeResult,
        TranscodeWorkflowInput,
    )

# A delete workflow tells a running transcode that it is about to cancel it; the
# transcode answers TRANSCODE_CLOSED_SIGNAL when it ends, after its clean-up. (A cancel
# request is accepted even by a closed workflow, a signal is not: that is how a delete
# learns whether there is a transcode to wait for.)
DELETE_REQUESTED_SIGNAL = "delete_requested"
TRANSCODE_CLOSED_SIGNAL = "transcode_closed"
# Error type of a transcode that failed for a reason other than the media.
TRANSCODE_FAILED_ERROR = "TranscodeFailed"
# Error type of a workflow started with ids the server could not have generated.
INVALID_INPUT_ERROR = "InvalidWorkflowInput"

# Progress is written to PostgreSQL on each phase change, and while transcoding only
# when it moved at least this much *and* this much workflow time passed.
PROGRESS_STEP_PERCENT = 5.0
PROGRESS_MIN_INTERVAL = timedelta(seconds=5)

SETTINGS_TIMEOUT = timedelta(seconds=10)
BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
REMOVE_TIMEOUT = timedelta(minutes=10)
# FFmpeg has its own limit; this leaves time to upload the last segments.
TRANSCODE_UPLOAD_MARGIN = timedelta(minutes=10)
PROBE_MARGIN = timedelta(seconds=60)
REASON_MAX_CHARS = 300

# Bad media is never retried; everything else is retried with backoff. Eight attempts
# wait 1+2+4+...+60 s = about 2 minutes in all: an object store restart (tests/reliability
# measured 5-20 s for SeaweedFS) must not fail a video, and 5 attempts (15 s) did.
MEDIA_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                          maximum_interval=timedelta(minutes=1), maximum_attempts=8,
                          non_retryable_error_types=[jobs.BAD_MEDIA_ERROR])
# Bookkeeping must land eventually (PostgreSQL may be down for a while).
BOOKKEEPING_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                maximum_interval=timedelta(minutes=1))
# Progress is best effort: a lost update is overwritten by the next one.
PROGRESS_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=2)
COMPENSATION_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                                 maximum_interval=timedelta(seconds=30), maximum_attempts=10)
SETTINGS_RETRY = RetryPolicy(maximum_attempts=3)


@dataclass
class TranscodeOutcome:
    """How a transcode ended for the uploader: READY, or FAILED with the reason."""

    video_id: str
    state: str
    reason: str = ""


@dataclass
class Failure:
    reason: str
    bad_media: bool


def failure_reason(error: BaseException, phase: str) -> Failure:
    """A reason a person can act on; never a stack trace or an internal message."""
    if isinstance(error, UnplayableSourceError):
        return Failure(_first_line(str(error)), bad_media=True)
    cause = error.cause if isinstance(error, ActivityError) else error
    if isinstance(cause, ApplicationError) and cause.type == jobs.BAD_MEDIA_ERROR:
        return Failure(_first_line(cause.message) or "the file is not a video Vora can read",
                       bad_media=True)
    if isinstance(cause, exceptions.TimeoutError):
        return Failure(f"processing timed out while {phase}: the transcoding farm stopped "
                       "answering; upload the video again later, or contact support if it "
                       "keeps happening", bad_media=False)
    return Failure(f"processing failed while {phase} because of a fault on our side, not in "
                   "your file; upload the video again later, or contact support if it keeps "
                   "happening", bad_media=False)


def _check_ids(video_id: str, upload_id: str) -> None:
    """Refuse ids the server never generated, before they reach an object key."""
    try:
        storage.validate_video_id(video_id)
        if upload_id:
            storage.validate_upload_id(upload_id)
    except storage.InvalidIdError as exc:
        raise ApplicationError(str(exc), type=INVALID_INPUT_ERROR, non_retryable=True) from None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:REASON_MAX_CHARS]


async def _load_settings() -> TranscodeSettings:
    """The worker's settings, recorded in the history so every replay sees the same."""
    config: TranscodeSettings = await workflow.execute_local_activity(
        TRANSCODE_SETTINGS_ACTIVITY, result_type=TranscodeSettings,
        start_to_close_timeout=SETTINGS_TIMEOUT, retry_policy=SETTINGS_RETRY)
    return config


async def _bookkeeping(name: str, arg: object) -> None:
    await workflow.execute_activity(name, arg, start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                                    retry_policy=BOOKKEEPING_RETRY)


async def _remove_output(video_id: str, farm_queue: str, retry: RetryPolicy) -> None:
    await workflow.execute_activity(
        jobs.REMOVE_OUTPUT, RemoveOutputInput(video_id=video_id), task_queue=farm_queue,
        start_to_close_timeout=REMOVE_TIMEOUT, retry_policy=retry)


@workflow.defn(name=jobs.TRANSCODE_WORKFLOW)
class TranscodeVideoWorkflow:
    """Probe -> plan -> transcode -> mark READY; on failure compensate and mark FAILED."""

    def __init__(self) -> None:
        self._video_id = ""
        self._phase = "queued"
        self._percent = 0.0
        self._recorded_percent = 0.0
        self._recorded_at: datetime | None = None
        self._delete_requested = False

    @workflow.query(name=jobs.PROGRESS_QUERY)
    def progress(self) -> ProgressUpdate:
        return ProgressUpdate(video_id=self._video_id, phase=self._phase, percent=self._percent)

    @workflow.signal(name=jobs.PROGRESS_SIGNAL)
    def on_progress(self, heartbeat: TranscodeHeartbeat) -> None:
        # Signals may arrive late or out of order: progress only moves forward.
        if self._phase == "transcoding":
            self._percent = max(self._percent, min(100.0, round(heartbeat.percent, 1)))

    @workflow.signal(name=DELETE_REQUESTED_SIGNAL)
    def on_delete_requested(self) -> None:
        self._delete_requested = True

    @workflow.run
    async def run(self, job: TranscodeWorkflowInput) -> TranscodeOutcome:
        self._video_id = job.video_id
        _check_ids(job.video_id, job.upload_id or "missing")
        try:
            config = await _load_settings()
            return await self._transcode_or_fail(job, config)
        except BaseException as exc:
            if is_cancelled_exception(exc):
                self._phase = "cancelled"
                await _remove_output(job.video_id, job.farm_task_queue, COMPENSATION_RETRY)
            raise
        finally:
            if self._delete_requested:
                await self._tell_deleter(job.video_id)

    async def _transcode_or_fail(self, job: TranscodeWorkflowInput,
                                 config: TranscodeSettings) -> TranscodeOutcome:
        try:
            result = await self._probe_and_transcode(job, config)
        except (ActivityError, UnplayableSourceError) as exc:
            if is_cancelled_exception(exc):
                raise
            return await self._fail(job, failure_reason(exc, self._phase))
        await self._enter_phase("publishing", 100.0)
        await self._mark_ready(job, result)
        self._phase = "done"
        return TranscodeOutcome(video_id=job.video_id, state="READY")

    async def _mark_ready(self, job: TranscodeWorkflowInput, result: TranscodeResult) -> None:
        ready = MarkReadyInput(
            video_id=job.video_id, renditions=result.renditions,
            duration_seconds=result.duration_seconds, manifest_key=result.master_key,
            thumbnail_key=result.thumbnail_key)
        try:
            await _bookkeeping(jobs.MARK_READY, ready)
        except ActivityError as exc:
            # Control refused the result for good (the video left PROCESSING some other
            # way): the published ladder would belong to nobody, so remove it.
            if not is_cancelled_exception(exc):
                self._phase = "failed"
                await _remove_output(job.video_id, job.farm_task_queue, COMPENSATION_RETRY)
            raise

    async def _probe_and_transcode(self, job: TranscodeWorkflowInput,
                                   config: TranscodeSettings) -> TranscodeResult:
        await self._enter_phase("probing", 0.0)
        probe = await workflow.execute_activity(
            jobs.PROBE_SOURCE, ProbeInput(video_id=job.video_id, upload_id=job.upload_id),
            result_type=ProbeResult, task_queue=job.farm_task_queue,
            start_to_close_timeout=timedelta(seconds=config.probe_timeout_seconds) + PROBE_MARGIN,
            retry_policy=MEDIA_RETRY)
        plan = plan_ladder(probe, config)
        await self._enter_phase("transcoding", 0.0)
        return await self._run_transcode(job, config, plan, probe.duration_seconds)

    async def _run_transcode(self, job: TranscodeWorkflowInput, config: TranscodeSettings,
                             plan: LadderPlan, duration: float) -> TranscodeResult:
        handle = workflow.start_activity(
            jobs.TRANSCODE,
            TranscodeInput(video_id=job.video_id, upload_id=job.upload_id, plan=plan,
                           duration_seconds=duration),
            result_type=TranscodeResult, task_queue=job.farm_task_queue,
            start_to_close_timeout=(timedelta(seconds=config.transcode_timeout_seconds)
                                    + TRANSCODE_UPLOAD_MARGIN),
            heartbeat_timeout=timedelta(seconds=config.heartbeat_timeout_seconds),
            retry_policy=MEDIA_RETRY,
            # Clean-up must not start before the farm has killed FFmpeg and stopped
            # uploading, or late segments would survive the removal.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
        try:
            while not handle.done():
                await workflow.wait_condition(lambda: handle.done() or self._progress_due())
                if not handle.done():
                    await self._record_progress()
        except asyncio.CancelledError:
            handle.cancel()
            await workflow.wait([handle])
            raise
        result: TranscodeResult = await handle
        return result

    def _progress_due(self) -> bool:
        if self._percent - self._recorded_percent < PROGRESS_STEP_PERCENT:
            return False
        last = self._recorded_at
        return last is None or workflow.now() - last >= PROGRESS_MIN_INTERVAL

    async def _enter_phase(self, phase: str, percent: float) -> None:
        self._phase, self._percent = phase, percent
        await self._record_progress()

    async def _record_progress(self) -> None:
        self._recorded_percent, self._recorded_at = self._percent, workflow.now()
        update = ProgressUpdate(video_id=self._video_id, phase=self._phase, percent=self._percent)
        try:
            await workflow.execute_activity(
                jobs.RECORD_PROGRESS, update, start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                retry_policy=PROGRESS_RETRY)
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise
            workflow.logger.warning("progress not recorded: %s", exc.cause or exc)

    async def _fail(self, job: TranscodeWorkflowInput, failure: Failure) -> TranscodeOutcome:
        """Compensate (remove partial output), then mark FAILED with the reason."""
        failed_while = self._phase
        self._phase = "failed"
        try:
            await _remove_output(job.video_id, job.farm_task_queue, COMPENSATION_RETRY)
        except ActivityError as exc:
            workflow.logger.error("partial output not removed: %s", exc.cause or exc)
        await _bookkeeping(jobs.MARK_FAILED,
                           MarkFailedInput(video_id=job.video_id, reason=failure.reason))
        if failure.bad_media:
            # The uploader's file, not the system, is at fault: the workflow did its job.
            return TranscodeOutcome(video_id=job.video_id, state="FAILED", reason=failure.reason)
        # Our fault: fail the workflow so operators see it, after the video is marked.
        raise ApplicationError(f"{failure.reason} (failed while {failed_while})",
                               type=TRANSCODE_FAILED_ERROR, non_retryable=True)

    async def _tell_deleter(self, video_id: str) -> None:
        """Let the waiting delete workflow go on: nothing of ours is writing any more."""
        deleter = workflow.get_external_workflow_handle(jobs.delete_workflow_id(video_id))
        try:
            await deleter.signal(TRANSCODE_CLOSED_SIGNAL)
        except FailureError as exc:
            workflow.logger.warning("delete workflow not told: %s", exc.message)


@workflow.defn(name=jobs.DELETE_WORKFLOW)
class DeleteVideoWorkflow:
    """Cancel a running transcode, remove output and source, then mark the video DELETED."""

    def __init__(self) -> None:
        self._transcode_closed = False

    @workflow.signal(name=TRANSCODE_CLOSED_SIGNAL)
    def transcode_closed(self) -> None:
        self._transcode_closed = True

    @workflow.run
    async def run(self, job: DeleteWorkflowInput) -> None:
        _check_ids(job.video_id, job.upload_id)
        config = await _load_settings()
        if await self._cancel_transcode(job.video_id):
            await self._wait_for_transcode_clean_up(config)
        await _remove_output(job.video_id, job.farm_task_queue, BOOKKEEPING_RETRY)
        if job.upload_id:
            await workflow.execute_activity(
                jobs.REMOVE_SOURCE, RemoveSourceInput(upload_id=job.upload_id),
                task_queue=job.farm_task_queue, start_to_close_timeout=REMOVE_TIMEOUT,
                retry_policy=BOOKKEEPING_RETRY)
        await _bookkeeping(jobs.MARK_DELETED, MarkDeletedInput(video_id=job.video_id))

    async def _cancel_transcode(self, video_id: str) -> bool:
        """True when a transcode was running and has been asked to cancel."""
        handle = workflow.get_external_workflow_handle(jobs.transcode_workflow_id(video_id))
        try:
            await handle.signal(DELETE_REQUESTED_SIGNAL)
        except FailureError as exc:
            workflow.logger.info("no running transcode to cancel: %s", exc.message)
            return False
        await handle.cancel()
        return True

    async def _wait_for_transcode_clean_up(self, config: TranscodeSettings) -> None:
        # The transcode waits for the farm to kill FFmpeg (at most a heartbeat timeout)
        # and removes its output; removing ours before that could race late segments.
        limit = timedelta(seconds=4 * config.heartbeat_timeout_seconds) + REMOVE_TIMEOUT
        try:
            await workflow.wait_condition(lambda: self._transcode_closed, timeout=limit)
        except TimeoutError:
            workflow.logger.warning("transcode did not report its clean-up; removing anyway")
