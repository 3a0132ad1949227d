"""The CLI path: `vora upload` cut off mid-upload and run again (it resumes the same
video), `vora status --watch`, and `vora play` whose URL ffprobe reads."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import urllib.request
import uuid
from pathlib import Path

import psycopg

from tests.e2e.helpers import VORA, CuttableProxy, make_clip, rest, run_vora, video_heights
from vora.client import UploadJournal, mint_user_token
from vora.config import Settings

CHUNK = 64 * 1024


def upload_offset(location: str, upload_token: str) -> int:
    request = urllib.request.Request(location, method="HEAD", headers={  # noqa: S310
        "Authorization": f"Bearer {upload_token}", "Tus-Resumable": "1.0.0"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
        return int(response.headers["Upload-Offset"])


def list_videos(settings: Settings, user: str) -> list[dict[str, object]]:
    status, body = rest(settings, "GET", "/v1/videos", mint_user_token(settings, user))
    assert status == 200, body
    videos: list[dict[str, object]] = body["videos"]
    return videos


def test_cli_upload_resumes_after_a_cut_then_status_and_play(stack: Settings,
                                                             tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "cli-720p.mp4", 1280, 720, 3)
    size = clip.stat().st_size
    assert size > 4 * CHUNK, "the clip must span several chunks to be cut in the middle"
    user = f"e2e-cli-{uuid.uuid4().hex[:8]}"
    edge = (stack.edge_host, stack.edge_port)
    proxy = CuttableProxy(edge, cut_after=size // 2)
    first = subprocess.Popen(
        [str(VORA), "upload", str(clip), "--title", "cli e2e", "--user", user,
         "--chunk-size", str(CHUNK), "--edge-url", f"http://127.0.0.1:{proxy.port}/files/"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proxy.cut.wait(timeout=60), "the upload never sent half the file"
    finally:
        first.kill()  # the harshest interruption: no chance to clean up
        first.communicate(timeout=10)
        proxy.close()

    pending = UploadJournal(stack.home / "cli-uploads.json").get(clip)
    assert pending is not None and pending.location, "the journal lost the pending upload"
    offset = upload_offset(pending.location, pending.upload_token)
    assert 0 < offset < size, f"the edge holds {offset} of {size} bytes after the cut"
    [video] = list_videos(stack, user)
    assert (video["id"], video["state"]) == (pending.video_id, "CREATED")

    second = run_vora("upload", str(clip), "--title", "cli e2e", "--user", user,
                      "--chunk-size", str(CHUNK))
    assert second.returncode == 0, second.stderr
    assert f"resuming the upload of {clip.name} for video {pending.video_id}" in second.stderr
    assert second.stdout.strip().splitlines()[-1] == pending.video_id
    assert [v["id"] for v in list_videos(stack, user)] == [pending.video_id]
    assert UploadJournal(stack.home / "cli-uploads.json").get(clip) is None
    # The edge's digest of the stitched upload is the file's: nothing lost or doubled.
    with psycopg.connect(stack.pg_conninfo) as conn:
        row = conn.execute("SELECT size_bytes, sha256 FROM uploads WHERE upload_id = %s",
                           (pending.upload_id,)).fetchone()
    assert row == (size, hashlib.sha256(clip.read_bytes()).hexdigest())

    status = run_vora("status", pending.video_id, "--watch", "--user", user)
    assert status.returncode == 0, status.stderr
    assert f"video {pending.video_id} is READY" in status.stderr
    assert "READY" in status.stdout

    play = run_vora("play", pending.video_id, "--user", user)
    assert play.returncode == 0, play.stderr
    url = play.stdout.strip()
    assert url.startswith(f"{stack.playback_public_url}/v1/play/")
    assert url.endswith(f"/{pending.video_id}/master.m3u8")
    assert video_heights(url) == {720, 360}


def test_cli_upload_says_the_edge_is_down_and_keeps_the_video(stack: Settings,
                                                              tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "tiny.mp4", 320, 180, 1)
    user = f"e2e-cli-{uuid.uuid4().hex[:8]}"
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed = probe.getsockname()[1]  # nothing listens here once the probe is closed
    dead_edge = f"http://127.0.0.1:{closed}/files/"
    failed = run_vora("upload", str(clip), "--user", user, "--edge-url", dead_edge)
    message = " ".join(failed.stderr.split())  # rich wraps long lines on a pipe
    assert failed.returncode == 1, failed.stderr
    assert f"the upload to the edge at {dead_edge} stopped at 0 of" in message
    assert "is the edge running? `vora dev status`" in message
    assert "run the same command again to resume" in message

    pending = UploadJournal(stack.home / "cli-uploads.json").get(clip)
    assert pending is not None, "the journal must keep the video for the next run"
    [video] = list_videos(stack, user)
    assert (video["id"], video["state"]) == (pending.video_id, "CREATED")
    removed = run_vora("rm", pending.video_id, "--user", user)
    assert removed.returncode == 0, removed.stderr
    assert list_videos(stack, user) == []

    again = run_vora("upload", str(clip), "--user", user)
    assert again.returncode == 0, again.stderr
    assert f"video {pending.video_id} of an earlier run is gone" in again.stderr
    [video] = list_videos(stack, user)
    assert video["id"] == again.stdout.strip().splitlines()[-1] != pending.video_id
    assert video["state"] in ("PROCESSING", "READY")
