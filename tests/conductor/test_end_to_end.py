"""End to end with the real parts: the farm worker of the local stack (FFmpeg, S3) on
FARM_TASK_QUEUE, control's real bookkeeping activities on PostgreSQL, and the
Conductor's workflows on a fresh control task queue. A small lavfi-generated file is
uploaded to bucket-raw as the edge would; the test checks what a user would see: the
video row, and an HLS ladder in bucket-processed whose playlists point only at
segments that exist."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import m3u8
import psycopg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from control.activities import create_bookkeeping
from control.worker import conductor_worker
from control.workflows import TranscodeOutcome
from vora import devstack, jobs, storage
from vora.config import Settings

RUN_TIMEOUT = timedelta(seconds=90)


@pytest.fixture(scope="module")
def farm(infra: Settings) -> Settings:
    """The farm worker of the local stack, polling FARM_TASK_QUEUE."""
    devstack.up(infra, ["farm"])
    return infra


@dataclass
class Video:
    video_id: str
    upload_id: str


@contextlib.asynccontextmanager
async def running_conductor(client: Client, settings: Settings,
                            prefix: str) -> AsyncIterator[str]:
    """The real Conductor worker with control's real bookkeeping, on a fresh queue."""
    bookkeeping = await create_bookkeeping(settings)
    queue = f"{prefix}-{uuid.uuid4().hex}"
    try:
        async with conductor_worker(client, settings, queue, bookkeeping.activities()):
            yield queue
    finally:
        await bookkeeping.close()


@pytest.fixture
async def conductor(client: Client, farm: Settings) -> AsyncIterator[str]:
    async with running_conductor(client, farm, "conductor-e2e") as queue:
        yield queue


async def make_source(tmp_path: Path, size: str = "640x360", seconds: int = 3) -> Path:
    path = tmp_path / "source.mp4"
    ffmpeg = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi",
        "-i", f"testsrc2=size={size}:rate=25", "-f", "lavfi",
        "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds), "-c:v", "libx264",
        "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path))
    assert await ffmpeg.wait() == 0
    return path


def upload_processing_video(settings: Settings, source: Path) -> Video:
    """What edge and control leave behind: the raw object and a PROCESSING row."""
    video = Video(storage.new_video_id(), storage.new_upload_id())
    storage.s3_client(settings).upload_file(str(source), settings.bucket_raw,
                                            storage.raw_original_key(video.upload_id))
    with psycopg.connect(settings.pg_conninfo) as conn:
        conn.execute("INSERT INTO videos (id, owner, title, state, upload_id)"
                     " VALUES (%s, 'conductor-test', 'e2e', 'PROCESSING', %s)",
                     (video.video_id, video.upload_id))
    return video


def video_row(settings: Settings, video_id: str) -> dict[str, Any] | None:
    with psycopg.connect(settings.pg_conninfo) as conn:
        cur = conn.execute(
            "SELECT state, failure_reason, progress_phase, progress_percent, renditions,"
            " manifest_url, thumbnail_key, duration_seconds FROM videos WHERE id = %s",
            (video_id,))
        row = cur.fetchone()
        names = [c.name for c in cur.description or []]
    return dict(zip(names, row, strict=True)) if row else None


def keys(settings: Settings, bucket: str, prefix: str) -> set[str]:
    listing = storage.s3_client(settings).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for item in listing.get("Contents", [])}


def assert_consistent_ladder(settings: Settings, video_id: str) -> None:
    """master -> playlists -> segments: every URI resolves to an object."""
    s3 = storage.s3_client(settings)
    stored = keys(settings, settings.bucket_processed, storage.processed_prefix(video_id))
    master_text = s3.get_object(Bucket=settings.bucket_processed,
                                Key=storage.master_key(video_id))["Body"].read().decode()
    master = m3u8.loads(master_text)
    assert master.playlists, master_text
    for variant in master.playlists:
        playlist_key = storage.processed_prefix(video_id) + variant.uri
        assert playlist_key in stored
        body = s3.get_object(Bucket=settings.bucket_processed, Key=playlist_key)["Body"]
        media = m3u8.loads(body.read().decode())
        folder = playlist_key.rsplit("/", 1)[0]
        assert media.segments and media.is_endlist
        assert {f"{folder}/{seg.uri}" for seg in media.segments} <= stored
    assert storage.thumbnail_key(video_id) in stored


