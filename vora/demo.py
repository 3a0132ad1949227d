"""``make demo``: the whole local stack, a video uploaded, transcoded and playable.

Steps, each saying what failed and where to look when it does: bring the stack up;
take VIDEO (or generate a 1080p clip with motion and audio); upload it through the edge
with a progress bar; complete it; follow transcoding until READY; print the playback,
player and dashboard URLs; keep the stack running until Ctrl-C.
``--exit-after-urls`` (or VORA_DEMO_EXIT=1) stops after printing, for tests;
``--sample-seconds`` (or VORA_DEMO_SAMPLE_SECONDS) shortens the generated clip.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from rich.console import Console

from vora import devstack
from vora.cli_videos import upload_and_complete, watch_until_done
from vora.client import ClientError, UploadJournal, VideoClient, mint_user_token
from vora.config import Settings, SettingsError, load_settings
from vora.jobs import transcode_workflow_id
from vora.v1 import video_pb2

console = Console(soft_wrap=True)  # ids and URLs stay on one line


class DemoError(Exception):
    """A step failed; the message names the step and where to look."""


DEFAULT_SAMPLE_SECONDS = 20


def sample_video(settings: Settings, seconds: int = DEFAULT_SAMPLE_SECONDS) -> Path:
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


def log_file(settings: Settings, component: str) -> Path:
    return settings.home / "logs" / f"{component}.log"


async def run_job(settings: Settings, video: Path, size: int,
                  user: str) -> tuple[str, str]:
    """Upload, complete and wait for READY; returns (video id, playback URL)."""
    journal = UploadJournal(settings.home / "demo" / "uploads.json")
    async with VideoClient(settings, mint_user_token(settings, user)) as client:
        console.print(f"[bold]2/4[/bold] uploading {video.name} through the edge")
        try:
            created = await upload_and_complete(client, video, size,
                                                f"Vora demo: {video.name}",
                                                "uploaded by make demo", journal)
        except ClientError as exc:
            raise DemoError(
                f"uploading failed: {exc}. Check `vora dev status` and "
                f"{log_file(settings, 'edge')} (edge {settings.edge_public_url}) and "
                f"{log_file(settings, 'control')} (control {settings.control_grpc_target}); "
                "run `make demo` again to resume the upload") from None
        console.print(f"[bold]3/4[/bold] transcoding video {created.id}")
        try:
            result = await watch_until_done(client, created.id)
        except ClientError as exc:
            raise DemoError(f"following video {created.id} failed: {exc}. Look at "
                            f"{log_file(settings, 'control')}") from None
        if result.state != video_pb2.Video.STATE_READY:
            raise DemoError(f"transcoding video {created.id} FAILED: "
                            f"{result.failure_reason.rstrip('.')}. "
                            f"Look at {log_file(settings, 'farm')}, "
                            f"{log_file(settings, 'worker')} and the Temporal UI "
                            f"(workflow {transcode_workflow_id(created.id)})")
        return created.id, await client.playback_url(created.id)


def dashboard_url(settings: Settings) -> str | None:
    """Control's dashboard, only when it answers: a URL that 404s helps nobody."""
    url = f"http://{settings.control_host}:{settings.control_http_port}/dashboard"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return url if response.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def print_urls(settings: Settings, video_id: str, playback: str) -> None:
    temporal_host = settings.temporal_address.rsplit(":", 1)[0]
    console.print("[bold]4/4[/bold] ready\n")
    # Plain print() for the URLs: rich would wrap a long signed URL across lines.
    print(f"  video id      {video_id}")
    print(f"  playback URL  {playback}")
    print(f"  player page   {player_url(settings, playback, video_id)}")
    dashboard = dashboard_url(settings)
    if dashboard:
        # The dashboard reads operator data with the service token; on a development
        # stack the URL carries it (the page moves it out of the address bar).
        secret = f"#token={settings.service_token}" if settings.environment == "dev" else ""
        print(f"  dashboard     {dashboard}{secret}")
    print(f"  Temporal UI   http://{temporal_host}:{settings.temporal_ui_port}")
    print(f"\n  try: ffplay '{playback}'   or   vora status {video_id}\n", flush=True)


def wait_for_interrupt() -> None:
    console.print("The stack keeps running; press Ctrl-C to stop it.")
    with contextlib.suppress(KeyboardInterrupt):
        signal.pause()


def sample_seconds(text: str) -> int:
    seconds = int(text)
    if not 1 <= seconds <= 600:
        raise argparse.ArgumentTypeError("the sample is 1 to 600 seconds long")
    return seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vora-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=os.environ.get("VIDEO") or None,
                        help="upload this file instead of a generated clip ($VIDEO)")
    parser.add_argument("--sample-seconds", type=sample_seconds,
                        default=os.environ.get("VORA_DEMO_SAMPLE_SECONDS",
                                               str(DEFAULT_SAMPLE_SECONDS)),
                        help="length of the generated 1080p clip "
                             "($VORA_DEMO_SAMPLE_SECONDS, default %(default)s)")
    parser.add_argument("--user", default="demo")
    parser.add_argument("--exit-after-urls", action="store_true",
                        default=os.environ.get("VORA_DEMO_EXIT") == "1",
                        help="exit after printing the URLs ($VORA_DEMO_EXIT=1)")
    return parser.parse_args(argv)


def start_stack(settings: Settings) -> None:
    console.print("[bold]1/4[/bold] starting the local stack")
    try:
        with console.status("starting") as spinner:
            devstack.up(settings, progress=lambda text: spinner.update(text))
    except devstack.StackError as exc:
        raise DemoError(f"starting the local stack failed: {exc}. Look at "
                        f"{settings.home / 'logs'} and `vora dev status`") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
        start_stack(settings)
        video = args.video or sample_video(settings, args.sample_seconds)
        if not video.is_file():
            raise DemoError(f"VIDEO={video} is not a file")
        video_id, playback = asyncio.run(
            run_job(settings, video, video.stat().st_size, args.user))
        print_urls(settings, video_id, playback)
    except (SettingsError, ClientError, DemoError) as exc:
        console.print(f"[red]demo failed: {exc}[/red]", soft_wrap=True)
        return 1
    if not args.exit_after_urls:
        wait_for_interrupt()
        devstack.down(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
