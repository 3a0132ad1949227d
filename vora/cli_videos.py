"""``vora upload|status|play|ls|rm``: the app's path through Vora from a terminal.

Every command talks to control over gRPC as a user: ``--token`` or ``VORA_USER_TOKEN``,
or, outside production, a development token minted for ``--user``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import grpc
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from vora.client import (
    DEFAULT_CHUNK_SIZE,
    ClientError,
    PendingUpload,
    UploadJournal,
    VideoClient,
    format_states,
    mint_user_token,
    tus_upload,
)
from vora.config import Settings
from vora.v1 import video_pb2

console = Console(stderr=True, soft_wrap=True)  # ids and URLs stay on one line
TERMINAL = (video_pb2.Video.STATE_READY, video_pb2.Video.STATE_FAILED)


def user_token(settings: Settings, args: argparse.Namespace) -> str:
    token = args.token or os.environ.get("VORA_USER_TOKEN", "")
    if token:
        return str(token)
    if settings.environment == "production":
        raise ClientError("pass --token or set VORA_USER_TOKEN (a JWT from your IdP)")
    return mint_user_token(settings, args.user)


def add_arguments(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--token", help="the user's JWT (default: $VORA_USER_TOKEN)")
        sub.add_argument("--user", default="demo",
                         help="outside production, mint a development token for this user")
        return sub

    upload = command("upload", "upload a video (resumable: run again to continue)")
    upload.add_argument("file", type=Path)
    upload.add_argument("--title", default="")
    upload.add_argument("--description", default="")
    upload.add_argument("--wait", action="store_true", help="watch processing until done")
    upload.add_argument("--chunk-size", type=_chunk_size, default=DEFAULT_CHUNK_SIZE,
                        help="bytes per PATCH request (default 8 MiB); a lost chunk is "
                             "sent again on resume")
    upload.add_argument("--edge-url",
                        help="send this run's TUS requests to this endpoint instead of the "
                             "one control returns (e.g. through a proxy)")
    upload.set_defaults(handler=cmd_upload)
    status = command("status", "show a video's state")
    status.add_argument("video_id")
    status.add_argument("--watch", action="store_true", help="follow progress until done")
    status.set_defaults(handler=cmd_status)
    play = command("play", "print a signed playback URL")
    play.add_argument("video_id")
    play.set_defaults(handler=cmd_play)
    command("ls", "list your videos").set_defaults(handler=cmd_ls)
    remove = command("rm", "delete a video")
    remove.add_argument("video_id")
    remove.set_defaults(handler=cmd_rm)


def _chunk_size(text: str) -> int:
    size = int(text)
    if not 64 * 1024 <= size <= 1024**3:
        raise argparse.ArgumentTypeError("the chunk size is 64 KiB to 1 GiB")
    return size


def byte_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=console)


async def upload_and_complete(client: VideoClient, file: Path, size: int, title: str,
                              description: str, journal: UploadJournal,
                              chunk_size: int = DEFAULT_CHUNK_SIZE,
                              edge_url: str | None = None) -> video_pb2.Video:
    """Create the video (or resume its pending upload), upload with a progress bar,
    and complete it. An interrupted run leaves the journal entry for the next one."""
    pending = journal.get(file)
    if pending is not None:
        earlier = await _earlier_video(client, pending)
        if earlier is not None and earlier.state != video_pb2.Video.STATE_CREATED:
            journal.forget(file)  # completed by a run that stopped before forgetting it
            return earlier
        if earlier is None:
            console.print(f"video {pending.video_id} of an earlier run is gone; "
                          "starting a new upload")
            journal.forget(file)
            pending = None
    if pending is None:
        created = await client.create(title, description, size)
        pending = PendingUpload(created.video.id, created.upload_url, created.upload_token)
        journal.put(file, pending)
    else:
        console.print(f"resuming the upload of {file.name} for video {pending.video_id}")
    with byte_progress() as bar:
        task = bar.add_task(f"uploading {file.name}", total=size)
        upload_id = await asyncio.to_thread(
            tus_upload, file, pending, journal,
            lambda done, total: bar.update(task, completed=done, total=total), chunk_size,
            None, edge_url)
    video = await client.complete(pending.video_id, upload_id)
    journal.forget(file)
    return video


async def _earlier_video(client: VideoClient,
                         pending: PendingUpload) -> video_pb2.Video | None:
    """The journal's video, or None when it was deleted since."""
    try:
        return await client.get(pending.video_id)
    except ClientError as error:
        if error.code == grpc.StatusCode.NOT_FOUND:
            return None
        raise


async def _upload(settings: Settings, args: argparse.Namespace, size: int) -> str:
    journal = UploadJournal(settings.home / "cli-uploads.json")
    async with VideoClient(settings, user_token(settings, args)) as client:
        video = await upload_and_complete(client, args.file, size,
                                          args.title or args.file.stem, args.description,
                                          journal, args.chunk_size, args.edge_url)
        console.print(f"uploaded; video {video.id} is "
                      f"{video_pb2.Video.State.Name(video.state).removeprefix('STATE_')}")
        if args.wait:
            await _watch(client, video.id)
        return str(video.id)


async def watch_until_done(client: VideoClient, video_id: str,
                           interval: float = 1.0) -> video_pb2.Video:
    """Show a progress bar for processing; return the video once READY or FAILED."""
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  console=console) as bar:
        task = bar.add_task("waiting", total=100)
        while True:
            video = await client.get(video_id)
            phase = video.progress.phase or "queued"
            bar.update(task, description=phase, completed=video.progress.percent)
            if video.state in TERMINAL:
                bar.update(task, completed=100 if video.state == video.STATE_READY else None)
                return video
            await asyncio.sleep(interval)


async def _watch(client: VideoClient, video_id: str) -> video_pb2.Video:
    video = await watch_until_done(client, video_id)
    if video.state == video_pb2.Video.STATE_FAILED:
        raise ClientError(f"video {video_id} FAILED: {video.failure_reason}")
    console.print(f"video {video_id} is READY")
    return video


def cmd_upload(settings: Settings, args: argparse.Namespace) -> int:
    file: Path = args.file
    if not file.is_file():
        raise ClientError(f"{file} is not a file")
    print(asyncio.run(_upload(settings, args, file.stat().st_size)))
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        async with VideoClient(settings, user_token(settings, args)) as client:
            video = (await _watch(client, args.video_id) if args.watch
                     else await client.get(args.video_id))
            _print_videos([video])
            return 0 if video.state != video_pb2.Video.STATE_FAILED else 1

    return asyncio.run(run())


def cmd_play(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> str:
        async with VideoClient(settings, user_token(settings, args)) as client:
            return await client.playback_url(args.video_id)

    print(asyncio.run(run()))
    return 0


def cmd_ls(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> list[video_pb2.Video]:
        async with VideoClient(settings, user_token(settings, args)) as client:
            return await client.list()

    _print_videos(asyncio.run(run()))
    return 0


def cmd_rm(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> None:
        async with VideoClient(settings, user_token(settings, args)) as client:
            await client.delete(args.video_id)

    asyncio.run(run())
    console.print(f"video {args.video_id} deleted")
    return 0


def _print_videos(videos: list[video_pb2.Video]) -> None:
    table = Table()
    for column in ("id", "title", "state", "detail"):
        table.add_column(column)
    for row in format_states(videos):
        table.add_row(*row)
    Console().print(table)
