"""Exercise the farm on real NVIDIA hardware: ``python -m farm.gpu_check``.

Runs NVML discovery, the one-frame NVENC probe of each GPU, and each GPU pipeline the
card supports (nvenc where NVENC works, nvdec everywhere) plus the CPU pipeline on a
synthetic 1080p clip, locally (no S3, no Temporal), and prints what it found as JSON.
Exit status 0 when every pipeline the card should run produced a valid ladder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from farm import node, process, renditions
from farm.limits import ffmpeg_limits
from farm.nvenc import CUDA_ENV
from farm.pipeline import EncodeJob, Pipeline, build_command
from farm.probe import probe_file
from vora import jobs
from vora.config import Settings, load_settings

CLIP_SECONDS = 6


def make_clip(settings: Settings, folder: Path) -> Path:
    clip = folder / "clip.mp4"
    subprocess.run([settings.farm_ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1920x1080:rate=30:duration={CLIP_SECONDS}", "-f", "lavfi",
                    "-i", f"sine=duration={CLIP_SECONDS}", "-c:v", "libx264", "-preset",
                    "veryfast", "-c:a", "aac", "-shortest", str(clip)], check=True, timeout=120)
    return clip


def ladder(settings: Settings) -> jobs.LadderPlan:
    rungs = [jobs.RenditionPlan(r.name, (r.height * 16 // 9) // 2 * 2, r.height, r.video_bitrate,
                                r.max_bitrate, r.audio_bitrate, r.profile)
             for r in settings.farm_ladder if r.height <= 1080]
    return jobs.LadderPlan(rungs, settings.farm_segment_seconds, 30.0, True)


async def run_pipeline(settings: Settings, clip: Path, pipeline: Pipeline, gpu_index: int,
                       folder: Path) -> dict[str, Any]:
    probe, demuxer = await probe_file(settings, clip)
    plan = ladder(settings)
    out_dir = folder / f"{pipeline}-{gpu_index}"
    job = EncodeJob(clip, demuxer, probe, plan.renditions, plan.segment_seconds, 30.0, True,
                    out_dir, pipeline, gpu_index)
    command = build_command(job, settings)
    started = time.monotonic()
    try:
        await process.run(command, limits=ffmpeg_limits(settings, gpu=pipeline != "cpu"),
                          timeout=600, env=CUDA_ENV)
    except process.FfmpegError as exc:
        return {"pipeline": pipeline, "gpu": gpu_index, "ok": False, "error": str(exc),
                "stderr": exc.stderr[-2000:], "command": " ".join(command)}
    seconds = time.monotonic() - started
    measured = [await renditions.measure(settings, "00000000-0000-4000-8000-000000000000",
                                         out_dir, r, True) for r in plan.renditions]
    return {"pipeline": pipeline, "gpu": gpu_index, "ok": True, "seconds": round(seconds, 2),
            "fps": round(CLIP_SECONDS * 30 / seconds, 1),
            "renditions": [{"name": r.name, "size": f"{r.width}x{r.height}",
                            "codecs": r.codecs, "bandwidth": r.bandwidth} for r in measured],
            "thumbnail": (out_dir / "thumbnail.jpg").exists()}


async def check(settings: Settings, keep: bool) -> int:
    inventory, allocator = await node.discover(settings)
    report: dict[str, Any] = {"driver": inventory.driver_version, "gpus": [], "runs": []}
    for gpu in allocator.gpus.values():
        report["gpus"].append({"index": gpu.info.index, "uuid": gpu.info.uuid,
                               "model": gpu.info.name, "memory_total": gpu.info.memory_total,
                               "nvenc": gpu.nvenc, "session_cap": gpu.session_cap,
                               "encoder_sessions": gpu.info.encoder_sessions,
                               "slots": gpu.slots, "pipeline": gpu.pipeline})
    folder = Path(tempfile.mkdtemp(prefix="vora-gpu-check-"))
    try:
        clip = make_clip(settings, folder)
        report["runs"].append(await run_pipeline(settings, clip, "cpu", 0, folder))
        for gpu in allocator.gpus.values():
            wanted: list[Pipeline] = ["nvenc", "nvdec"] if gpu.nvenc else ["nvdec"]
            for pipeline in wanted:
                report["runs"].append(
                    await run_pipeline(settings, clip, pipeline, gpu.info.index, folder))
    finally:
        inventory.stop()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0 if all(run["ok"] for run in report["runs"]) else 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m farm.gpu_check", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the encoded output")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(check(load_settings(), args.keep)))


if __name__ == "__main__":
    main()
