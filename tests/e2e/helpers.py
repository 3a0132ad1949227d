"""What the end-to-end tests share: tiny synthetic clips, ffprobe, the `vora` CLI as a
subprocess, control's REST API as an app would call it, and a TCP proxy that can be cut."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from vora.config import Settings

REPO = Path(__file__).resolve().parents[2]
VORA = Path(sys.executable).with_name("vora")
READY_TIMEOUT_SECONDS = 120.0


def make_clip(path: Path, width: int, height: int, seconds: float) -> Path:
    """testsrc2 (motion) and a tone: what a camera clip looks like to the farm."""
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(path)],
        check=True, timeout=60)
    return path


def probe_streams(url: str) -> list[dict[str, Any]]:
    """Every stream ffprobe reads from a playback URL (all variants of a master playlist)."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,width,height",
         "-of", "json", url],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"ffprobe could not read {url}: {result.stderr}"
    streams: list[dict[str, Any]] = json.loads(result.stdout)["streams"]
    return streams


def video_heights(url: str) -> set[int]:
    return {int(s["height"]) for s in probe_streams(url) if s["codec_type"] == "video"}


def has_audio(url: str) -> bool:
    return any(s["codec_type"] == "audio" for s in probe_streams(url))


def run_vora(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed `vora` command with this session's environment (VORA_ENV_FILE)."""
    return subprocess.run([str(VORA), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=REPO, env=dict(os.environ))


def rest(settings: Settings, method: str, path: str, token: str,
         body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One call to control's REST facade as an app backend makes it."""
    request = urllib.request.Request(
        f"http://{settings.control_host}:{settings.control_http_port}{path}",
        method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 (loopback)
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_until_done(settings: Settings, token: str, video_id: str) -> dict[str, Any]:
    """Poll GET /v1/videos/{id} until READY or FAILED."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        status, body = rest(settings, "GET", f"/v1/videos/{video_id}", token)
        assert status == 200, body
        video: dict[str, Any] = body["video"]
        if video["state"] in ("READY", "FAILED"):
            return video
        assert time.monotonic() < deadline, f"video {video_id} still {video['state']}"
        time.sleep(0.5)


class CuttableProxy:
    """A TCP proxy in front of ``upstream`` that drops every connection, and refuses new
    ones, once ``cut_after`` bytes went upstream: a network outage mid-upload."""

    def __init__(self, upstream: tuple[str, int], cut_after: int) -> None:
        self.upstream = upstream
        self.cut_after = cut_after
        self.forwarded = 0
        self.cut = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while not self.cut.is_set():
            ready, _, _ = select.select([self._server], [], [], 0.05)
            if not ready:
                continue
            client, _ = self._server.accept()
            thread = threading.Thread(target=self._pipe, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()
        self._server.close()

    def _pipe(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.upstream) as upstream:
            peers = {client: upstream, upstream: client}
            while not self.cut.is_set():
                ready, _, _ = select.select(list(peers), [], [], 0.05)
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is client:
                        data = data[: max(0, self.cut_after - self.forwarded)]
                        self.forwarded += len(data)
                        if self.forwarded >= self.cut_after:
                            self.cut.set()
                    if data:
                        peers[source].sendall(data)

    def close(self) -> None:
        self.cut.set()
        self._accept.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
