"""Benchmark: the farm's CPU pipeline against hand-written FFmpeg commands.

    python -m bench.transcode [--seconds 30] [--rounds 2] [--preset medium]
                              [--scaling-seconds 10] [--concurrency 1 2 4]

Three ways to produce the same 1080p/720p/360p HLS ladder with the same encoder
settings from one 1080p30 clip, run alternately in each round:

- farm:     the command farm.pipeline builds (decode once, split, scale, encode)
- single:   a hand-written single FFmpeg command doing the same
- separate: three FFmpeg processes at once, one per rendition (each decodes the source)

Then how cost grows with work: N copies of a shorter clip transcoded at once (1, 2, 4)
by N farm commands against N hand-written single commands, alternately.

Needs only FFmpeg (no stack). Writes bench/results/transcode.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.harness import Figure, Report, alternate, figure, save, show
from farm import process
from farm.limits import ffmpeg_limits
from farm.nvenc import CUDA_ENV
from farm.pipeline import EncodeJob, build_command, video_options
from farm.probe import probe_file
from vora import jobs
from vora.config import Settings, load_settings

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
    await process.run(build_command(farm_job, settings),
                      limits=ffmpeg_limits(settings, gpu=job.pipeline != "cpu"),
                      timeout=settings.farm_ffmpeg_timeout_seconds,
                      env=CUDA_ENV if job.pipeline != "cpu" else None)


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def prepare(settings: Settings, work: Path, seconds: int, name: str = "clip") -> EncodeJob:
    """A 1080p30 clip and the farm's job for it (the full ladder, CPU pipeline)."""
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    clip = make_clip(folder, seconds)
    probe, demuxer = asyncio.run(probe_file(settings, clip))
    job = EncodeJob(clip, demuxer, probe, ladder(settings), settings.farm_segment_seconds,
                    float(RATE), True, work / "unused")
    assert video_options(job, job.renditions[0], settings)["preset:v"] == settings.farm_x264_preset
    return job


def farm_side(jobs_: Sequence[EncodeJob], settings: Settings, out: Path) -> Callable[[], float]:
    """N farm commands at once (what one worker with N slots runs); wall seconds."""
    async def all_of() -> None:
        await asyncio.gather(*(run_farm(job, settings, out / f"farm{i}")
                               for i, job in enumerate(jobs_)))

    def once() -> float:
        try:
            return timed(lambda: asyncio.run(all_of()))
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return once


def processes_side(commands: Sequence[list[str]], out: Path) -> Callable[[], float]:
    """Hand-written FFmpeg commands started together; wall seconds until the last ends."""
    def once() -> float:
        try:
            def wait_all() -> None:
                for proc in [subprocess.Popen(c) for c in commands]:
                    if proc.wait() != 0:
                        raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
            return timed(wait_all)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return once


def ladder_figures(settings: Settings, job: EncodeJob, work: Path, rounds: int) -> list[Figure]:
    out = work / "ladder"
    farm = farm_side([job], settings, out)

    # The commands are built per run: building creates the output folders, and every run
    # removes them afterwards.
    def single_fresh() -> float:
        return processes_side([single_command(job, settings, out / "single")], out)()

    def separate_fresh() -> float:
        return processes_side(separate_commands(job, settings, out / "separate"), out)()

    farm_s, single_s = alternate(rounds, farm, single_fresh)
    farm_s2, separate_s = alternate(rounds, farm, separate_fresh)
    return [
        figure("ladder wall time vs one hand-written FFmpeg command", "s", farm_s, single_s,
               "single ffmpeg, split+scale, same x264 settings", higher_is_better=False,
               goal="<= 1.10x its time (ratio >= 0.91x)"),
        figure("ladder wall time vs one FFmpeg process per rendition", "s", farm_s2,
               separate_s, "3 ffmpeg processes at once", higher_is_better=False),
    ]


def scaling_figures(settings: Settings, work: Path, seconds: int, counts: Sequence[int],
                    rounds: int) -> tuple[list[Figure], list[str]]:
    biggest = max(counts)
    clips = [prepare(settings, work, seconds, f"scaling{i}") for i in range(biggest)]
    figures: list[Figure] = []
    per_video: dict[int, float] = {}
    for count in counts:
        out = work / f"scaling-out{count}"
        chosen = clips[:count]

        def single_fresh(chosen: Sequence[EncodeJob] = chosen, out: Path = out) -> float:
            commands = [single_command(j, settings, out / f"single{i}")
                        for i, j in enumerate(chosen)]
            return processes_side(commands, out)()

        ours, theirs = alternate(rounds, farm_side(chosen, settings, out), single_fresh)
        fig = figure(f"{count} concurrent {seconds} s ladders, wall time", "s", ours, theirs,
                     f"{count} hand-written single ffmpeg commands at once",
                     higher_is_better=False)
        figures.append(fig)
        per_video[count] = fig.vora / count
    one = per_video[min(counts)]
    notes = ["scaling: farm seconds per video at N concurrent = " + ", ".join(
        f"N={n}: {t:.1f} s ({one / t:.2f}x the N={min(counts)} throughput)"
        for n, t in per_video.items())]
    return figures, notes


def run(rounds: int = 2, seconds: int = 30, preset: str | None = None,
        scaling_seconds: int = 10, concurrency: Sequence[int] = (1, 2, 4),
        scaling_rounds: int = 1) -> Report:
    settings = load_settings()
    if preset:
        settings = settings.model_copy(update={"farm_x264_preset": preset})
    work = Path(tempfile.mkdtemp(prefix="vora-bench-transcode-"))
    try:
        job = prepare(settings, work, seconds)
        figures = ladder_figures(settings, job, work, rounds)
        scaled, notes = (scaling_figures(settings, work, scaling_seconds, concurrency,
                                         scaling_rounds) if concurrency else ([], []))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    frames = seconds * RATE
    notes = [f"{seconds} s 1920x1080 {RATE} fps testsrc2 clip, ladder "
             f"{[r.name for r in job.renditions]}, x264 preset {settings.farm_x264_preset}, "
             f"{rounds} round(s) alternating; farm = the command farm.pipeline builds "
             f"(also writes the thumbnail), run under the farm's process limits",
             f"farm {frames / figures[0].vora:.1f} source frames/s",
             *notes]
    return Report("transcode", [*figures, *scaled], notes)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transcode",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30, help="clip length (default 30)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--preset", default=None, help="x264 preset (default: the farm's)")
    parser.add_argument("--scaling-seconds", type=int, default=10)
    parser.add_argument("--scaling-rounds", type=int, default=1)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 2, 4],
                        help="concurrent videos for the scaling figures (none: skip them)")
    args = parser.parse_args()
    report = run(args.rounds, args.seconds, args.preset, args.scaling_seconds,
                 args.concurrency, args.scaling_rounds)
    show(report)
    print(f"  written: {save(report)}")


if __name__ == "__main__":
    main()
