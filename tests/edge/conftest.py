"""Fixtures for the edge: a real edge process on a free port, real S3, a recording control.

Control's UploadCallbackService is being written in parallel, so the tests run a tiny
grpc.aio servicer of the same interface that records each call.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
import requests

from vora import storage
from vora.config import Settings
from vora.grpcio import SERVICE_TOKEN_METADATA
from vora.tokens import Keyring, UploadClaims, sign_upload
from vora.v1 import upload_pb2, upload_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
PART = 5 * 1024 * 1024  # S3's minimum part size, so a few MiB exercise parts and tails


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Control:
    """Records UploadCompleted calls; can refuse the first ``fail_first`` of them."""

    port: int
    calls: list[tuple[upload_pb2.UploadCompletedRequest, str]] = field(default_factory=list)
    fail_first: int = 0

    def wait_for(self, upload_id: str, timeout: float = 15) -> upload_pb2.UploadCompletedRequest:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for request, _ in self.calls:
                if request.upload_id == upload_id:
                    return request
            time.sleep(0.05)
        raise AssertionError(f"control never got UploadCompleted for {upload_id}")


class _Servicer(upload_pb2_grpc.UploadCallbackServiceServicer):
    def __init__(self, control: Control, token: str) -> None:
        self.control = control
        self.token = token

    async def UploadCompleted(self, request: Any, context: Any) -> Any:
        sent = dict(context.invocation_metadata()).get(SERVICE_TOKEN_METADATA, "")
        if sent != self.token:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad service token")
        if self.control.fail_first > 0:
            self.control.fail_first -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "control is starting")
        self.control.calls.append((request, sent))
        return upload_pb2.UploadCompletedResponse()


@pytest.fixture(scope="session")
def control(stack: Settings) -> Iterator[Control]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    control = Control(port=free_port())
    stop = asyncio.Event()

    async def serve() -> None:
        server = grpc.aio.server()
        upload_pb2_grpc.add_UploadCallbackServiceServicer_to_server(
            _Servicer(control, stack.service_token), server)
        server.add_insecure_port(f"127.0.0.1:{control.port}")
        await server.start()
        ready.set()
        await stop.wait()
        await server.stop(0)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield control
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


@dataclass
class EdgeProcess:
    url: str  # the collection URL, e.g. http://127.0.0.1:PORT/files/
    base: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(5)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_edge(settings: Settings, control: Control, tmp: Path, port: int | None = None,
               healthy: bool = True, **overrides: str) -> EdgeProcess:
    """Start ``python -m edge.main``; wait until /healthz answers (200 unless not ``healthy``)."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ,
           "VORA_EDGE_PORT": str(port), "VORA_EDGE_PUBLIC_URL": f"{base}/files/",
           "VORA_CONTROL_GRPC_PORT": str(control.port), "VORA_EDGE_PART_BYTES": str(PART),
           "VORA_EDGE_MAX_UPLOAD_BYTES": str(64 * 1024 * 1024), **overrides}
    log_path = tmp / f"edge-{port}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "edge.main"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    edge = EdgeProcess(f"{base}/files/", base, process, log_path, env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"edge exited: {edge.logs()}")
        try:
            status = requests.get(f"{base}/healthz", timeout=5).status_code
            if status == 200 or not healthy:
                return edge
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    edge.stop()
    raise AssertionError(f"edge did not become healthy: {edge.logs()}")


@pytest.fixture(scope="session")
def edge(stack: Settings, control: Control,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    process = start_edge(stack, control, tmp_path_factory.mktemp("edge"))
    yield process
    process.stop()


@pytest.fixture
def edge_factory(stack: Settings, control: Control,
                 tmp_path: Path) -> Iterator[Callable[..., EdgeProcess]]:
    started: list[EdgeProcess] = []

    def factory(port: int | None = None, healthy: bool = True, **overrides: str) -> EdgeProcess:
        process = start_edge(stack, control, tmp_path, port=port, healthy=healthy, **overrides)
        started.append(process)
        return process

    yield factory
    for process in started:
        process.stop()


def make_token(settings: Settings, subject: str = "alice", max_size: int = 64 * 1024 * 1024,
               ttl: int = 600) -> str:
    claims = UploadClaims(subject=subject, max_size=max_size, expires_at=int(time.time()) + ttl)
    return sign_upload(Keyring.from_settings(settings), claims)


@pytest.fixture(scope="session")
def token(stack: Settings) -> str:
    return make_token(stack)


def tus_headers(token: str, **extra: str) -> dict[str, str]:
    headers = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"}
    headers.update({name.replace("_", "-"): value for name, value in extra.items()})
    return headers


def create(edge: EdgeProcess, token: str, length: int | None = None, **extra: str) -> str:
    """Create an upload; return its URL."""
    headers = tus_headers(token, **extra)
    if length is None:
        headers.setdefault("Upload-Defer-Length", "1")
    else:
        headers["Upload-Length"] = str(length)
    response = requests.post(edge.url, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.headers["Location"])


def patch(url: str, token: str, offset: int, body: bytes,
          **extra: str) -> requests.Response:
    headers = tus_headers(token, Content_Type="application/offset+octet-stream",
                          Upload_Offset=str(offset), **extra)
    return requests.patch(url, headers=headers, data=body, timeout=30)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def upload_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


@pytest.fixture(scope="session")
def s3(stack: Settings) -> Any:
    return storage.s3_client(stack)


def stored_object(s3: Any, settings: Settings, url: str) -> bytes:
    key = storage.raw_original_key(upload_id(url))
    return bytes(s3.get_object(Bucket=settings.bucket_raw, Key=key)["Body"].read())


def multipart_uploads(s3: Any, settings: Settings, url: str) -> list[Any]:
    prefix = storage.raw_prefix(upload_id(url))
    response = s3.list_multipart_uploads(Bucket=settings.bucket_raw, Prefix=prefix)
    return list(response.get("Uploads", []))


def stored_keys(s3: Any, settings: Settings, url: str) -> list[str]:
    prefix = storage.raw_prefix(upload_id(url))
    response = s3.list_objects_v2(Bucket=settings.bucket_raw, Prefix=prefix)
    return [item["Key"] for item in response.get("Contents", [])]


def open_patch(url: str, token: str, offset: int, body: bytes, declared: int) -> socket.socket:
    """Start a PATCH that promises ``declared`` bytes and sends only ``body``; the caller
    decides when (or whether) the connection ends."""
    parts = urlsplit(url)
    head = (f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\nContent-Length: {declared}\r\n\r\n").encode()
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10)
    sock.sendall(head + body)
    return sock


def wait_offset(url: str, token: str, at_least: int, timeout: float = 10) -> int:
    """HEAD until the committed offset reaches ``at_least`` (commits after a cut are async)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = requests.head(url, headers=tus_headers(token), timeout=10)
        offset = int(response.headers["Upload-Offset"])
        if offset >= at_least:
            return offset
        time.sleep(0.1)
    raise AssertionError(f"offset stayed below {at_least}")


def wait_for_lease(s3: Any, settings: Settings, url: str, timeout: float = 10) -> None:
    """Block until a request holds the upload's write lease, i.e. its body is streaming."""
    key = f"{upload_id(url)}/.lock"
    deadline = time.monotonic() + timeout
    while key not in stored_keys(s3, settings, url):
        assert time.monotonic() < deadline, "no request took the upload's lease"
        time.sleep(0.05)
    time.sleep(0.3)  # let the first chunks reach the writer