async def test_a_real_file_becomes_a_ready_ladder_and_is_deleted(
        client: Client, farm: Settings, conductor: str, tmp_path: Path) -> None:
    video = upload_processing_video(farm, await make_source(tmp_path))
    outcome = await client.execute_workflow(
        jobs.TRANSCODE_WORKFLOW, jobs.TranscodeWorkflowInput(video.video_id, video.upload_id),
        id=jobs.transcode_workflow_id(video.video_id), task_queue=conductor,
        result_type=TranscodeOutcome, execution_timeout=RUN_TIMEOUT)

    assert outcome.state == "READY"
    row = video_row(farm, video.video_id)
    assert row is not None
    assert (row["state"], row["progress_phase"], row["progress_percent"]) == (
        "READY", "done", 100.0)
    assert [(r["name"], r["width"], r["height"]) for r in row["renditions"]] == [
        ("360p", 640, 360)]  # a 360p source is never upscaled
    assert row["manifest_url"] == storage.master_key(video.video_id)
    assert 2.5 <= row["duration_seconds"] <= 3.5
    await asyncio.to_thread(assert_consistent_ladder, farm, video.video_id)

    await delete_video(client, farm, conductor, video)


async def test_a_text_file_named_mp4_fails_once_with_a_readable_reason(
        client: Client, farm: Settings, conductor: str, tmp_path: Path) -> None:
    source = tmp_path / "notes.mp4"
    source.write_text("these are my holiday notes, not a video\n" * 20)
    video = upload_processing_video(farm, source)
    handle = await client.start_workflow(
        jobs.TRANSCODE_WORKFLOW, jobs.TranscodeWorkflowInput(video.video_id, video.upload_id),
        id=jobs.transcode_workflow_id(video.video_id), task_queue=conductor,
        result_type=TranscodeOutcome, execution_timeout=RUN_TIMEOUT)
    outcome = await handle.result()

    assert outcome.state == "FAILED"
    row = video_row(farm, video.video_id)
    assert row is not None and row["state"] == "FAILED"
    assert row["failure_reason"] == outcome.reason
    assert "Traceback" not in outcome.reason and 10 < len(outcome.reason) < 300
    history = await handle.fetch_history()
    attempts = [e.activity_task_started_event_attributes.attempt for e in history.events
                if e.HasField("activity_task_started_event_attributes")]
    probes = [e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")
              and e.activity_task_scheduled_event_attributes.activity_type.name
              == jobs.PROBE_SOURCE]
    assert len(probes) == 1 and max(attempts) == 1
    await delete_video(client, farm, conductor, video)  # a FAILED video can be deleted too


async def delete_video(client: Client, settings: Settings, queue: str, video: Video) -> None:
    """DeleteVideo as control does it (hide the row), then the delete workflow; check
    that output, source and row are gone."""
    with psycopg.connect(settings.pg_conninfo) as conn:
        conn.execute("UPDATE videos SET deleted_at = now() WHERE id = %s", (video.video_id,))
    await client.execute_workflow(
        jobs.DELETE_WORKFLOW, jobs.DeleteWorkflowInput(video.video_id, video.upload_id),
        id=jobs.delete_workflow_id(video.video_id), task_queue=queue,
        execution_timeout=RUN_TIMEOUT)
    assert keys(settings, settings.bucket_processed,
                storage.processed_prefix(video.video_id)) == set()
    assert keys(settings, settings.bucket_raw, storage.raw_prefix(video.upload_id)) == set()
    assert video_row(settings, video.video_id) is None


