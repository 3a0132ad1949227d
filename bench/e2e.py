"""End to end: upload-complete -> READY through the real stack, against the hand-written
single FFmpeg ladder command on the same file with the same settings.

    python -m bench.e2e [--seconds 60] [--rounds 3] [--poll 0.25]

Each round uploads a 1080p30 clip (testsrc2 + a tone) the way an app does (CreateVideo
over gRPC, tuspy to the edge, CompleteUpload) and times, from the moment CompleteUpload is
sent:

- READY: the first GetVideo (polled every ``--poll`` s) that answers STATE_READY; this is
  the whole pipeline: outbox relay, Temporal, probe, download from S3, the farm's FFmpeg,
  publishing to S3, MARK_READY;
- first playable: a player can start: GetPlaybackUrl, then master.m3u8, the first
  variant playlist and its first segment all answer 200 through Varnish (cold cache).

The reference, alternately in the same rounds, is ``bench.transcode.single_command`` (one
FFmpeg process, split + scale, the farm's x264 settings and ladder) on the same local
file; its "first playable" is when every rendition's playlist lists a first segment.
Goal: READY at most 1.10x the reference's time. Needs the ``vora dev up`` stack of
VORA_ENV_FILE (control, worker, edge, farm, gateway, varnish and their infrastructure).
Writes bench/results/e2e.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import m3u8
import requests

from bench.harness import Report, alternate, figure, require_stack, save, show
from bench.transcode import RATE, ladder, make_clip, single_command
from farm.pipeline import EncodeJob
from farm.probe import probe_file
from vora.client import PendingUpload, UploadJournal, VideoClient, mint_user_token, tus_upload
from vora.config import Settings, load_settings
from vora.v1 import video_pb2

STACK = ["postgres", "s3", "temporal", "control", "worker", "edge", "farm", "gateway",
         "varnish"]
TERMINAL = {video_pb2.Video.STATE_READY, video_pb2.Video.STATE_FAILED}


@dataclass
class Timing:
    ready: float
    playable: float
    phases: dict[str, float] = field(default_factory=dict)  # first seen, s after complete


def phase_of(video: video_pb2.Video) -> str:
    state = video_pb2.Video.State.Name(video.state).removeprefix("STATE_")
    return f"{state} {video.progress.phase}".strip()


def first_playable(playback_url: str) -> None:
    """master, its first variant playlist and that playlist's first segment, all 200."""
    master = requests.get(playback_url, timeout=30)
    master.raise_for_status()
    variant = urllib.parse.urljoin(playback_url, m3u8.loads(master.text).playlists[0].uri)
    playlist = requests.get(variant, timeout=30)
    playlist.raise_for_status()
    segment = urllib.parse.urljoin(variant, m3u8.loads(playlist.text).segments[0].uri)
    requests.get(segment, timeout=30).raise_for_status()


async def vora_once(settings: Settings, clip: Path, size: int, work: Path,
                    poll: float) -> Timing:
    async with VideoClient(settings, mint_user_token(settings, "bench-e2e")) as client:
        created = await client.create("bench e2e", "bench/e2e.py", size)
        pending = PendingUpload(created.video.id, created.upload_url, created.upload_token)
        journal = UploadJournal(work / "journal.json")
        upload_id = await asyncio.to_thread(tus_upload, clip, pending, journal,
                                            lambda done, total: None, 64 * 1024**2)
        started = time.monotonic()
        video = await client.complete(pending.video_id, upload_id)
        phases = {phase_of(video): time.monotonic() - started}
        try:
            while video.state not in TERMINAL:
                await asyncio.sleep(poll)
                video = await client.get(pending.video_id)
                phases.setdefault(phase_of(video), time.monotonic() - started)
            ready = time.monotonic() - started
            if video.state != video_pb2.Video.STATE_READY:
                raise RuntimeError(f"video {video.id} FAILED: {video.failure_reason}")
            url = await client.playback_url(pending.video_id)
            await asyncio.to_thread(first_playable, url)
            return Timing(ready, time.monotonic() - started, phases)
        finally:
            await client.delete(pending.video_id)


