"""Resource limits for every FFmpeg/ffprobe process the farm starts (hostile input)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from vora.config import Settings

# Demuxers a source may be read with. Never hls, concat, image2 or any other demuxer
# that opens further files or URLs named inside the upload.
ALLOWED_DEMUXERS: dict[str, str] = {
    "mov": "mov",
    "mp4": "mov",
    "matroska": "matroska",
    "webm": "matroska",
    "mpegts": "mpegts",
    "avi": "avi",
    "flv": "flv",
    "mpeg": "mpeg",
}
FORMAT_WHITELIST = ",".join(sorted(set(ALLOWED_DEMUXERS.values())))
SUPPORTED_CONTAINERS = "MP4/MOV, Matroska/WebM, MPEG-TS, MPEG-PS, AVI or FLV"
PRLIMIT = shutil.which("prlimit") or "/usr/bin/prlimit"


@dataclass(frozen=True)
class ProcessLimits:
    """What one FFmpeg process may use. memory_bytes=0 leaves the address space alone."""

    memory_bytes: int
    cpu_seconds: int
    file_bytes: int = 64 * 1024**3

    def wrap(self, args: Sequence[str]) -> list[str]:
        """The command run under util-linux prlimit, which sets the limits and execs it.

        Not a preexec_fn: that forces a plain fork() of this multi-threaded process, and
        gRPC's fork handlers then write into the child's stderr, which became a bogus
        "bad media" reason. Without preexec_fn, Python can vfork/exec cleanly."""
        limits = [PRLIMIT, "--core=0", f"--cpu={self.cpu_seconds}",
                  f"--fsize={self.file_bytes}"]
        if self.memory_bytes:
            limits.append(f"--as={self.memory_bytes}")
        return [*limits, "--", *args]


def ffmpeg_limits(settings: Settings, *, gpu: bool) -> ProcessLimits:
    """Limits for an encode. CUDA reserves far more virtual address space than it uses,
    so GPU pipelines cannot run under RLIMIT_AS; their memory is bounded by the node's
    cgroup (see docs/farm.md) instead."""
    cores = os.cpu_count() or 1
    return ProcessLimits(
        memory_bytes=0 if gpu else settings.farm_ffmpeg_memory_bytes,
        cpu_seconds=settings.farm_ffmpeg_timeout_seconds * cores,
    )


def probe_limits(settings: Settings) -> ProcessLimits:
    cores = os.cpu_count() or 1
    return ProcessLimits(
        memory_bytes=min(settings.farm_ffmpeg_memory_bytes, 2 * 1024**3),
        cpu_seconds=settings.farm_probe_timeout_seconds * cores,
        file_bytes=0,
    )


def input_options(settings: Settings) -> dict[str, str | int]:
    """Options every read of an upload gets: local files only, allowed demuxers only,
    bounded probing."""
    return {
        "protocol_whitelist": "file",
        "format_whitelist": FORMAT_WHITELIST,
        "probesize": settings.farm_probe_max_bytes,
        "analyzeduration": settings.farm_probe_max_analyze_seconds * 1_000_000,
    }
