"""The transcode and delete workflows on the real Temporal dev server, with the real
Conductor worker and stand-in farm/bookkeeping activities registered under the real names."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import ApplicationError

from control.workflows import INVALID_INPUT_ERROR, TRANSCODE_FAILED_ERROR, TranscodeOutcome
from tests.conductor.standins import HD_PROBE, Harness, bad_media, new_harness, running
from vora import jobs, storage
from vora.config import Settings

RUN_TIMEOUT = timedelta(seconds=60)


async def start_transcode(h: Harness) -> WorkflowHandle[Any, TranscodeOutcome]:
    return await h.client.start_workflow(
        jobs.TRANSCODE_WORKFLOW, h.transcode_input(), id=jobs.transcode_workflow_id(h.video_id),
        task_queue=h.queue, result_type=TranscodeOutcome, execution_timeout=RUN_TIMEOUT)


async def transcode(h: Harness) -> TranscodeOutcome:
    outcome: TranscodeOutcome = await h.client.execute_workflow(
        jobs.TRANSCODE_WORKFLOW, h.transcode_input(), id=jobs.transcode_workflow_id(h.video_id),
        task_queue=h.queue, result_type=TranscodeOutcome, execution_timeout=RUN_TIMEOUT)
    return outcome


async def test_a_video_becomes_ready_with_its_ladder(client: Client,
                                                   fast_settings: Settings) -> None:
    h = new_harness(client)
    async with running(h, fast_settings):
        outcome = await transcode(h)

    assert outcome == TranscodeOutcome(video_id=h.video_id, state="READY")
    [ready] = h.books.ready
    assert [(r.name, r.width, r.height) for r in ready.renditions] == [
        ("720p", 1280, 720), ("360p", 640, 360)]  # a 720p source is never upscaled
    assert ready.manifest_key == storage.master_key(h.video_id)
    assert ready.thumbnail_key == storage.thumbnail_key(h.video_id)
    assert ready.duration_seconds == HD_PROBE.duration_seconds
    assert h.farm.heartbeat_timeouts == [2.0]  # settings.farm_heartbeat_timeout_seconds
    [job] = h.farm.transcode_inputs
    assert job.plan.segment_seconds == fast_settings.farm_segment_seconds
    assert h.farm.events == ["probe", "transcode", "mark ready"]
    # Steps of 25 % within a second: only phase changes reach the database.
    assert [(p.phase, p.percent) for p in h.books.progress] == [
        ("probing", 0.0), ("transcoding", 0.0), ("publishing", 100.0)]


async def test_progress_is_queryable_and_recorded_at_a_bounded_rate(
        client: Client, fast_settings: Settings) -> None:
    # 4 % every 0.45 s for 5.9 s: the query follows every signal, the database gets
    # an update only after >= 5 points and >= 5 s.
    h = new_harness(client, steps=[4.0 * i for i in range(1, 14)], step_seconds=0.45)
    async with running(h, fast_settings):
        handle = await start_transcode(h)
        await h.farm.transcode_started.wait()
        await asyncio.sleep(1.6)
        seen = await handle.query(jobs.PROGRESS_QUERY, result_type=jobs.ProgressUpdate)
        outcome = await handle.result()
        done = await handle.query(jobs.PROGRESS_QUERY, result_type=jobs.ProgressUpdate)

    assert outcome.state == "READY"
    assert seen.phase == "transcoding" and 4.0 <= seen.percent <= 16.0
    assert (done.phase, done.percent) == ("done", 100.0)
    during = [p.percent for p in h.books.progress if p.phase == "transcoding"]
    assert during[0] == 0.0 and 2 <= len(during) <= 3, during
    assert all(b - a >= 5.0 for a, b in itertools.pairwise(during))


@pytest.mark.parametrize("where", ["probe", "transcode"])
async def test_bad_media_fails_after_one_attempt_with_a_readable_reason(
        client: Client, fast_settings: Settings, where: str) -> None:
    options: dict[str, object] = (
        {"probe_error": lambda: bad_media("the file is truncated; upload the complete file")}
        if where == "probe" else
        {"transcode_error": lambda: bad_media("the file is truncated; upload the complete file"),
         "transcode_failures": 99})
    h = new_harness(client, **options)
    async with running(h, fast_settings):
        outcome = await transcode(h)

    reason = "the file is truncated; upload the complete file"
    assert outcome == TranscodeOutcome(video_id=h.video_id, state="FAILED", reason=reason)
    assert [f.reason for f in h.books.failed] == [reason]
    assert (h.farm.probe_attempts, h.farm.transcode_attempts) == (
        (1, 0) if where == "probe" else (1, 1))
    assert h.farm.events[-2:] == ["remove output", "mark failed"]  # compensated first
    assert h.books.ready == []


async def test_bad_media_is_final_even_if_the_farm_forgets_non_retryable(
        client: Client, fast_settings: Settings) -> None:
    h = new_harness(client, probe_error=lambda: ApplicationError(
        "the file has no video stream", type=jobs.BAD_MEDIA_ERROR))
    async with running(h, fast_settings):
        outcome = await transcode(h)
    assert (outcome.state, outcome.reason) == ("FAILED", "the file has no video stream")
    assert h.farm.probe_attempts == 1


@pytest.mark.parametrize(("probe", "reason"), [
    (jobs.ProbeResult(duration_seconds=30, has_video=False, has_audio=True),
     "the file has no video stream; upload a video file, not audio only"),
    (jobs.ProbeResult(duration_seconds=3, has_video=True, has_audio=False, width=64, height=48),
     "the video is 64x48; upload a video at least 100 pixels on its short side"),
])
async def test_a_source_that_cannot_make_a_ladder_fails_before_transcoding(
        client: Client, fast_settings: Settings, probe: jobs.ProbeResult, reason: str) -> None:
    h = new_harness(client, probe_result=probe)
    async with running(h, fast_settings):
        outcome = await transcode(h)
    assert (outcome.state, outcome.reason) == ("FAILED", reason)
    assert h.farm.transcode_attempts == 0
    assert h.farm.events == ["probe", "remove output", "mark failed"]


async def test_transient_faults_are_retried_with_backoff(client: Client,
                                                       fast_settings: Settings) -> None:
    h = new_harness(client, transcode_failures=2,
                    transcode_error=lambda: ApplicationError("S3 answered 500 InternalError"))
    async with running(h, fast_settings):
        outcome = await transcode(h)
    assert outcome.state == "READY"
    assert h.farm.transcode_attempts == 3
    assert h.books.failed == []


async def test_an_internal_failure_marks_failed_without_internals_and_fails_the_run(
        client: Client, fast_settings: Settings) -> None:
    secret = "Traceback (most recent call last): KeyError 'nvenc' at /srv/farm/x.py:12"
    h = new_harness(client, transcode_failures=99, transcode_error=lambda: ApplicationError(
        secret, type="EncoderCrashed", non_retryable=True))
    async with running(h, fast_settings):
        with pytest.raises(WorkflowFailureError) as failure:
            await transcode(h)

    [failed] = h.books.failed
    assert failed.reason.startswith("processing failed while transcoding because of a fault "
                                    "on our side, not in your file; upload the video again")
    assert "Traceback" not in failed.reason and "nvenc" not in failed.reason
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == TRANSCODE_FAILED_ERROR
    assert h.farm.events[-2:] == ["remove output", "mark failed"]


async def test_deleting_a_processing_video_kills_the_transcode_and_cleans_up(
        client: Client, fast_settings: Settings) -> None:
    h = new_harness(client, steps=[1.0 * i for i in range(1, 100)], step_seconds=0.3)
    async with running(h, fast_settings):
        transcoding = await start_transcode(h)
        await h.farm.transcode_started.wait()
        await client.execute_workflow(
            jobs.DELETE_WORKFLOW, h.delete_input(), id=jobs.delete_workflow_id(h.video_id),
            task_queue=h.queue, execution_timeout=RUN_TIMEOUT)
        described = await transcoding.describe()

    assert described.status == WorkflowExecutionStatus.CANCELED
    # FFmpeg is killed before anything is removed; the row goes last.
    assert h.farm.events == ["probe", "transcode", "ffmpeg killed", "remove output",
                             "remove output", "remove source", "mark deleted"]
    assert [d.video_id for d in h.books.deleted] == [h.video_id]
    assert h.books.ready == [] and h.books.failed == []


async def test_deleting_a_ready_video_removes_output_and_source(
        client: Client, fast_settings: Settings) -> None:
    h = new_harness(client)
    async with running(h, fast_settings):
        assert (await transcode(h)).state == "READY"
        await client.execute_workflow(
            jobs.DELETE_WORKFLOW, h.delete_input(), id=jobs.delete_workflow_id(h.video_id),
            task_queue=h.queue, execution_timeout=RUN_TIMEOUT)
    assert h.farm.events == ["probe", "transcode", "mark ready", "remove output",
                             "remove source", "mark deleted"]


async def test_a_result_control_refuses_is_removed(client: Client,
                                                   fast_settings: Settings) -> None:
    h = new_harness(client)

    @activity.defn(name=jobs.MARK_READY)
    async def refuse(ready: jobs.MarkReadyInput) -> None:
        h.farm.events.append("mark ready refused")
        raise ApplicationError("video is FAILED, cannot become READY",
                               type="IllegalTransition", non_retryable=True)

    h.books.mark_ready = refuse  # type: ignore[method-assign]
    async with running(h, fast_settings):
        with pytest.raises(WorkflowFailureError):
            await transcode(h)
    assert h.farm.events == ["probe", "transcode", "mark ready refused", "remove output"]


@pytest.mark.parametrize(("video_id", "upload_id"), [
    ("../other-video", "0" * 32), (storage.new_video_id(), "../../etc/passwd"),
    (storage.new_video_id(), "")])
async def test_ids_the_server_never_made_fail_before_any_activity(
        client: Client, fast_settings: Settings, video_id: str, upload_id: str) -> None:
    h = new_harness(client)
    async with running(h, fast_settings):
        with pytest.raises(WorkflowFailureError) as failure:
            await client.execute_workflow(
                jobs.TRANSCODE_WORKFLOW,
                jobs.TranscodeWorkflowInput(video_id, upload_id, farm_task_queue=h.farm_queue),
                id=f"transcode-invalid-{storage.new_upload_id()}", task_queue=h.queue,
                execution_timeout=RUN_TIMEOUT)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == INVALID_INPUT_ERROR
    assert h.farm.events == [] and h.books.progress == []
