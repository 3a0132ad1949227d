"""Pieces every Tornado service shares: /healthz, /metrics and a graceful run loop."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import tornado.httpserver
import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from vora.logs import get_logger

# A check returns None when healthy, or raises with the reason.
HealthCheck = Callable[[], Awaitable[None]]

log = get_logger(__name__)


class HealthHandler(tornado.web.RequestHandler):
    """200 with each check's result when all pass, 503 naming the failing ones."""

    def initialize(self, service: str, checks: Mapping[str, HealthCheck]) -> None:
        self.service = service
        self.checks = checks

    async def get(self) -> None:
        results: dict[str, str] = {}
        healthy = True
        for name, check in self.checks.items():
            try:
                await asyncio.wait_for(check(), timeout=2.0)
                results[name] = "ok"
            except Exception as exc:  # a failing dependency is reported, never raised
                healthy = False
                results[name] = f"failing: {exc or type(exc).__name__}"
        self.set_status(200 if healthy else 503)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        body = {"service": self.service, "status": "ok" if healthy else "failing",
                "checks": results}
        self.finish(json.dumps(body))


class MetricsHandler(tornado.web.RequestHandler):
    """Prometheus text exposition of the process's registry."""

    def initialize(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.registry))


def ops_routes(
    service: str, checks: Mapping[str, HealthCheck] | None = None
) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The /healthz and /metrics routes for a service's Tornado application."""
    return [
        (r"/healthz", HealthHandler, {"service": service, "checks": dict(checks or {})}),
        (r"/metrics", MetricsHandler, {}),
    ]


async def serve_until_stopped(
    servers: list[tornado.httpserver.HTTPServer],
    on_stop: Callable[[], Awaitable[None]] | None = None,
    grace_seconds: float = 10.0,
) -> None:
    """Wait for SIGTERM or SIGINT, stop accepting, let requests finish, run on_stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping", grace_seconds=grace_seconds)
    started = time.monotonic()
    for server in servers:
        server.stop()
    for server in servers:
        remaining = max(0.1, grace_seconds - (time.monotonic() - started))
        try:
            await asyncio.wait_for(server.close_all_connections(), timeout=remaining)
        except TimeoutError:
            log.warning("connections still open at shutdown")
    if on_stop is not None:
        await on_stop()
    log.info("stopped")


def listen(app: tornado.web.Application, host: str, port: int, *, reuse_port: bool = False,
           **kwargs: Any) -> tornado.httpserver.HTTPServer:
    """Serve ``app``; with ``reuse_port`` (SO_REUSEPORT) several processes may listen on
    the same port and the kernel spreads new connections across them."""
    server = tornado.httpserver.HTTPServer(app, xheaders=True, **kwargs)
    server.listen(port, address=host, reuse_port=reuse_port)
    log.info("listening", url=f"http://{host}:{port}/")
    return server
