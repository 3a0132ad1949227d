"""Quality beside cost: SSIM and PSNR (and VMAF where FFmpeg has libvmaf) of every
rendition the farm's pipeline produces, against the source scaled to the rendition's size,
with the rendition's bitrate; the hand-written single FFmpeg ladder is the reference.

    python -m bench.quality [--seconds 10] [--preset medium]

Both ladders are encoded from the same 1080p30 clip with the same ladder and x264
settings: the farm with the command ``farm.pipeline.build_command`` builds (what a farm
worker runs), the reference with ``bench.transcode.single_command``. Metrics are computed
over the whole HLS rendition (every segment, decoded through its playlist), timestamps
reset on both sides so frames pair up. Needs only FFmpeg (no stack). Writes
bench/results/quality.json.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import m3u8

from bench.harness import Figure, Report, save, show
from bench.transcode import RATE, prepare, run_farm, single_command
from farm.pipeline import EncodeJob
from vora.config import Settings, load_settings

SSIM = re.compile(r"SSIM .*All:([0-9.]+)")
PSNR = re.compile(r"PSNR .*average:([0-9.]+|inf)")
VMAF = re.compile(r"VMAF score[:=] *([0-9.]+)")


def has_vmaf(ffmpeg: str) -> bool:
    filters = subprocess.run([ffmpeg, "-hide_banner", "-filters"], capture_output=True,
                             text=True, check=True).stdout
    return bool(re.search(r"\blibvmaf\b", filters))


def bitrate_kbps(playlist: Path) -> float:
    """Mean bits per second of the rendition's segments (video + audio), as delivered."""
    parsed = m3u8.load(str(playlist))
    size = sum((playlist.parent / s.uri).stat().st_size for s in parsed.segments)
    duration = float(sum(s.duration for s in parsed.segments))
    return float(size * 8 / duration / 1000)


def metrics(ffmpeg: str, playlist: Path, source: Path, width: int, height: int,
            vmaf: bool) -> dict[str, float]:
    """SSIM (All), PSNR (average dB) and VMAF of the rendition against the scaled source."""
    count = 3 if vmaf else 2
    outs = "".join(f"[d{i}]" for i in range(count))
    refs = "".join(f"[r{i}]" for i in range(count))
    graph = (f"[0:v]setpts=PTS-STARTPTS,fps={RATE},split={count}{outs};"
             f"[1:v]setpts=PTS-STARTPTS,fps={RATE},scale={width}:{height}:flags=bicubic,"
             f"split={count}{refs};[d0][r0]ssim;[d1][r1]psnr")
    if vmaf:
        graph += ";[d2][r2]libvmaf"
    result = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostats", "-i", str(playlist), "-i", str(source),
         "-filter_complex", graph, "-f", "null", "-"],
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"measuring {playlist} failed: {result.stderr[-2000:]}")
    found = {"ssim": SSIM.search(result.stderr), "psnr": PSNR.search(result.stderr)}
    if vmaf:
        found["vmaf"] = VMAF.search(result.stderr)
    missing = [name for name, match in found.items() if match is None]
    if missing:
        raise RuntimeError(f"no {missing} in FFmpeg's output for {playlist}")
    return {name: float(match.group(1)) for name, match in found.items() if match}


def encode_both(settings: Settings, job: EncodeJob, out: Path) -> None:
    asyncio.run(run_farm(job, settings, out / "farm"))
    subprocess.run(single_command(job, settings, out / "reference"), check=True)


def run(seconds: int = 10, preset: str | None = None) -> Report:
    settings = load_settings()
    if preset:
        settings = settings.model_copy(update={"farm_x264_preset": preset})
    vmaf = has_vmaf(settings.farm_ffmpeg)
    work = Path(tempfile.mkdtemp(prefix="vora-bench-quality-"))
    figures: list[Figure] = []
    try:
        job = prepare(settings, work, seconds)
        encode_both(settings, job, work)
        for rendition in job.renditions:
            sides = {side: work / side / rendition.name / "playlist.m3u8"
                     for side in ("farm", "reference")}
            scores = {side: metrics(settings.farm_ffmpeg, path, job.source, rendition.width,
                                    rendition.height, vmaf) for side, path in sides.items()}
            rates = {side: bitrate_kbps(path) for side, path in sides.items()}
            reference = "hand-written single ffmpeg ladder, same settings"
            label = f"{rendition.name} ({rendition.width}x{rendition.height})"
            figures += [Figure(f"{label} SSIM", "", scores["farm"]["ssim"],
                               scores["reference"]["ssim"], reference, goal=">= 0.99x"),
                        Figure(f"{label} PSNR", "dB", scores["farm"]["psnr"],
                               scores["reference"]["psnr"], reference, goal=">= 0.99x")]
            if vmaf:
                figures.append(Figure(f"{label} VMAF", "", scores["farm"]["vmaf"],
                                      scores["reference"]["vmaf"], reference))
            figures.append(Figure(f"{label} bitrate (target {rendition.video_bitrate // 1000}"
                                  f"k video + {rendition.audio_bitrate // 1000}k audio)",
                                  "kbit/s", rates["farm"], rates["reference"], reference,
                                  higher_is_better=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    notes = [
        f"{seconds} s 1920x1080 {RATE} fps testsrc2 clip (synthetic, easy to compress: "
        f"absolute scores are high; compare farm and reference), x264 preset "
        f"{settings.farm_x264_preset}; one encode each (deterministic, so no rounds)",
        "SSIM = the All value of FFmpeg's ssim filter, PSNR = the average of its psnr "
        "filter, the source scaled to the rendition's size with bicubic; bitrate = segment "
        "bytes (video + audio, MPEG-TS) over the playlist's duration",
        "VMAF: measured with libvmaf" if vmaf else
        "VMAF: not measured, this FFmpeg build has no libvmaf filter "
        "(`ffmpeg -filters | grep vmaf` lists only vmafmotion)",
    ]
    return Report("quality", figures, notes)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quality",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="clip length (default 10)")
    parser.add_argument("--preset", default=None, help="x264 preset (default: the farm's)")
    args = parser.parse_args()
    report = run(args.seconds, args.preset)
    show(report)
    print(f"  written: {save(report)}")


if __name__ == "__main__":
    main()
