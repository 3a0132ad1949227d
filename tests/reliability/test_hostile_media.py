"""Scenario 9 through the whole path: hostile files uploaded like any app would upload them
(control REST -> edge TUS -> complete-upload -> conductor -> farm) end FAILED, harmlessly."""

from __future__ import annotations

import io
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tusclient.client import TusClient

from tests.e2e.helpers import make_clip, rest, wait_until_done
from vora import storage
from vora.client import mint_user_token
from vora.config import Settings


class Canary:
    """An HTTP server on loopback that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                canary.requests.append(self.path)
                self.send_response(200)
                self.end_headers()

            do_HEAD = do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def canary() -> Iterator[Canary]:
    server = Canary()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    server.thread.join(10)


def _upload_through_vora(settings: Settings, token: str, name: str, body: bytes) -> str:
    """POST /v1/videos, TUS to the edge with the returned upload token, complete-upload."""
    status, created = rest(settings, "POST", "/v1/videos", token,
                           {"title": name, "size_bytes": len(body)})
    assert status == 201, created
    video_id = str(created["video"]["id"])
    client = TusClient(created["upload_url"],
                       headers={"Authorization": f"Bearer {created['upload_token']}"})
    uploader = client.uploader(file_stream=io.BytesIO(body), metadata={"filename": name})
    uploader.upload()
    assert uploader.url is not None
    upload_id = str(uploader.url).rstrip("/").rsplit("/", 1)[-1]
    # As vora.client.complete does: "not complete" (412) is retried briefly. The edge
    # should answer the last PATCH only after control acknowledged the upload, but on a
    # loaded machine CompleteUpload right after it sometimes still gets 412 (reported).
    deadline = time.monotonic() + 10
    while True:
        status, completed = rest(settings, "POST", f"/v1/videos/{video_id}/complete-upload",
                                 token, {"upload_id": upload_id})
        if status != 412 or "not complete" not in str(completed) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200, completed
    return video_id


def test_hls_playlist_and_concat_list_fail_without_touching_network_or_files(
    stack: Settings, canary: Canary, tmp_path: Path,
) -> None:
    """Pass: an uploaded HLS playlist whose segments (and key) point at a loopback canary
    URL, and an uploaded ffconcat list naming a real, readable local clip, both end
    FAILED with a non-empty reason; the canary got zero requests (FFmpeg never followed
    the playlist) and nothing was produced from the local file: not READY, and no
    object at all under either video's output prefix."""
    local_clip = make_clip(tmp_path / "secret.mp4", 160, 120, 1)
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f'#EXT-X-KEY:METHOD=AES-128,URI="{canary.url("/key")}"\n'
        f"#EXTINF:2.0,\n{canary.url('/seg0.ts')}\n"
        f"#EXTINF:2.0,\n{canary.url('/seg1.ts')}\n#EXT-X-ENDLIST\n").encode()
    concat = f"ffconcat version 1.0\nfile '{local_clip}'\nfile '{local_clip}'\n".encode()
    token = mint_user_token(stack, f"reliability-{uuid.uuid4().hex[:8]}")
    videos = {
        "playlist": _upload_through_vora(stack, token, "evil.m3u8", playlist),
        "concat": _upload_through_vora(stack, token, "evil.ffconcat", concat),
    }
    for kind, video_id in videos.items():
        video = wait_until_done(stack, token, video_id)
        assert video["state"] == "FAILED", f"{kind}: {video}"
        reason = str(video["failure_reason"])
        assert reason.strip(), f"{kind}: FAILED without a reason"
        assert "Traceback" not in reason, f"{kind}: {reason}"
        assert str(local_clip) not in reason, f"{kind}: {reason}"
        listed = storage.s3_client(stack).list_objects_v2(
            Bucket=stack.bucket_processed, Prefix=storage.processed_prefix(video_id))
        assert listed.get("KeyCount", 0) == 0, f"{kind}: output exists: {listed['Contents']}"
    assert canary.requests == [], f"FFmpeg contacted the canary: {canary.requests}"


def test_a_truncated_upload_fails_with_a_reason(stack: Settings, tmp_path: Path) -> None:
    """Pass: the first half of an MP4 (its index, written at the end, is cut off) uploaded
    through the whole path ends FAILED with a non-empty reason that names no local path."""
    clip = make_clip(tmp_path / "whole.mp4", 320, 240, 1).read_bytes()
    token = mint_user_token(stack, f"reliability-{uuid.uuid4().hex[:8]}")
    video_id = _upload_through_vora(stack, token, "truncated.mp4", clip[: len(clip) // 2])
    video = wait_until_done(stack, token, video_id)
    assert video["state"] == "FAILED", video
    reason = str(video["failure_reason"])
    assert reason.strip() and "Traceback" not in reason and str(tmp_path) not in reason, reason


def _solid(path: Path, size: str) -> bytes:
    """One tenth of a second of a single colour: a few hundred KiB that decode to huge frames."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"color=size={size}:duration=0.1:rate=10", "-c:v", "libx264",
                    "-preset", "ultrafast", str(path)], check=True, timeout=60)
    return path.read_bytes()


def test_decompression_bomb_and_absurd_dimensions_fail_with_the_limit(
    stack: Settings, tmp_path: Path,
) -> None:
    """Pass: an 8192x8192 H.264 file (~200 KiB that decodes to ~100 MB per frame) and a
    16000x16 one, uploaded through the whole path, both end FAILED with a reason naming
    their dimensions and the largest accepted size."""
    token = mint_user_token(stack, f"reliability-{uuid.uuid4().hex[:8]}")
    videos = {size: _upload_through_vora(stack, token, f"{size}.mp4",
                                         _solid(tmp_path / f"{size}.mp4", size))
              for size in ("8192x8192", "16000x16")}
    for size, video_id in videos.items():
        video = wait_until_done(stack, token, video_id)
        assert video["state"] == "FAILED", f"{size}: {video}"
        reason = str(video["failure_reason"])
        assert size in reason and "largest accepted" in reason, f"{size}: {reason}"
