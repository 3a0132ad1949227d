"""Benchmark: the farm's CPU pipeline against hand-written FFmpeg commands.

    python -m bench.transcode [--seconds 30] [--rounds 2] [--preset medium]

Three ways to produce the same 1080p/720p/360p HLS ladder with the same encoder
settings from one 1080p30 clip, run alternately in each round:

- farm:     the command farm.pipeline builds (decode once, split, scale, encode)
- single:   a hand-written single FFmpeg command doing the same
- separate: three FFmpeg processes at once, one per rendition (each decodes the source)

Prints wall seconds, frames per second of source, and ratios to the farm; writes
bench/results/transcode.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from farm import process
from farm.limits import ffmpeg_limits
from farm.pipeline import EncodeJob, build_command, video_options
from farm.probe import probe_file
from vora import jobs
from vora.config import Settings, load_settings

RESULTS = Path(__file__).resolve().parent / "results" / "transcode.json"
RATE = 30


def make_clip(folder: Path, seconds: int) -> Path:
    clip = folder / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1920x1080:rate={RATE}:duration={seconds}", "-f", "lavfi",
                    "-i", f"sine=duration={seconds}", "-c:v", "libx264", "-preset", "veryfast",
                    "-crf", "18", "-c:a", "aac", "-shortest", str(clip)], check=True)
    return clip


def ladder(settings: Settings) -> list[jobs.RenditionPlan]:
    return [jobs.RenditionPlan(r.name, r.height * 16 // 9 // 2 * 2, r.height, r.video_bitrate,
                               r.max_bitrate, r.audio_bitrate, r.profile)
            for r in settings.farm_ladder]


def x264_args(job: EncodeJob, rendition: jobs.RenditionPlan, settings: Settings) -> list[str]:
    """The same encoder options the farm uses, spelled out."""
    seg = job.segment_seconds
    gop = RATE * seg
    return ["-c:v", "libx264", "-preset", settings.farm_x264_preset, "-profile:v",
            rendition.profile, "-b:v", str(rendition.video_bitrate), "-maxrate",
            str(rendition.max_bitrate), "-bufsize", str(2 * rendition.max_bitrate),
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-flags", "+cgop",
            "-force_key_frames", f"expr:gte(t,n_forced*{seg})", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", str(rendition.audio_bitrate), "-ac", "2", "-ar", "48000",
            "-f", "hls", "-hls_time", str(seg), "-hls_playlist_type", "vod",
            "-hls_segment_filename"]


def single_command(job: EncodeJob, settings: Settings, out: Path) -> list[str]:
    count = len(job.renditions)
    graph = f"[0:v]fps={RATE},split={count}" + "".join(f"[v{i}]" for i in range(count)) + ";"
    graph += ";".join(f"[v{i}]scale={r.width}:{r.height}[o{i}]"
                      for i, r in enumerate(job.renditions))
    args = ["ffmpeg", "-v", "error", "-y", "-i", str(job.source), "-filter_complex", graph]
    for i, rendition in enumerate(job.renditions):
        folder = out / rendition.name
        folder.mkdir(parents=True, exist_ok=True)
        args += ["-map", f"[o{i}]", "-map", "0:a:0", *x264_args(job, rendition, settings),
                 str(folder / "seg_%03d.ts"), str(folder / "playlist.m3u8")]
    return args


def separate_commands(job: EncodeJob, settings: Settings, out: Path) -> list[list[str]]:
    commands = []
    for rendition in job.renditions:
        folder = out / rendition.name
        folder.mkdir(parents=True, exist_ok=True)
        commands.append(["ffmpeg", "-v", "error", "-y", "-i", str(job.source), "-vf",
                         f"fps={RATE},scale={rendition.width}:{rendition.height}",
                         *x264_args(job, rendition, settings), str(folder / "seg_%03d.ts"),
                         str(folder / "playlist.m3u8")])
    return commands


async def run_farm(job: EncodeJob, settings: Settings, out: Path) -> None:
    farm_job = EncodeJob(**{**job.__dict__, "out_dir": out})
    await process.run(build_command(farm_job, settings), limits=ffmpeg_limits(settings, gpu=False),
                      timeout=settings.farm_ffmpeg_timeout_seconds)


def timed(action: Any) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transcode", description=__doc__)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--preset", default=None, help="x264 preset (default: the farm's)")
    args = parser.parse_args()
    settings = load_settings()
    if args.preset:
        settings = settings.model_copy(update={"farm_x264_preset": args.preset})
    work = Path(tempfile.mkdtemp(prefix="vora-bench-"))
    try:
        report = bench(settings, work, args.seconds, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def bench(settings: Settings, work: Path, seconds: int, rounds: int) -> dict[str, Any]:
    clip = make_clip(work, seconds)
    probe, demuxer = asyncio.run(probe_file(settings, clip))
    job = EncodeJob(clip, demuxer, probe, ladder(settings), settings.farm_segment_seconds,
                    float(RATE), True, work / "unused")
    assert video_options(job, job.renditions[0], settings)["preset:v"] == settings.farm_x264_preset
    runs: dict[str, list[float]] = {"farm": [], "single": [], "separate": []}
    for index in range(rounds):
        out = work / f"round{index}"
        farm_cmd = (job, settings, out / "farm")
        single = single_command(job, settings, out / "single")
        separate = separate_commands(job, settings, out / "separate")
        runs["farm"].append(timed(lambda: asyncio.run(run_farm(*farm_cmd))))  # noqa: B023
        runs["single"].append(timed(lambda: subprocess.run(single, check=True)))  # noqa: B023
        runs["separate"].append(timed(lambda: [
            p.wait() for p in [subprocess.Popen(c) for c in separate]]))  # noqa: B023
        shutil.rmtree(out, ignore_errors=True)
    frames = seconds * RATE
    median = {name: statistics.median(values) for name, values in runs.items()}
    return {
        "clip": f"{seconds} s 1920x1080 {RATE} fps, ladder "
                f"{[r.name for r in job.renditions]}, x264 preset {settings.farm_x264_preset}",
        "rounds": rounds, "wall_seconds": runs,
        "fps": {name: round(frames / value, 2) for name, value in median.items()},
        "ratio_to_farm": {name: round(value / median["farm"], 3)
                          for name, value in median.items()},
    }


if __name__ == "__main__":
    main()
