"""Real servers for delivery tests: a tiny control VideoService, the gateway, a varnishd.

The VideoService servicer is a real grpc.aio implementation of the interface the
gateway calls (GetVideo with the service token); control's own is being written in
parallel, so the tests serve the READY videos they produced themselves.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from tests.gateway.media import Ladder, ready_video, upload_ladder
from tests.varnish.vcl import write_vcl
from vora import devstack, storage
from vora.config import Settings
from vora.grpcio import SERVICE_TOKEN_METADATA
from vora.v1 import video_pb2, video_pb2_grpc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 20, process: subprocess.Popen[Any] | None = None,
              log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            detail = log.read_text()[-3000:] if log else ""
            raise RuntimeError(f"{url}: the server exited with {process.returncode}\n{detail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s")


class FakeVideoService(video_pb2_grpc.VideoServiceServicer):
    def __init__(self, service_token: str) -> None:
        self.service_token = service_token
        self.videos: dict[str, video_pb2.Video] = {}
        self.calls = 0

    async def GetVideo(self, request: Any, context: Any) -> video_pb2.GetVideoResponse:
        metadata = dict(context.invocation_metadata())
        if metadata.get(SERVICE_TOKEN_METADATA) != self.service_token:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "service token required")
        self.calls += 1
        video = self.videos.get(request.video_id)
        if video is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such video")
        return video_pb2.GetVideoResponse(video=video)


class ControlServer:
    """The fake VideoService on a free port, on its own event loop in a thread."""

    def __init__(self, service: FakeVideoService) -> None:
        self.service = service
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def _start(self) -> None:
        self._server = grpc.aio.server()
        video_pb2_grpc.add_VideoServiceServicer_to_server(
            self.service, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Process:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                          cwd=devstack.REPO_ROOT)

    def wait_ready(self, url: str) -> None:
        """Wait until ``url`` answers 200; stop the process if it never does."""
        try:
            wait_http(url, process=self.popen, log=self.log)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def start_gateway(settings: Settings, control_port: int, workdir: Path) -> tuple[Process, str]:
    port = free_port()
    env = {**os.environ, "VORA_GATEWAY_HOST": "127.0.0.1", "VORA_GATEWAY_PORT": str(port),
           "VORA_CONTROL_HOST": "127.0.0.1", "VORA_CONTROL_GRPC_PORT": str(control_port),
           "VORA_LOG_LEVEL": "WARNING"}
    process = Process([sys.executable, "-m", "gateway.main"], workdir / "gateway.log", env)
    url = f"http://127.0.0.1:{port}"
    process.wait_ready(f"{url}/healthz")
    return process, url


def start_varnish(settings: Settings, gateway_port: int, workdir: Path,
                  **vcl_overrides: Any) -> tuple[Process, str]:
    port, admin = free_port(), free_port()
    vcl = write_vcl(workdir / "vora.vcl",
                    settings.model_copy(update={"gateway_host": "127.0.0.1",
                                                "gateway_port": gateway_port}),
                    **vcl_overrides)
    command = ["/usr/sbin/varnishd", "-F", "-a", f"127.0.0.1:{port}", "-T", f"127.0.0.1:{admin}",
               "-n", str(workdir / "varnish"), "-f", str(vcl), "-s", "malloc,64m"]
    if os.geteuid() == 0:
        command[2:2] = ["-j", "none"]
    process = Process(command, workdir / "varnishd.log")
    url = f"http://127.0.0.1:{port}"
    process.wait_ready(f"{url}/varnish/healthz")
    return process, url


def ensure_s3(settings: Settings) -> None:
    """The stack's S3 (SeaweedFS) with its buckets; starts the infrastructure if needed."""
    try:
        devstack.check_s3(settings)
    except Exception:  # not up yet: bring up what S3 and its bootstrap need
        devstack.up(settings, devstack.INFRA)


@dataclass(frozen=True)
class RunningDelivery:
    video_id: str
    control: FakeVideoService
    gateway_url: str
    varnish_url: str


@contextmanager
def running_delivery(settings: Settings, ladder: Ladder,
                     workdir: Path) -> Iterator[RunningDelivery]:
    """The ladder published as a READY video, with control, gateway and Varnish serving it;
    everything stopped and the objects removed afterwards."""
    video_id = storage.new_video_id()
    keys = upload_ladder(settings, ladder, video_id)
    control = FakeVideoService(settings.service_token)  # type: ignore[abstract]  # partial fake
    control.videos[video_id] = ready_video(video_id, ladder)
    server = ControlServer(control)
    server.start()
    started: list[Process] = []
    try:
        gateway, gateway_url = start_gateway(settings, server.port, workdir)
        started.append(gateway)
        varnish, varnish_url = start_varnish(settings, int(gateway_url.rsplit(":", 1)[1]),
                                             workdir)
        started.append(varnish)
        yield RunningDelivery(video_id, control, gateway_url, varnish_url)
    finally:
        for process in reversed(started):
            process.stop()
        server.stop()
        storage.s3_client(settings).delete_objects(
            Bucket=settings.bucket_processed, Delete={"Objects": [{"Key": k} for k in keys]})
