"""What the farm fault tests share: real farm worker processes on a private task queue,
freezing and thawing a node, and checks of a published ladder as a player would see it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import m3u8
from temporalio.client import Client, WorkflowHandle

from control.workflows import TranscodeOutcome
from tests.conductor.test_end_to_end import Video, running_conductor
from vora import jobs, storage
from vora.config import Settings

REPO = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (FFmpeg runs in its own session, so a process group
    signal to the worker would miss it)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(proc.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> bytes:
    """The process's command line, empty once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def process_state(pid: int) -> str:
    """The one-letter state of /proc/PID/stat ('T' stopped, 'Z' zombie, '' gone)."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split() or [""])[0]
    except OSError:
        return ""


@dataclass
class FarmWorker:
    """``python -m tests.reliability.farm_process QUEUE``: one real farm node, CPU only,
    one slot, its own scratch directory, output in a log file."""

    queue: str
    workdir: Path
    heartbeat_timeout: int
    extra_env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] = field(init=False)
    frozen: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "VORA_FARM_PIPELINE": "cpu", "VORA_FARM_CPU_SLOTS": "1",
               "VORA_FARM_X264_PRESET": "ultrafast",
               "VORA_FARM_SCRATCH_DIR": str(self.scratch),
               "VORA_FARM_HEARTBEAT_TIMEOUT_SECONDS": str(self.heartbeat_timeout),
               "VORA_FARM_PROGRESS_SIGNAL_SECONDS": "0.5", **self.extra_env}
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.farm_process", self.queue],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)

    @property
    def log(self) -> Path:
        return self.workdir / "farm.log"

    @property
    def scratch(self) -> Path:
        return self.workdir / "scratch"

    def wait_polling(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while f"polling {self.queue}" not in self.log.read_text(errors="replace"):
            assert self.popen.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the farm worker never started polling"
            time.sleep(0.1)

    def ffmpeg_pids(self) -> list[int]:
        return [pid for pid in descendants(self.popen.pid) if b"ffmpeg" in cmdline(pid)]

    def freeze(self) -> None:
        """SIGSTOP the node: the worker first (so it starts nothing new), then every
        process below it. A hung machine freezes all of them together."""
        os.kill(self.popen.pid, signal.SIGSTOP)
        self.frozen = [self.popen.pid, *descendants(self.popen.pid)]
        for pid in self.frozen[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in reversed(self.frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    def stop(self) -> None:
        """Kill the worker and whatever it left running (it may be frozen)."""
        pids = [self.popen.pid, *descendants(self.popen.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.popen.wait(10)


@contextlib.contextmanager
def farm_workers(workdir: Path, queue: str, heartbeat_timeout: int) -> Iterator[Any]:
    """A factory of FarmWorker processes on ``queue``; all of them are killed at the end."""
    started: list[FarmWorker] = []

    def start(name: str, **env: str) -> FarmWorker:
        worker = FarmWorker(queue, workdir / name, heartbeat_timeout, env)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


def conductor(client: Client, settings: Settings) -> contextlib.AbstractAsyncContextManager[str]:
    """The real Conductor worker and control's real bookkeeping on a fresh queue."""
    return running_conductor(client, settings, "reliability")


async def start_transcode(client: Client, queue: str, farm_queue: str, video: Video,
                          run_seconds: float) -> WorkflowHandle[Any, TranscodeOutcome]:
    return await client.start_workflow(
        jobs.TRANSCODE_WORKFLOW,
        jobs.TranscodeWorkflowInput(video.video_id, video.upload_id, farm_task_queue=farm_queue),
        id=jobs.transcode_workflow_id(video.video_id), task_queue=queue,
        result_type=TranscodeOutcome, execution_timeout=timedelta(seconds=run_seconds))


async def until_encoding(handle: WorkflowHandle[Any, Any], farm: FarmWorker) -> float:
    """Wait until the workflow shows encode progress and the farm's FFmpeg runs; returns
    the percent done."""
    deadline = time.monotonic() + 60
    while True:
        progress: jobs.ProgressUpdate = await handle.query(
            jobs.PROGRESS_QUERY, result_type=jobs.ProgressUpdate)
        if progress.phase == "transcoding" and progress.percent > 0 and farm.ffmpeg_pids():
            return progress.percent
        assert time.monotonic() < deadline, f"no encode progress: {progress}"
        await asyncio.sleep(0.05)


def published(settings: Settings, video_id: str) -> dict[str, tuple[str, str]]:
    """Every object under the video's prefix: key -> (ETag, Last-Modified)."""
    s3 = storage.s3_client(settings)
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.bucket_processed, Prefix=storage.processed_prefix(video_id))
    return {item["Key"]: (item["ETag"], item["LastModified"].isoformat())
            for page in pages for item in page.get("Contents", [])}


def assert_playable_ladder(settings: Settings, video_id: str, renditions: list[str],
                           tmp_path: Path) -> None:
    """The master lists exactly ``renditions``; every segment each media playlist lists
    exists in S3 and decodes without an error from start to end."""
    s3 = storage.s3_client(settings)
    prefix = storage.processed_prefix(video_id)

    def text(key: str) -> str:
        body: bytes = s3.get_object(Bucket=settings.bucket_processed, Key=key)["Body"].read()
        return body.decode()

    master = m3u8.loads(text(storage.master_key(video_id)))
    assert sorted(v.uri for v in master.playlists) == sorted(
        f"{name}/playlist.m3u8" for name in renditions), master.dumps()
    for name in renditions:
        media = m3u8.loads(text(storage.playlist_key(video_id, name)))
        assert media.is_endlist and media.segments, f"{name}: {media.dumps()}"
        for segment in media.segments:
            local = tmp_path / f"{name}-{segment.uri}"
            s3.download_file(settings.bucket_processed, f"{prefix}{name}/{segment.uri}",
                             str(local))
            decoded = subprocess.run(
                ["ffmpeg", "-nostdin", "-v", "error", "-i", str(local), "-f", "null", "-"],
                capture_output=True, text=True, timeout=60, check=False)
            assert decoded.returncode == 0 and not decoded.stderr.strip(), (
                f"{name}/{segment.uri}: {decoded.stderr[-1000:]}")


async def transcode_started(handle: WorkflowHandle[Any, Any]) -> tuple[int, float, str]:
    """(attempt, start time, worker identity) of the transcode attempt that finished."""
    history = await handle.fetch_history()
    scheduled = {e.event_id for e in history.events
                 if e.HasField("activity_task_scheduled_event_attributes")
                 and e.activity_task_scheduled_event_attributes.activity_type.name
                 == jobs.TRANSCODE}
    for event in history.events:
        started = event.activity_task_started_event_attributes
        if event.HasField("activity_task_started_event_attributes") and \
                started.scheduled_event_id in scheduled:
            return started.attempt, event.event_time.ToMicroseconds() / 1e6, started.identity
    raise AssertionError("no transcode attempt started")
