"""The one FFmpeg command that turns a source into every rendition of a ladder.

Decode once, split, scale per rendition, encode, and mux each rendition as HLS VOD
with keyframes forced at the same instants in every rendition, so segments align.
Three pipelines share this shape and differ only in where frames live:

- nvenc: NVDEC decode, scale_cuda, h264_nvenc (frames never leave the GPU)
- nvdec: NVDEC decode, scale_cuda, download, libx264 (GPUs without NVENC: A100/H100/H200)
- cpu:   software decode, scale, libx264
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import ffmpeg

from farm.limits import input_options
from vora import jobs
from vora.config import Settings

Pipeline = Literal["nvenc", "nvdec", "cpu"]
PIPELINES: tuple[Pipeline, ...] = ("nvenc", "nvdec", "cpu")
# Codecs NVDEC decodes on every card the farm supports; anything else is decoded in
# software and uploaded to the GPU.
NVDEC_CODECS = frozenset({"h264", "hevc", "vp9", "av1", "mpeg2video", "vp8", "vc1", "mpeg4"})
THUMBNAIL_WIDTH = 640
THUMBNAIL_CANDIDATES = 30  # frames the thumbnail filter chooses the most typical from
PLAYLIST = "playlist.m3u8"
SEGMENT_PATTERN = "seg_%03d.ts"
THUMBNAIL = "thumbnail.jpg"


@dataclass(frozen=True)
class EncodeJob:
    """Everything the command depends on; built by the transcode activity."""

    source: Path
    demuxer: str
    probe: jobs.ProbeResult
    renditions: list[jobs.RenditionPlan]
    segment_seconds: int
    frame_rate: float
    has_audio: bool
    out_dir: Path
    pipeline: Pipeline = "cpu"
    gpu_index: int = 0
    extra_global: list[str] = field(default_factory=list)


def even(value: float) -> int:
    """The even number at or below value (4:2:0 needs even sizes; never grows a picture)."""
    return max(2, int(value) // 2 * 2)


def fit_renditions(plan: jobs.LadderPlan, probe: jobs.ProbeResult) -> list[jobs.RenditionPlan]:
    """The plan's renditions that do not upscale the source; never none (the smallest
    is shrunk to the source's size)."""
    kept = [r for r in plan.renditions if r.width <= probe.width and r.height <= probe.height]
    if kept or not plan.renditions:
        return kept
    smallest = min(plan.renditions, key=lambda r: r.width * r.height)
    scale = min(probe.width / smallest.width, probe.height / smallest.height)
    return [jobs.RenditionPlan(**{**smallest.__dict__, "width": even(smallest.width * scale),
                                  "height": even(smallest.height * scale)})]


def thumbnail_size(probe: jobs.ProbeResult) -> tuple[int, int]:
    width = min(THUMBNAIL_WIDTH, probe.width)
    return even(width), even(probe.height * width / probe.width)


def hardware_decode(job: EncodeJob) -> bool:
    """Whether NVDEC decodes: not on the CPU pipeline, and not for rotated sources
    (autorotation runs on system-memory frames) or codecs NVDEC lacks."""
    return (job.pipeline != "cpu" and job.probe.rotation == 0
            and job.probe.video_codec in NVDEC_CODECS)


def _input(job: EncodeJob, settings: Settings) -> Any:
    options: dict[str, Any] = {"f": job.demuxer, **input_options(settings)}
    if hardware_decode(job):
        options.update(hwaccel="cuda", hwaccel_device="gpu", hwaccel_output_format="cuda",
                       extra_hw_frames=8)
    return ffmpeg.input("file:" + str(job.source), **options)


def _decoded_video(job: EncodeJob, source: Any) -> Any:
    video = source["v:0"].filter("fps", fps=job.frame_rate)
    if job.pipeline != "cpu" and not hardware_decode(job):
        video = video.filter("format", "nv12").filter("hwupload_cuda")
    return video


def _scaled(job: EncodeJob, branch: Any, width: int, height: int) -> Any:
    if job.pipeline == "cpu":
        return branch.filter("scale", width, height, flags="bicubic").filter("format", "yuv420p")
    scaled = branch.filter("scale_cuda", width, height, format="nv12", interp_algo="bicubic")
    if job.pipeline == "nvdec":
        return scaled.filter("hwdownload").filter("format", "nv12")
    return scaled


