"""The transcode benchmark on NVIDIA GPUs: the farm's NVENC pipeline against a
hand-written single FFmpeg NVENC ladder command, and against the farm's own CPU pipeline.

    python -m bench.transcode_gpu [--seconds 30] [--rounds 3] [--gpu 0]
                                  [--concurrency 1 2 4]

Runs only on a machine with an NVIDIA GPU, its driver (nvidia-smi) and an FFmpeg with
h264_nvenc and scale_cuda; elsewhere ``run()`` raises Skipped saying which is missing and
``make bench`` goes on. Same clip and ladder as bench.transcode; the reference decodes
on the GPU (``-hwaccel cuda``), splits and scales with scale_cuda and encodes with
h264_nvenc using the farm's NVENC options (preset, VBR, bitrates, GOP, forced IDR). The
concurrency figures run N jobs at once on one GPU (the farm's per-GPU slots). Needs no
stack. Writes bench/results/transcode_gpu.json.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.harness import Figure, Report, Skipped, alternate, figure, save, show
from bench.transcode import RATE, farm_side, prepare, processes_side
from farm.nvenc import CUDA_ENV
from farm.pipeline import EncodeJob
from vora.config import Settings, load_settings


def why_not(settings: Settings) -> str | None:
    """None when this machine can run the NVENC pipeline, else what is missing."""
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA driver here (nvidia-smi is not installed): no NVIDIA GPU"
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    if listed.returncode != 0 or "GPU " not in listed.stdout:
        return f"nvidia-smi lists no GPU ({(listed.stderr or listed.stdout).strip()[:200]})"
    encoders = subprocess.run([settings.farm_ffmpeg, "-hide_banner", "-encoders"],
                              capture_output=True, text=True, check=False).stdout
    filters = subprocess.run([settings.farm_ffmpeg, "-hide_banner", "-filters"],
                             capture_output=True, text=True, check=False).stdout
    if "h264_nvenc" not in encoders or "scale_cuda" not in filters:
        return f"{settings.farm_ffmpeg} lacks h264_nvenc or scale_cuda"
    return None


def nvenc_command(job: EncodeJob, settings: Settings, out: Path, gpu: int) -> list[str]:
    count = len(job.renditions)
    graph = (f"[0:v]fps={RATE},split={count}" + "".join(f"[v{i}]" for i in range(count)) + ";"
             + ";".join(f"[v{i}]scale_cuda={r.width}:{r.height}:format=nv12[o{i}]"
                        for i, r in enumerate(job.renditions)))
    gop = RATE * job.segment_seconds
    args = ["ffmpeg", "-v", "error", "-y", "-hwaccel", "cuda", "-hwaccel_device", str(gpu),
            "-hwaccel_output_format", "cuda", "-i", str(job.source), "-filter_complex", graph]
    for i, r in enumerate(job.renditions):
        folder = out / r.name
        folder.mkdir(parents=True, exist_ok=True)
        args += ["-map", f"[o{i}]", "-map", "0:a:0", "-c:v", "h264_nvenc", "-preset",
                 settings.farm_nvenc_preset, "-rc", "vbr", "-profile:v", r.profile,
                 "-b:v", str(r.video_bitrate), "-maxrate", str(r.max_bitrate),
                 "-bufsize", str(2 * r.max_bitrate), "-g", str(gop), "-forced-idr", "1",
                 "-strict_gop", "1", "-no-scenecut", "1", "-spatial-aq", "1",
                 "-force_key_frames", f"expr:gte(t,n_forced*{job.segment_seconds})",
                 "-c:a", "aac", "-b:a", str(r.audio_bitrate), "-ac", "2", "-ar", "48000",
                 "-f", "hls", "-hls_time", str(job.segment_seconds), "-hls_playlist_type",
                 "vod", "-hls_segment_filename", str(folder / "seg_%03d.ts"),
                 str(folder / "playlist.m3u8")]
    return args


def run(rounds: int = 3, seconds: int = 30, gpu: int = 0,
        concurrency: Sequence[int] = (1, 2, 4)) -> Report:
    settings = load_settings()
    reason = why_not(settings)
    if reason:
        raise Skipped(reason)
    work = Path(tempfile.mkdtemp(prefix="vora-bench-transcode-gpu-"))
    try:
        cpu_job = prepare(settings, work, seconds)
        job = EncodeJob(**{**cpu_job.__dict__, "pipeline": "nvenc", "gpu_index": gpu,
                           "extra_global": []})
        out = work / "out"

        def reference(count: int) -> float:
            return processes_side([nvenc_command(job, settings, out / f"ref{i}", gpu)
                                   for i in range(count)], out)()

        farm_nvenc = farm_side([job], settings, out)
        ours, theirs = alternate(rounds, farm_nvenc, lambda: reference(1))
        nvenc, cpu = alternate(max(1, rounds // 2), farm_nvenc,
                               farm_side([cpu_job], settings, out))
        figures: list[Figure] = [
            figure(f"{seconds} s 1080p ladder, farm NVENC pipeline", "s", ours, theirs,
                   "hand-written single ffmpeg NVENC command", higher_is_better=False,
                   goal="<= 1.10x its time (ratio >= 0.91x)"),
            figure(f"{seconds} s 1080p ladder, farm NVENC vs farm CPU", "s", nvenc, cpu,
                   f"farm CPU pipeline (x264 {settings.farm_x264_preset})",
                   higher_is_better=False),
        ]
        for count in concurrency:
            ours_n, theirs_n = alternate(max(1, rounds // 2),
                                         farm_side([job] * count, settings, out),
                                         lambda count=count: reference(count))  # type: ignore[misc]
            figures.append(figure(f"{count} concurrent ladders on one GPU, wall time", "s",
                                  ours_n, theirs_n, f"{count} hand-written NVENC commands",
                                  higher_is_better=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    notes = [f"{seconds} s 1920x1080 {RATE} fps testsrc2 clip, GPU {gpu}, NVENC preset "
             f"{settings.farm_nvenc_preset}, {rounds} round(s) alternating; CUDA env "
             f"{CUDA_ENV}"]
    return Report("transcode_gpu", figures, notes)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transcode_gpu",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gpu", type=int, default=0, help="GPU index (PCI bus order)")
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 2, 4])
    args = parser.parse_args()
    try:
        report = run(args.rounds, args.seconds, args.gpu, args.concurrency)
    except Skipped as reason:
        print(f"skipped: {reason}")
        return
    show(report)
    print(f"  written: {save(report)}")


if __name__ == "__main__":
    main()