def playable_dirs(out: Path, renditions: list[str]) -> bool:
    for name in renditions:
        playlist = out / name / "playlist.m3u8"
        if not playlist.exists() or ".ts" not in playlist.read_text(errors="replace"):
            return False
    return True


def reference_once(job: EncodeJob, settings: Settings, out: Path) -> Timing:
    command = single_command(job, settings, out)
    names = [r.name for r in job.renditions]
    started = time.monotonic()
    playable = 0.0
    process = subprocess.Popen(command)
    try:
        while process.poll() is None:
            if not playable and playable_dirs(out, names):
                playable = time.monotonic() - started
            time.sleep(0.1)
        if process.returncode != 0:
            raise RuntimeError(f"the reference ffmpeg exited with {process.returncode}")
        ready = time.monotonic() - started
        return Timing(ready, playable or ready)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(rounds: int = 3, seconds: int = 60, poll: float = 0.25) -> Report:
    settings = load_settings()
    require_stack(STACK)
    work = Path(tempfile.mkdtemp(prefix="vora-bench-e2e-"))
    vora: list[Timing] = []
    ref: list[Timing] = []
    try:
        clip = make_clip(work, seconds)
        size = clip.stat().st_size
        probe, demuxer = asyncio.run(probe_file(settings, clip))
        job = EncodeJob(clip, demuxer, probe, ladder(settings), settings.farm_segment_seconds,
                        float(RATE), True, work / "unused")

        def ours() -> float:
            vora.append(asyncio.run(vora_once(settings, clip, size, work, poll)))
            print(f"  vora: READY {vora[-1].ready:.1f} s, playable {vora[-1].playable:.1f} s",
                  flush=True)
            return vora[-1].ready

        def theirs() -> float:
            ref.append(reference_once(job, settings, work / "reference"))
            print(f"  ffmpeg: done {ref[-1].ready:.1f} s, first segments {ref[-1].playable:.1f} s",
                  flush=True)
            return ref[-1].ready

        alternate(rounds, ours, theirs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reference = "one hand-written ffmpeg ladder command, local file"
    figures = [
        figure(f"upload-complete -> READY, {seconds} s 1080p30", "s", [t.ready for t in vora],
               [t.ready for t in ref], reference, higher_is_better=False,
               goal="<= 1.10x its time (ratio >= 0.91x)"),
        figure(f"upload-complete -> first playable, {seconds} s 1080p30", "s",
               [t.playable for t in vora], [t.playable for t in ref],
               "same command: every rendition's playlist lists its first segment",
               higher_is_better=False),
    ]
    overhead = [v.ready - r.ready for v, r in zip(vora, ref, strict=True)]
    notes = [
        f"{seconds} s 1920x1080 {RATE} fps testsrc2 clip ({size / 1024**2:.0f} MiB), ladder "
        f"{[r.name for r in job.renditions]}, x264 preset {settings.farm_x264_preset}, "
        f"{rounds} round(s) alternating; GetVideo polled every {poll} s",
        "Vora's time counts from sending CompleteUpload: outbox relay, Temporal, probe, S3 "
        "download, the farm's FFmpeg, publishing to S3 and MARK_READY; the reference "
        "encodes a local file to a local folder",
        "first playable (Vora) = READY, then GetPlaybackUrl and master.m3u8, the first "
        "variant playlist and its first segment answering 200 through Varnish; the farm "
        "publishes master.m3u8 last, so nothing plays before the whole ladder is encoded",
        "pipeline overhead beyond the encode (Vora READY - reference) per round: "
        + ", ".join(f"{value:.1f} s" for value in overhead),
        "when GetVideo first showed each state/phase, per Vora round (s after "
        "CompleteUpload): " + "; ".join(
            ", ".join(f"{name} {at:.1f}" for name, at in t.phases.items()) for t in vora),
    ]
    return Report("e2e", figures, notes)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="source length (default 60)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.25, help="GetVideo poll interval, s")
    args = parser.parse_args()
    report = run(args.rounds, args.seconds, args.poll)
    show(report)
    print(f"  written: {save(report)}")


if __name__ == "__main__":
    main()
