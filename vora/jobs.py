"""The Temporal contract between control (workflows, bookkeeping) and farm (media work).

Task queue names, workflow and activity names, and the one-dataclass payloads each
activity takes. Payloads carry ids and object keys, never media. Add fields only
with defaults, so running workflows keep decoding old payloads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# --- task queues --------------------------------------------------------------------------
CONTROL_TASK_QUEUE = "vora-control"
FARM_TASK_QUEUE = "vora-farm"

# --- workflows -----------------------------------------------------------------------------
TRANSCODE_WORKFLOW = "TranscodeVideoWorkflow"
DELETE_WORKFLOW = "DeleteVideoWorkflow"
PROGRESS_QUERY = "progress"
# The transcode activity signals its own workflow with a TranscodeHeartbeat every few
# seconds, so the workflow can answer PROGRESS_QUERY and record progress in control.
PROGRESS_SIGNAL = "transcode_progress"


def transcode_workflow_id(video_id: str) -> str:
    return f"transcode-{video_id}"


def delete_workflow_id(video_id: str) -> str:
    return f"delete-{video_id}"


# --- activities: farm task queue ------------------------------------------------------------
PROBE_SOURCE = "farm.probe_source"
TRANSCODE = "farm.transcode"
REMOVE_OUTPUT = "farm.remove_output"
REMOVE_SOURCE = "farm.remove_source"

# --- activities: control task queue ---------------------------------------------------------
RECORD_PROGRESS = "control.record_progress"
MARK_READY = "control.mark_ready"
MARK_FAILED = "control.mark_failed"
MARK_DELETED = "control.mark_deleted"

# Non-retryable ApplicationError type for media that can never be transcoded
# (corrupt, unsupported, no video stream, over the limits).
BAD_MEDIA_ERROR = "BadMedia"
# Retryable error type for failures caused by the GPU (session limit, out of
# memory); the farm retries the job on the CPU pipeline.
GPU_ERROR = "GpuUnavailable"


@dataclass
class TranscodeWorkflowInput:
    video_id: str
    upload_id: str
    # The farm activities' queue; only tests (a fresh queue per test) change it.
    farm_task_queue: str = FARM_TASK_QUEUE


@dataclass
class DeleteWorkflowInput:
    video_id: str
    upload_id: str = ""
    farm_task_queue: str = FARM_TASK_QUEUE


@dataclass
class ProbeInput:
    video_id: str
    upload_id: str


@dataclass
class ProbeResult:
    """What ffprobe found in the source; the ladder is planned from it."""

    duration_seconds: float
    has_video: bool
    has_audio: bool
    width: int = 0  # display width, after rotation
    height: int = 0  # display height, after rotation
    rotation: int = 0
    frame_rate: float = 0.0
    video_codec: str = ""
    audio_codec: str = ""
    bit_rate: int = 0
    format_name: str = ""


@dataclass
class RenditionPlan:
    """One rung of the planned ladder: what to encode."""

    name: str
    width: int
    height: int
    video_bitrate: int
    max_bitrate: int
    audio_bitrate: int
    profile: str = "high"


@dataclass
class LadderPlan:
    renditions: list[RenditionPlan]
    segment_seconds: int
    frame_rate: float
    has_audio: bool = True


@dataclass
class TranscodeInput:
    video_id: str
    upload_id: str
    plan: LadderPlan
    duration_seconds: float = 0.0


@dataclass
class RenditionResult:
    """One rendition as the farm measured it, for the master manifest."""

    name: str
    width: int
    height: int
    bandwidth: int  # peak bits per second
    average_bandwidth: int
    codecs: str  # e.g. "avc1.64001f,mp4a.40.2"
    frame_rate: float
    playlist_key: str


@dataclass
class TranscodeResult:
    renditions: list[RenditionResult]
    duration_seconds: float
    thumbnail_key: str
    master_key: str
    pipeline: str = "cpu"  # nvenc, nvdec or cpu


@dataclass
class RemoveOutputInput:
    video_id: str


@dataclass
class RemoveSourceInput:
    upload_id: str


@dataclass
class ProgressUpdate:
    video_id: str
    phase: str  # queued, probing, transcoding, publishing, done
    percent: float


@dataclass
class MarkReadyInput:
    video_id: str
    renditions: list[RenditionResult] = field(default_factory=list)
    duration_seconds: float = 0.0
    manifest_key: str = ""
    thumbnail_key: str = ""


@dataclass
class MarkFailedInput:
    video_id: str
    reason: str


@dataclass
class MarkDeletedInput:
    video_id: str


@dataclass
class TranscodeHeartbeat:
    """What the transcode activity reports with each heartbeat."""

    percent: float
    fps: float = 0.0
    speed: float = 0.0
    pipeline: str = "cpu"
