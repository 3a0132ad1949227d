"""``make demo``: the whole local stack, a video uploaded, transcoded and playable.

Steps, each saying what failed and where to look when it does: bring the stack up;
take VIDEO (or generate a 1080p clip with motion and audio); upload it through the edge
with a progress bar; complete it; follow transcoding until READY; print the playback,
player and dashboard URLs; keep the stack running until Ctrl-C.
``--exit-after-urls`` (or VORA_DEMO_EXIT=1) stops after printing, for tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import urllib.parse
from pathlib import Path

from rich.console import Console

from vora import devstack
from vora.cli_videos import upload_and_complete, watch_until_done
from vora.client import ClientError, UploadJournal, VideoClient, mint_user_token
from vora.config import Settings, SettingsError, load_settings
from vora.v1 import video_pb2

console = Console()


class DemoError(Exception):
    """A step failed; the message names the step and where to look."""


def sample_video(settings: Settings, seconds: int = 20) -> Path:
    """A 1080p30 clip with motion (testsrc2) and a tone, made once with ffmpeg."""
    target = settings.home / "demo" / f"sample-1080p-{seconds}s.mp4"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [
        settings.farm_ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-shortest", str(target.with_suffix(".part.mp4")),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DemoError(f"generating the sample video failed: {result.stderr.strip()}")
    target.with_suffix(".part.mp4").rename(target)
    return target


def player_url(settings: Settings, playback_url: str, video_id: str) -> str:
    query = urllib.parse.urlencode({"src": playback_url, "video": video_id})
    return f"http://{settings.gateway_host}:{settings.gateway_port}/player?{query}"


async def run_job(settings: Settings, video: Path, size: int,
                  user: str) -> tuple[str, str]:
    """Upload, complete and wait for READY; returns (video id, playback URL)."""
    journal = UploadJournal(settings.home / "demo" / "uploads.json")
    async with VideoClient(settings, mint_user_token(settings, user)) as client:
        console.print(f"[bold]2/4[/bold] uploading {video.name} through the edge")
        created = await upload_and_complete(client, video, size, f"Vora demo: {video.name}",
                                            "uploaded by make demo", journal)
        console.print(f"[bold]3/4[/bold] transcoding video {created.id}")
        result = await watch_until_done(client, created.id)
        if result.state != video_pb2.Video.STATE_READY:
            raise DemoError(f"transcoding failed: {result.failure_reason}. "
                            f"Look at {settings.home / 'logs' / 'farm.log'} and the "
                            f"Temporal UI (workflow transcode-{created.id})")
        return created.id, await client.playback_url(created.id)


def print_urls(settings: Settings, video_id: str, playback: str) -> None:
    temporal_host = settings.temporal_address.rsplit(":", 1)[0]
    console.print("[bold]4/4[/bold] ready\n")
    console.print(f"  video id      {video_id}")
    print(f"  playback URL  {playback}")
    print(f"  player page   {player_url(settings, playback, video_id)}")
    console.print(f"  dashboard     http://{settings.control_host}:"
                  f"{settings.control_http_port}/dashboard")
    console.print(f"  Temporal UI   http://{temporal_host}:{settings.temporal_ui_port}")
    print(f"\n  try: ffplay '{playback}'   or   vora status {video_id}\n")


def wait_for_interrupt() -> None:
    console.print("The stack keeps running; press Ctrl-C to stop it.")
    with contextlib.suppress(KeyboardInterrupt):
        signal.pause()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vora-demo", description=__doc__)
    parser.add_argument("--video", type=Path, default=os.environ.get("VIDEO") or None)
    parser.add_argument("--user", default="demo")
    parser.add_argument("--exit-after-urls", action="store_true",
                        default=os.environ.get("VORA_DEMO_EXIT") == "1")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        console.print("[bold]1/4[/bold] starting the local stack")
        with console.status("starting") as spinner:
            devstack.up(settings, progress=lambda text: spinner.update(text))
        video = args.video or sample_video(settings)
        if not video.is_file():
            raise DemoError(f"VIDEO={video} is not a file")
        video_id, playback = asyncio.run(
            run_job(settings, video, video.stat().st_size, args.user))
        print_urls(settings, video_id, playback)
    except (SettingsError, devstack.StackError, ClientError, DemoError) as exc:
        console.print(f"[red]demo failed: {exc}[/red]")
        return 1
    if not args.exit_after_urls:
        wait_for_interrupt()
        devstack.down(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
