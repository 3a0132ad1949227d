"""The farm's Temporal activities (FARM_TASK_QUEUE): probe, transcode, remove output/source.

These translate between the payloads of vora/jobs.py and the logic in the other
modules; errors become ApplicationErrors whose type tells the workflow what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from farm import metrics, process, renditions
from farm.limits import ffmpeg_limits
from farm.nvenc import CUDA_ENV
from farm.objects import AlreadyExistsError, OutputStore, output_uploads
from farm.pipeline import EncodeJob, Pipeline, build_command, fit_renditions
from farm.probe import BadMediaError, probe_file
from farm.progress import ProgressReporter, ProgressSignaller
from farm.slots import Slot, SlotAllocator
from vora import jobs, storage
from vora.config import Settings
from vora.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")
INVALID_ID_ERROR = "InvalidId"
PUBLISH_CONFLICT_ERROR = "PublishConflict"
TRANSCODE_ERROR = "TranscodeFailed"
STORAGE_ERROR = "StorageUnavailable"
# What boto3 raises when the object store is down, slow or refusing (not our conflicts).
S3_ERRORS = (BotoCoreError, ClientError)
PUBLISH_RETRY_MAX_DELAY = 15.0
# What PROBE_SOURCE fetches of an upload: its start and its end (see
# S3OutputStore.download_probe_window); the probe's timeout does not allow a whole upload.
PROBE_HEAD_BYTES = 64 * 1024**2
PROBE_TAIL_BYTES = 16 * 1024**2
# FFmpeg messages that mean the input itself is broken: retrying cannot help.
BAD_INPUT_MARKERS = ("Invalid data found", "corrupt", "Cannot allocate memory",
                     "Error while decoding", "does not contain any stream")


def bad_media(reason: str) -> ApplicationError:
    return ApplicationError(reason, type=jobs.BAD_MEDIA_ERROR, non_retryable=True)


def storage_failure(step: str, exc: Exception) -> ApplicationError:
    """A short, retryable failure: Temporal keeps at most 4 KiB of a failure, and boto's
    chained tracebacks are longer, which would leave only "Failure exceeds size limit"."""
    metrics.STORAGE_FAILURES.labels(step).inc()
    return ApplicationError(f"object storage failed while {step}: {_first_line(exc)}",
                            type=STORAGE_ERROR)


async def _in_storage(step: str, call: Callable[..., T], *args: Any) -> T:
    """Run a blocking object-store call in a thread; its S3 errors become storage_failure."""
    try:
        return await asyncio.to_thread(call, *args)
    except S3_ERRORS as exc:
        raise storage_failure(step, exc) from None


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


@dataclass
class RunningJob:
    video_id: str
    pipeline: str
    gpu_uuid: str
    started: datetime
    percent: float = 0.0


@dataclass
class JobBook:
    """What this node is doing and has done, for control's heartbeats."""

    running: dict[str, RunningJob] = field(default_factory=dict)
    completed: int = 0
    output_seconds: float = 0.0


