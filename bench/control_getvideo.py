"""GetVideo over grpc.aio at 64 concurrent callers: Vora's control vs a bare grpc.aio server.

    python -m bench.control_getvideo [--seconds 5] [--rounds 3] [--concurrency 64]

Vora is the real ``python -m control.main`` (JWT check, owner-scoped PostgreSQL read,
protobuf translation) on a throw-away database of the local stack; the reference is a
bare grpc.aio VideoService whose GetVideo returns a constant Video (the floor any
servicer pays for gRPC in Python). Both run as separate processes; the client
alternates between them each round (bench.harness). Prints rps, p50 and p99 for each
and the ratios, and writes bench/results/control_getvideo.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import psycopg
from psycopg import sql

from bench.harness import Report, alternate, figure, require_stack, save, show
from vora.config import Settings, load_settings
from vora.migrate import migrate_postgres
from vora.v1 import video_pb2, video_pb2_grpc


class EchoVideoService(video_pb2_grpc.VideoServiceServicer):
    """The reference: GetVideo answers a constant video, no auth, no database."""

    def __init__(self) -> None:
        self.video = video_pb2.Video(id="00000000-0000-4000-8000-000000000000", owner="bench",
                                     title="bench", state=video_pb2.Video.STATE_READY)

    async def GetVideo(self, request: video_pb2.GetVideoRequest,
                       context: grpc.aio.ServicerContext[Any, Any]) -> video_pb2.GetVideoResponse:
        return video_pb2.GetVideoResponse(video=self.video)


async def serve_echo(port: int) -> None:
    server = grpc.aio.server()
    # Only GetVideo on purpose: the other methods answer UNIMPLEMENTED (the stubs' mypy
    # types call them abstract).
    service = EchoVideoService()  # type: ignore[abstract]
    video_pb2_grpc.add_VideoServiceServicer_to_server(service, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def admin(settings: Settings) -> psycopg.Connection[Any]:
    return psycopg.connect(settings.model_copy(update={"pg_database": "postgres"}).pg_conninfo,
                           autocommit=True)


async def wait_ready(target: str) -> None:
    deadline = time.monotonic() + 30
    async with grpc.aio.insecure_channel(target) as channel:
        while True:
            try:
                await asyncio.wait_for(channel.channel_ready(), 1)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise


async def load(target: str, request: video_pb2.GetVideoRequest,
               metadata: tuple[tuple[str, str], ...], seconds: float,
               concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = video_pb2_grpc.VideoServiceStub(channel)
        await stub.GetVideo(request, metadata=metadata)  # warm the connection
        stop_at = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal errors
            while (started := time.perf_counter()) < stop_at:
                try:
                    await stub.GetVideo(request, metadata=metadata)
                except grpc.aio.AioRpcError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    quantiles = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / elapsed, "p50_ms": quantiles[49] * 1000,
            "p99_ms": quantiles[98] * 1000, "requests": len(latencies), "errors": errors}


@contextmanager
def scratch_database(base: Settings) -> Iterator[Settings]:
    """A throw-away migrated database on the local stack's PostgreSQL."""
    settings = base.model_copy(update={"pg_database": f"vora_bench_{secrets.token_hex(4)}"})
    with admin(base) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.pg_database)))
    try:
        migrate_postgres(settings)
        yield settings
    finally:
        with admin(base) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(settings.pg_database)))


@contextmanager
def servers(settings: Settings) -> Iterator[tuple[str, str]]:
    """``python -m control.main`` and the echo server, each in its own process."""
    grpc_port, echo_port = free_port(), free_port()
    env = {**os.environ, "VORA_CONTROL_GRPC_PORT": str(grpc_port),
           "VORA_CONTROL_HTTP_PORT": str(free_port()), "VORA_LOG_LEVEL": "WARNING",
           "VORA_PG_DATABASE": settings.pg_database}
    processes = [
        subprocess.Popen([sys.executable, "-m", "control.main"], env=env),
        subprocess.Popen([sys.executable, "-m", "bench.control_getvideo",
                          "--echo-server", str(echo_port)]),
    ]
    try:
        yield f"127.0.0.1:{grpc_port}", f"127.0.0.1:{echo_port}"
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)


async def prepare(settings: Settings, vora: str, echo: str) -> tuple[
        video_pb2.GetVideoRequest, tuple[tuple[str, str], ...]]:
    from control.auth import mint_token

    await wait_ready(vora)
    await wait_ready(echo)
    metadata = (("authorization", f"Bearer {mint_token(settings, 'bench-user')}"),)
    async with grpc.aio.insecure_channel(vora) as channel:
        stub = video_pb2_grpc.VideoServiceStub(channel)
        created = await stub.CreateVideo(video_pb2.CreateVideoRequest(title="bench"),
                                         metadata=metadata)
    return video_pb2.GetVideoRequest(video_id=created.video.id), metadata


def run(rounds: int = 3, seconds: float = 5.0, concurrency: int = 64) -> Report:
    """Alternate Vora and the bare server ``rounds`` times; rps, p50 and p99 figures."""
    require_stack(["postgres"])
    loop = asyncio.new_event_loop()
    results: dict[str, list[dict[str, float]]] = {"vora": [], "echo": []}
    try:
        with scratch_database(load_settings()) as settings, servers(settings) as (vora, echo):
            request, metadata = loop.run_until_complete(prepare(settings, vora, echo))

            def side(name: str, target: str) -> Callable[[], float]:
                def once() -> float:
                    result = loop.run_until_complete(
                        load(target, request, metadata, seconds, concurrency))
                    results[name].append(result)
                    print(f"  {name:5s} {result['rps']:8.0f} rps  p50 {result['p50_ms']:6.2f} ms"
                          f"  p99 {result['p99_ms']:6.2f} ms  errors {result['errors']:.0f}")
                    return result["rps"]
                return once

            alternate(rounds, side("vora", vora), side("echo", echo))
    finally:
        loop.close()
    ours, theirs = results["vora"], results["echo"]
    reference = "bare grpc.aio VideoService (constant reply)"

    def pick(key: str, runs: list[dict[str, float]]) -> list[float]:
        return [run[key] for run in runs]

    return Report("control_getvideo", [
        figure(f"GetVideo rps at {concurrency} callers", "req/s", pick("rps", ours),
               pick("rps", theirs), reference),
        figure("GetVideo p50 latency", "ms", pick("p50_ms", ours), pick("p50_ms", theirs),
               reference, higher_is_better=False),
        figure("GetVideo p99 latency", "ms", pick("p99_ms", ours), pick("p99_ms", theirs),
               reference, higher_is_better=False),
    ], notes=[
        "Vora: python -m control.main (JWT check, owner-scoped PostgreSQL read, protobuf) "
        "on a scratch database; reference: a grpc.aio servicer with no auth and no I/O.",
        f"{rounds} alternating rounds of {seconds:g}s each; one grpc.aio client channel per "
        "run in this process, so the client's CPU is part of both figures.",
        f"errors: vora {sum(pick('errors', ours)):.0f}, echo {sum(pick('errors', theirs)):.0f}",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        asyncio.run(serve_echo(args.echo_server))
        return
    report = run(args.rounds, args.seconds, args.concurrency)
    show(report)
    print(f"  written: {save(report)}")


if __name__ == "__main__":
    main()