def ffmpeg_pids(video_id: str) -> list[int]:
    """FFmpeg processes working on the video (the farm's scratch paths name it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "ffmpeg" in cmdline and video_id in cmdline:
            found.append(int(proc.name))
    return found


async def until_ffmpeg_runs(handle: WorkflowHandle[Any, Any],
                            video_id: str) -> jobs.ProgressUpdate:
    """The workflow's progress once the farm's FFmpeg runs for the video (60 s at most:
    a loaded 2-core machine downloads, probes and starts FFmpeg slowly)."""
    deadline = time.monotonic() + 60
    while True:
        progress: jobs.ProgressUpdate = await handle.query(
            jobs.PROGRESS_QUERY, result_type=jobs.ProgressUpdate)
        if ffmpeg_pids(video_id) or time.monotonic() > deadline:
            return progress
        await asyncio.sleep(0.1)


@dataclass
class RunningTranscode:
    video: Video
    handle: WorkflowHandle[Any, Any]
    queue: str


@contextlib.asynccontextmanager
async def real_transcode_running(client: Client, farm: Settings, source: Path
                                 ) -> AsyncIterator[RunningTranscode]:
    """A conductor worker on a fresh queue, and a transcode of ``source`` on the stack's
    real farm, yielded once FFmpeg runs. The short heartbeat timeout lets a cancel or a
    killed farm be noticed within ~10 s: FFmpeg 5.1 reports its first progress block only
    once every output (the thumbnail too) has started."""
    settings = farm.model_copy(update={"farm_heartbeat_timeout_seconds": 10})
    video = upload_processing_video(farm, source)
    bookkeeping = await create_bookkeeping(settings)
    queue = f"conductor-e2e-{uuid.uuid4().hex}"
    try:
        async with conductor_worker(client, settings, queue, bookkeeping.activities()):
            handle = await client.start_workflow(
                jobs.TRANSCODE_WORKFLOW,
                jobs.TranscodeWorkflowInput(video.video_id, video.upload_id),
                id=jobs.transcode_workflow_id(video.video_id), task_queue=queue,
                result_type=TranscodeOutcome, execution_timeout=RUN_TIMEOUT)
            progress = await until_ffmpeg_runs(handle, video.video_id)
            assert ffmpeg_pids(video.video_id), progress
            yield RunningTranscode(video, handle, queue)
    finally:
        await bookkeeping.close()


@pytest.mark.soak  # 20-45 s on 2 cores; test_workflows covers the path with a stand-in
async def test_deleting_during_a_real_transcode_kills_ffmpeg_and_leaves_nothing(
        client: Client, farm: Settings, tmp_path: Path) -> None:
    source = await make_source(tmp_path, "1280x720", 30)
    async with real_transcode_running(client, farm, source) as running:
        video = running.video
        with psycopg.connect(farm.pg_conninfo) as conn:
            conn.execute("UPDATE videos SET deleted_at = now() WHERE id = %s",
                         (video.video_id,))
        await client.execute_workflow(
            jobs.DELETE_WORKFLOW, jobs.DeleteWorkflowInput(video.video_id, video.upload_id),
            id=jobs.delete_workflow_id(video.video_id), task_queue=running.queue,
            execution_timeout=RUN_TIMEOUT)
        described = await running.handle.describe()

    # CANCELED, not COMPLETED: the 30 s source is still encoding when the cancel lands.
    assert described.status == WorkflowExecutionStatus.CANCELED, described.status
    assert ffmpeg_pids(video.video_id) == []
    assert keys(farm, farm.bucket_processed, storage.processed_prefix(video.video_id)) == set()
    assert keys(farm, farm.bucket_raw, storage.raw_prefix(video.upload_id)) == set()
    assert video_row(farm, video.video_id) is None


@pytest.mark.soak  # 30-60 s: waits out heartbeat timeouts of a real farm
async def test_a_farm_worker_killed_mid_transcode_is_retried_to_a_consistent_ladder(
        client: Client, farm: Settings, tmp_path: Path) -> None:
    source = await make_source(tmp_path, "640x360", 8)
    async with real_transcode_running(client, farm, source) as running:
        video, handle = running.video, running.handle
        os.kill(devstack.pid(farm, "farm"), signal.SIGKILL)
        for pid in ffmpeg_pids(video.video_id):  # its orphaned FFmpeg, in its own session
            os.kill(pid, signal.SIGKILL)
        # supervisord restarts the farm (autorestart=unexpected); wait until healthy.
        await asyncio.to_thread(devstack.wait_healthy, farm, ["farm"], 60)
        outcome = await handle.result()

    assert outcome.state == "READY"
    history = await handle.fetch_history()
    transcode_attempts = [
        e.activity_task_started_event_attributes.attempt for e in history.events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.attempt > 1]
    # The killed attempt timed out and a later one (from the restarted farm) finished.
    # Only the last attempt is in the history; under load the first progress block can
    # come after the heartbeat timeout, costing another attempt.
    assert len(transcode_attempts) == 1 and transcode_attempts[0] >= 2
    row = video_row(farm, video.video_id)
    assert row is not None and row["state"] == "READY"
    await asyncio.to_thread(assert_consistent_ladder, farm, video.video_id)