class FarmActivities:
    def __init__(self, settings: Settings, store: OutputStore, allocator: SlotAllocator,
                 signaller: ProgressSignaller | None = None, book: JobBook | None = None) -> None:
        self.settings = settings
        self.store = store
        self.allocator = allocator
        self.signaller = signaller
        self.book = book or JobBook()
        self.probe_window = (PROBE_HEAD_BYTES, PROBE_TAIL_BYTES)

    def all(self) -> list[Callable[..., Any]]:
        return [self.probe_source, self.transcode, self.remove_output, self.remove_source]

    # --- probe -----------------------------------------------------------------------------
    @activity.defn(name=jobs.PROBE_SOURCE)
    async def probe_source(self, request: jobs.ProbeInput) -> jobs.ProbeResult:
        video_id = _valid(storage.validate_video_id, request.video_id)
        upload_id = _valid(storage.validate_upload_id, request.upload_id)
        async with self._scratch(video_id) as scratch:
            source = scratch / "source"
            head, tail = self.probe_window
            await _in_storage("fetching the upload to probe it", self.store.download_probe_window,
                              upload_id, source, head, tail)
            result, _ = await self._probe(source)
        return result

    # --- transcode ---------------------------------------------------------------------------
    @activity.defn(name=jobs.TRANSCODE)
    async def transcode(self, request: jobs.TranscodeInput) -> jobs.TranscodeResult:
        video_id = _valid(storage.validate_video_id, request.video_id)
        upload_id = _valid(storage.validate_upload_id, request.upload_id)
        published = await _in_storage("checking for a published output",
                                      self.store.read_published_master, video_id)
        if published is not None:
            log.info("already published; returning it", video_id=video_id)
            return _published_result(video_id, *published)
        started = time.monotonic()
        async with self._scratch(video_id) as scratch:
            source = await self._download(upload_id, scratch)
            probe, demuxer = await self._probe(source)
            wanted = fit_renditions(request.plan, probe)
            job = EncodeJob(source=source, demuxer=demuxer, probe=probe, renditions=wanted,
                            segment_seconds=request.plan.segment_seconds,
                            frame_rate=request.plan.frame_rate or probe.frame_rate,
                            has_audio=request.plan.has_audio and probe.has_audio,
                            out_dir=scratch / "out")
            pipeline = await self._encode(video_id, job)
            result = await self._measure_and_publish(video_id, job, pipeline)
        self._count_success(result, pipeline, time.monotonic() - started)
        return result

    async def _encode(self, video_id: str, job: EncodeJob) -> Pipeline:
        """Encode on the slot the allocator grants; a GPU failure is retried on the CPU."""
        slot = await self._acquire(len(job.renditions), gpu_allowed=True)
        try:
            await self._run(video_id, job, slot)
            return slot.pipeline
        except process.FfmpegError as exc:
            if not slot.on_gpu or isinstance(exc, process.FfmpegTimeout):
                raise _encode_failure(exc, slot.pipeline) from None
            log.warning("gpu pipeline failed; retrying on cpu", video_id=video_id,
                        pipeline=slot.pipeline, gpu=slot.gpu_uuid, reason=str(exc))
            metrics.GPU_FALLBACKS.inc()
        finally:
            self._release(slot)
        shutil.rmtree(job.out_dir, ignore_errors=True)
        slot = await self._acquire(len(job.renditions), gpu_allowed=False)
        try:
            await self._run(video_id, job, slot)
        except process.FfmpegError as exc:
            raise _encode_failure(exc, "cpu") from None
        finally:
            self._release(slot)
        return "cpu"

    async def _run(self, video_id: str, job: EncodeJob, slot: Slot) -> None:
        job = EncodeJob(**{**job.__dict__, "pipeline": slot.pipeline,
                           "gpu_index": max(0, slot.gpu_index)})
        reporter = ProgressReporter(self.signaller, job.probe.duration_seconds, slot.pipeline,
                                    self.settings.farm_progress_signal_seconds)
        running = RunningJob(video_id, slot.pipeline, slot.gpu_uuid, datetime.now(UTC))
        self.book.running[video_id] = running

        async def on_progress(progress: process.Progress) -> None:
            await reporter(progress)
            running.percent = reporter.last.percent

        try:
            await process.run(build_command(job, self.settings),
                              limits=ffmpeg_limits(self.settings, gpu=slot.on_gpu),
                              timeout=self.settings.farm_ffmpeg_timeout_seconds,
                              on_progress=on_progress, env=CUDA_ENV if slot.on_gpu else None)
        finally:
            self.book.running.pop(video_id, None)
            metrics.ENCODE_FPS_NOW.labels(slot.pipeline).set(0)

    async def _measure_and_publish(self, video_id: str, job: EncodeJob,
                                   pipeline: Pipeline) -> jobs.TranscodeResult:
        measured = [await renditions.measure(self.settings, video_id, job.out_dir, r,
                                             job.has_audio) for r in job.renditions]
        _, _, duration = renditions.bandwidths(job.out_dir / job.renditions[0].name)
        (job.out_dir / "master.m3u8").write_text(renditions.master_playlist(measured))
        published = await self._publish(video_id, job, {"vora-pipeline": pipeline,
                                                        "vora-duration": f"{duration:.3f}"})
        if published is not None:
            log.info("another attempt published this video first; returning it",
                     video_id=video_id)
            return _published_result(video_id, *published)
        return jobs.TranscodeResult(
            renditions=measured, duration_seconds=round(duration, 3),
            thumbnail_key=storage.thumbnail_key(video_id), master_key=storage.master_key(video_id),
            pipeline=pipeline)

    async def _publish(self, video_id: str, job: EncodeJob, metadata: dict[str, str]
                       ) -> tuple[str, dict[str, str]] | None:
        """Publish the output; an object-store failure is retried here, heartbeating, for
        farm_publish_retry_seconds, so an S3 restart does not cost a new encode. Returns
        the master another attempt published first, if one did (None: we published)."""
        deadline = time.monotonic() + self.settings.farm_publish_retry_seconds
        delay = 1.0
        async with self._keepalive(jobs.TranscodeHeartbeat(100.0, pipeline="publishing")):
            while True:
                try:
                    return await asyncio.to_thread(self._publish_once, video_id, job, metadata)
                except AlreadyExistsError as exc:
                    raise ApplicationError(f"another attempt is publishing this video ({exc}); "
                                           "retrying", type=PUBLISH_CONFLICT_ERROR) from None
                except S3_ERRORS as exc:
                    if time.monotonic() + delay > deadline:
                        raise storage_failure("publishing the output", exc) from None
                    metrics.PUBLISH_RETRIES.inc()
                    log.warning("publishing failed; retrying", video_id=video_id,
                                reason=_first_line(exc), retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, PUBLISH_RETRY_MAX_DELAY)

    def _publish_once(self, video_id: str, job: EncodeJob, metadata: dict[str, str]
                      ) -> tuple[str, dict[str, str]] | None:
        """Segments and thumbnail, then playlists, then the master (the publish marker),
        after removing what an unfinished try left (ours included, on a retry)."""
        published = self.store.read_published_master(video_id)
        if published is not None:
            return published
        media, playlists, master = output_uploads(video_id, job.out_dir,
                                                  [r.name for r in job.renditions])
        leftovers = self.store.remove_unpublished(video_id)
        if leftovers:
            log.info("removed an unfinished attempt's objects", video_id=video_id,
                     objects=leftovers)
        self.store.put_new(media)
        self.store.put_new(playlists)
        self.store.put_new([master], metadata)
        return None

    # --- remove -------------------------------------------------------------------------------
    @activity.defn(name=jobs.REMOVE_OUTPUT)
    async def remove_output(self, request: jobs.RemoveOutputInput) -> None:
        video_id = _valid(storage.validate_video_id, request.video_id)
        removed = await _in_storage("removing the output", self.store.remove_output, video_id)
        log.info("output removed", video_id=video_id, objects=removed)

    @activity.defn(name=jobs.REMOVE_SOURCE)
    async def remove_source(self, request: jobs.RemoveSourceInput) -> None:
        upload_id = _valid(storage.validate_upload_id, request.upload_id)
        removed = await _in_storage("removing the upload", self.store.remove_source, upload_id)
        log.info("source removed", upload_id=upload_id, objects=removed)

    # --- helpers ------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _scratch(self, video_id: str) -> AsyncIterator[Path]:
        """A fresh directory per attempt, removed however the attempt ends."""
        attempt = activity.info().attempt
        path = self.settings.scratch_dir / f"{video_id}.{attempt}.{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    async def _download(self, upload_id: str, scratch: Path) -> Path:
        source = scratch / "source"
        async with self._keepalive(jobs.TranscodeHeartbeat(0.0, pipeline="downloading")):
            await _in_storage("downloading the upload", self.store.download_source, upload_id,
                              source)
        return source

    async def _probe(self, source: Path) -> tuple[jobs.ProbeResult, str]:
        try:
            return await probe_file(self.settings, source)
        except BadMediaError as exc:
            metrics.JOBS.labels("none", "bad_media").inc()
            raise bad_media(str(exc)) from None

    async def _acquire(self, renditions_count: int, *, gpu_allowed: bool) -> Slot:
        async with self._keepalive(jobs.TranscodeHeartbeat(0.0, pipeline="waiting")):
            slot = await self.allocator.acquire(renditions_count, gpu_allowed=gpu_allowed)
        update_slot_metrics(self.allocator)
        return slot

    def _release(self, slot: Slot) -> None:
        self.allocator.release(slot)
        update_slot_metrics(self.allocator)

    @contextlib.asynccontextmanager
    async def _keepalive(self, beat: jobs.TranscodeHeartbeat) -> AsyncIterator[None]:
        """Heartbeat while a step without progress output runs (download, upload, waiting)."""
        interval = max(1.0, self.settings.farm_heartbeat_timeout_seconds / 3)

        async def beat_forever() -> None:
            while True:
                activity.heartbeat(beat)
                await asyncio.sleep(interval)

        task = asyncio.create_task(beat_forever())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _count_success(self, result: jobs.TranscodeResult, pipeline: str, seconds: float) -> None:
        metrics.JOBS.labels(pipeline, "ok").inc()
        metrics.JOB_SECONDS.labels(pipeline).observe(seconds)
        frames = result.duration_seconds * max((r.frame_rate for r in result.renditions),
                                               default=0)
        if seconds > 0:
            metrics.ENCODE_FPS.labels(pipeline).observe(frames / seconds)
        self.book.completed += 1
        self.book.output_seconds += result.duration_seconds


