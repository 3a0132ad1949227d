"""Upload throughput: Vora's edge vs @tus/server + @tus/s3-store vs boto3 multipart.

``python -m bench.upload [--size-mib 1024] [--rounds 3] [--concurrency 1 4 16]
[--concurrent-mib 64]`` writes a random file, then in each round uploads it over
loopback into the same S3 bucket three ways, alternating the order: tuspy into Vora's
edge, tuspy into the official Node TUS server (installed into bench/node/ by this module
with ``npm install``), and boto3's own multipart upload. Then how throughput grows with
concurrent uploads: N tuspy clients at once (1, 4, 16) each upload a smaller file into
the edge and into the Node server, alternately. It reports MiB/s, the ratios and the
edge's peak RSS, and writes bench/results/upload.json. Run it with the stack of
VORA_ENV_FILE up (it needs its S3 only: it starts its own edge and control sink).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import requests
from boto3.s3.transfer import TransferConfig
from tusclient.client import TusClient

from bench.harness import Figure, Report, alternate, figure, require_stack, save, show, spread
from vora import storage
from vora.config import Settings, load_settings
from vora.tokens import Keyring, UploadClaims, sign_upload
from vora.v1 import upload_pb2, upload_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bench" / "node"
MIB = 1024 * 1024
PART = 8 * MIB
CLIENT_CHUNK = 64 * MIB  # tuspy PATCH size for both TUS servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            requests.options(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


@contextmanager
def control_sink() -> Iterator[int]:
    """Acknowledges UploadCompleted, so the edge's callback does not retry during the run."""

    class Sink(upload_pb2_grpc.UploadCallbackServiceServicer):
        async def UploadCompleted(self, request: Any, context: Any) -> Any:
            return upload_pb2.UploadCompletedResponse()

    port, loop, ready, stop = free_port(), asyncio.new_event_loop(), threading.Event(), None

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        server = grpc.aio.server()
        upload_pb2_grpc.add_UploadCallbackServiceServicer_to_server(
            Sink(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()
        await stop.wait()
        await server.stop(0)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield port
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@contextmanager
def vora_edge(settings: Settings, control_port: int, size: int) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {**os.environ, "VORA_EDGE_PORT": str(port), "VORA_CONTROL_GRPC_PORT": str(control_port),
           "VORA_EDGE_PUBLIC_URL": f"http://127.0.0.1:{port}/files/",
           "VORA_EDGE_MAX_UPLOAD_BYTES": str(size * 2), "VORA_EDGE_PART_BYTES": str(PART),
           "VORA_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "edge.main"], cwd=ROOT, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/files/", process)
        yield f"http://127.0.0.1:{port}/files/", process.pid
    finally:
        process.terminate()
        process.wait(15)


def ensure_node_server() -> None:
    if not (NODE_DIR / "node_modules" / "@tus" / "s3-store").exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)


@contextmanager
def node_server(settings: Settings, size: int) -> Iterator[tuple[str, int]]:
    ensure_node_server()
    port = free_port()
    env = {**os.environ, "PORT": str(port), "PART_BYTES": str(PART), "MAX_SIZE": str(size * 2),
           "BUCKET": settings.bucket_raw, "S3_ENDPOINT": settings.s3_endpoint,
           "S3_REGION": settings.s3_region, "S3_ACCESS_KEY": settings.s3_access_key,
           "S3_SECRET_KEY": settings.s3_secret_key}
    process = subprocess.Popen(["node", "--no-warnings", "server.mjs"], cwd=NODE_DIR, env=env,
                               stdout=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/files", process)
        yield f"http://127.0.0.1:{port}/files", process.pid
    finally:
        process.terminate()
        process.wait(15)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(upload: Callable[[], None], size: int) -> float:
    started = time.perf_counter()
    upload()
    return size / MIB / (time.perf_counter() - started)


def tus_upload(url: str, path: Path, headers: dict[str, str]) -> None:
    with path.open("rb") as stream:
        TusClient(url, headers=headers).uploader(
            file_stream=stream, chunk_size=CLIENT_CHUNK,
            metadata={"filename": "bench.bin"}).upload()


def boto3_upload(settings: Settings, path: Path) -> None:
    client = storage.s3_client(settings)
    key = f"{storage.new_upload_id()}/bench.bin"
    client.upload_file(str(path), settings.bucket_raw, key,
                       Config=TransferConfig(multipart_chunksize=PART, multipart_threshold=PART))
    client.delete_object(Bucket=settings.bucket_raw, Key=key)


def concurrent(upload: Callable[[], None], count: int, size: int) -> Callable[[], float]:
    """``count`` uploads at once; aggregate MiB/s until the last one ends."""
    def once() -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(count) as pool:
            for future in [pool.submit(upload) for _ in range(count)]:
                future.result()
        return count * size / MIB / (time.perf_counter() - started)
    return once


def run(rounds: int = 3, size_mib: int = 1024, concurrency: Sequence[int] = (1, 4, 16),
        concurrent_mib: int = 64) -> Report:
    settings = load_settings()
    require_stack(["s3"])
    size = size_mib * MIB
    token = sign_upload(Keyring.from_settings(settings), UploadClaims(
        subject="bench", max_size=size * 2, expires_at=int(time.time()) + 24 * 3600))
    with tempfile.TemporaryDirectory() as tmp:
        path, small = Path(tmp) / "source.bin", Path(tmp) / "small.bin"
        for target, mib in ((path, size_mib), (small, concurrent_mib)):
            with target.open("wb") as out:
                for _ in range(mib):
                    out.write(os.urandom(MIB))
        with control_sink() as control_port, vora_edge(settings, control_port, size) as (
                edge_url, edge_pid), node_server(settings, size) as (node_url, node_pid):
            idle_rss = peak_rss_mib(edge_pid)
            sides: dict[str, Callable[[], None]] = {
                "vora": lambda: tus_upload(edge_url, path, {"Authorization": f"Bearer {token}"}),
                "tus-node": lambda: tus_upload(node_url, path, {}),
                "boto3": lambda: boto3_upload(settings, path),
            }
            samples: dict[str, list[float]] = {name: [] for name in sides}
            for index in range(rounds):
                order = list(sides)[index % 3:] + list(sides)[: index % 3]
                for name in order:
                    samples[name].append(timed(sides[name], size))
                    print(f"round {index + 1}: {name} {samples[name][-1]:.1f} MiB/s", flush=True)
            rss, node_rss = peak_rss_mib(edge_pid), peak_rss_mib(node_pid)
            crowd = {count: alternate(
                rounds,
                concurrent(lambda: tus_upload(edge_url, small,
                                              {"Authorization": f"Bearer {token}"}),
                           count, concurrent_mib * MIB),
                concurrent(lambda: tus_upload(node_url, small, {}), count,
                           concurrent_mib * MIB)) for count in concurrency}
            crowd_rss = peak_rss_mib(edge_pid)
    figures = [
        figure("upload throughput vs @tus/server", "MiB/s", samples["vora"],
               samples["tus-node"], "@tus/server + @tus/s3-store", goal=">= 1.0x"),
        figure("upload throughput vs boto3 multipart", "MiB/s", samples["vora"],
               samples["boto3"], "boto3 upload_file", goal=">= 0.8x"),
        Figure("server peak RSS", "MiB", rss, node_rss, "@tus/server + @tus/s3-store",
               higher_is_better=False),
        *[figure(f"{count} concurrent {concurrent_mib} MiB uploads, total throughput", "MiB/s",
                 *pair, f"@tus/server + @tus/s3-store, {count} at once", goal=">= 1.0x")
          for count, pair in crowd.items()],
    ]
    single = statistics.median(crowd[min(crowd)][0]) if crowd else 0.0
    notes = [f"{size_mib} MiB random file, {rounds} round(s), part {PART // MIB} MiB, "
             f"edge_parts_in_flight {settings.edge_parts_in_flight}, "
             f"tuspy PATCH {CLIENT_CHUNK // MIB} MiB; loopback into the stack's SeaweedFS",
             f"edge RSS idle {idle_rss:.0f} MiB, peak {rss:.0f} MiB after the uploads "
             f"(growth {rss - idle_rss:.0f} MiB, bounded by parts, not by the file size)",
             f"vora samples {samples['vora']} (spread {spread(samples['vora']):.0%})",
             "median MiB/s: " + ", ".join(
                 f"{k} {statistics.median(v):.1f}" for k, v in samples.items()),
             "concurrent uploads, edge total MiB/s relative to one upload: " + ", ".join(
                 f"N={n}: {statistics.median(p[0]) / single:.2f}x" for n, p in crowd.items())
             + f"; edge peak RSS after them {crowd_rss:.0f} MiB"]
    return Report("upload", figures, notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 16],
                        help="concurrent uploads for the scaling figures (none: skip)")
    parser.add_argument("--concurrent-mib", type=int, default=64,
                        help="size of each concurrent upload")
    args = parser.parse_args()
    report = run(args.rounds, args.size_mib, args.concurrency, args.concurrent_mib)
    show(report)
    print(f"wrote {save(report)}")


if __name__ == "__main__":
    main()