def _thumbnail(job: EncodeJob, now: Any, later: Any) -> Any:
    """Frame 0 at once, then the most typical of 30 frames a quarter into the video (past
    intros and fades); the image2 muxer with -update 1 keeps the last one written.

    Frame 0 matters: FFmpeg 5.1 prints no -progress until every output has received a
    frame, so a thumbnail output waiting for minute 30 of a two-hour film would starve
    the activity's heartbeats for half an hour."""
    width, height = thumbnail_size(job.probe)
    start = round(job.probe.duration_seconds / 4, 3)
    first = _thumbnail_scaled(job, now.filter("trim", end_frame=1), width, height)
    # One batch only: the thumbnail filter picks one frame per batch until the end.
    candidates = later.filter("trim", start=start).filter("trim", end_frame=THUMBNAIL_CANDIDATES)
    typical = _thumbnail_scaled(job, candidates, width, height).filter(
        "thumbnail", THUMBNAIL_CANDIDATES)
    both = ffmpeg.concat(first.filter("setpts", "PTS-STARTPTS"),
                         typical.filter("setpts", "PTS-STARTPTS"), v=1, a=0)
    # One second apart whatever concat made of them: the JPEG encoder needs rising pts.
    return both.filter("setpts", "N/TB").filter("format", "yuvj420p")


def _thumbnail_scaled(job: EncodeJob, frames: Any, width: int, height: int) -> Any:
    if job.pipeline == "cpu":
        return frames.filter("scale", width, height)
    return frames.filter("scale_cuda", width, height, format="nv12").filter(
        "hwdownload").filter("format", "nv12")


def video_options(job: EncodeJob, rendition: jobs.RenditionPlan,
                  settings: Settings) -> dict[str, Any]:
    gop = max(1, round(job.frame_rate * job.segment_seconds))
    common = {
        "b:v": rendition.video_bitrate, "maxrate:v": rendition.max_bitrate,
        "bufsize:v": 2 * rendition.max_bitrate, "profile:v": rendition.profile,
        "g:v": gop, "force_key_frames:v": f"expr:gte(t,n_forced*{job.segment_seconds})",
    }
    if job.pipeline == "nvenc":
        return {**common, "c:v": "h264_nvenc", "preset:v": settings.farm_nvenc_preset,
                "rc:v": "vbr", "forced-idr": 1, "strict_gop": 1, "no-scenecut": 1,
                "spatial-aq": 1}
    # Scene-cut keyframes would break alignment; +cgop keeps every GOP closed.
    return {**common, "c:v": "libx264", "preset:v": settings.farm_x264_preset,
            "keyint_min:v": gop, "sc_threshold:v": 0, "flags:v": "+cgop",
            "pix_fmt:v": "yuv420p"}


def hls_options(job: EncodeJob, rendition_dir: Path) -> dict[str, Any]:
    return {
        "f": "hls", "hls_time": job.segment_seconds, "hls_playlist_type": "vod",
        "hls_list_size": 0, "hls_segment_type": "mpegts", "start_number": 0,
        "hls_flags": "independent_segments",
        "hls_segment_filename": str(rendition_dir / SEGMENT_PATTERN),
        "max_muxing_queue_size": 4096,
    }


def audio_options(rendition: jobs.RenditionPlan) -> dict[str, Any]:
    return {"c:a": "aac", "b:a": rendition.audio_bitrate, "ac": 2, "ar": 48000}


def build_command(job: EncodeJob, settings: Settings) -> list[str]:
    """The full argv of the one FFmpeg process for ``job``."""
    source = _input(job, settings)
    branches = _decoded_video(job, source).filter_multi_output("split", len(job.renditions) + 2)
    outputs = []
    for index, rendition in enumerate(job.renditions):
        rendition_dir = job.out_dir / rendition.name
        rendition_dir.mkdir(parents=True, exist_ok=True)
        streams = [_scaled(job, branches[index], rendition.width, rendition.height)]
        options = {**video_options(job, rendition, settings),
                   **hls_options(job, rendition_dir)}
        if job.has_audio:
            streams.append(source["a:0"])
            options.update(audio_options(rendition))
        outputs.append(ffmpeg.output(*streams, str(rendition_dir / PLAYLIST), **options))
    thumbnail = _thumbnail(job, branches[len(job.renditions)], branches[len(job.renditions) + 1])
    outputs.append(ffmpeg.output(thumbnail,
                                 str(job.out_dir / THUMBNAIL),
                                 **{"q:v": 3, "update": 1, "f": "image2",
                                    "fps_mode:v": "passthrough"}))
    compiled: list[str] = ffmpeg.merge_outputs(*outputs).compile(cmd=settings.farm_ffmpeg)
    # Global options first: FFmpeg ignores some options that trail the last output.
    return [compiled[0], *global_args(job), *compiled[1:]]


def global_args(job: EncodeJob) -> list[str]:
    args = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-progress", "pipe:1",
            "-nostats", "-stats_period", "1"]
    if job.pipeline != "cpu":
        args += ["-init_hw_device", f"cuda=gpu:{job.gpu_index}", "-filter_hw_device", "gpu"]
    return [*args, *job.extra_global]