def update_slot_metrics(allocator: SlotAllocator) -> None:
    for gpu in allocator.gpus.values():
        metrics.SLOTS_IN_USE.labels(gpu.info.uuid).set(gpu.jobs)
        metrics.SLOTS_TOTAL.labels(gpu.info.uuid).set(gpu.slots if gpu.present else 0)
    metrics.SLOTS_IN_USE.labels("cpu").set(allocator.cpu_busy)
    metrics.SLOTS_TOTAL.labels("cpu").set(allocator.cpu_slots())


def _encode_failure(exc: process.FfmpegError, pipeline: str) -> ApplicationError:
    log.error("ffmpeg failed", pipeline=pipeline, reason=str(exc), stderr=exc.stderr[-4000:])
    if isinstance(exc, process.FfmpegTimeout):
        metrics.JOBS.labels(pipeline, "timeout").inc()
        return bad_media(f"transcoding took longer than the farm allows: {exc}")
    if any(marker in exc.stderr for marker in BAD_INPUT_MARKERS):
        metrics.JOBS.labels(pipeline, "bad_media").inc()
        return bad_media(f"the video could not be decoded: {exc}")
    metrics.JOBS.labels(pipeline, "error").inc()
    return ApplicationError(f"transcoding failed: {exc}", type=TRANSCODE_ERROR)


def _published_result(video_id: str, text: str, meta: dict[str, str]) -> jobs.TranscodeResult:
    return jobs.TranscodeResult(
        renditions=renditions.renditions_from_master(video_id, text),
        duration_seconds=float(meta.get("vora-duration", 0) or 0),
        thumbnail_key=storage.thumbnail_key(video_id), master_key=storage.master_key(video_id),
        pipeline=meta.get("vora-pipeline", "cpu"))


def _valid(validator: object, value: str) -> str:
    assert callable(validator)
    try:
        checked: str = validator(value)
    except storage.InvalidIdError as exc:
        raise ApplicationError(f"{exc}; got {value[:64]!r}", type=INVALID_ID_ERROR,
                               non_retryable=True) from None
    return checked
