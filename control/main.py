"""Entry point of vora-control: the gRPC server, the REST facade and the outbox relay
in one process (``python -m control.main``)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import grpc
import tornado.httpserver

from control import dashboard, grpc_api, rest
from control.auth import Authenticator
from control.capacity import CapacityService, Sampler, SampleStore, TemporalBacklog
from control.errors import ControlError
from control.farm import FarmRegistry
from control.relay import OutboxRelay, TemporalStarter
from control.store import Pool, VideoStore, create_pool
from control.videos import VideoService
from vora import grpcio, service, web
from vora.config import Settings
from vora.logs import get_logger

log = get_logger(__name__)
_HEALTH_TIMEOUT_SECONDS = 2.0
MAX_REST_BODY_BYTES = 64 * 1024  # REST bodies are small JSON objects; media goes to the edge


@dataclass
class Control:
    """The running parts of one control process, for main and for tests."""

    settings: Settings
    pool: Pool
    store: VideoStore
    starter: TemporalStarter
    relay: OutboxRelay
    videos: VideoService
    farm: FarmRegistry
    auth: Authenticator
    capacity: CapacityService
    grpc_server: grpc.aio.Server | None = None
    http_server: tornado.httpserver.HTTPServer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def health(self) -> dict[str, Any]:
        """PostgreSQL decides health; Temporal and the outbox are reported as info."""
        checks: dict[str, str] = {}
        info: dict[str, Any] = {"relay_circuit": "open" if self.relay.breaker.is_open
                                else "closed"}
        try:
            await asyncio.wait_for(self.store.ping(), _HEALTH_TIMEOUT_SECONDS)
            checks["postgres"] = "ok"
            info["outbox_depth"] = await self.store.outbox_depth()
        except (ControlError, TimeoutError) as exc:
            checks["postgres"] = f"failing: {getattr(exc, 'reason', 'timed out')}"
        info["temporal"] = await self._temporal_reachability()
        healthy = all(value == "ok" for value in checks.values())
        return {"service": "control", "status": "ok" if healthy else "failing",
                "checks": checks, "info": info}

    async def _temporal_reachability(self) -> str:
        async def probe() -> None:
            client = await self.starter.client()
            await client.service_client.check_health()

        try:
            await asyncio.wait_for(probe(), _HEALTH_TIMEOUT_SECONDS)
        except TimeoutError:
            return "unreachable: no answer within 2 s"
        except Exception as exc:  # reported as information, never raised
            return f"unreachable: {exc or type(exc).__name__}"
        return "reachable"


async def build(settings: Settings) -> Control:
    pool = create_pool(settings)
    await pool.open(wait=False)  # start even while PostgreSQL is down: answer 503 meanwhile
    store = VideoStore(pool)
    starter = TemporalStarter(settings)
    relay = OutboxRelay(store, starter, settings.outbox_poll_seconds)
    farm = FarmRegistry(settings, store)
    return Control(
        settings=settings, pool=pool, store=store, starter=starter, relay=relay,
        videos=VideoService(settings, store, on_outbox=relay.wake),
        farm=farm, auth=Authenticator(settings),
        capacity=CapacityService(settings, farm, SampleStore(pool),
                                 TemporalBacklog(settings, starter.client)))


async def start(control: Control, *, relay: bool = True) -> None:
    settings = control.settings
    server = grpc.aio.server()
    grpc_api.add_servicers(server, control.videos, control.farm, control.auth,
                           settings.node_heartbeat_seconds, control.capacity)
    health = grpcio.add_health_and_reflection(server, grpc_api.SERVICE_NAMES)
    server.add_insecure_port(settings.control_grpc_target)
    await server.start()
    await grpcio.mark_serving(health, grpc_api.SERVICE_NAMES)
    control.grpc_server = server
    app = rest.make_app(control.videos, control.auth, control.health,
                        extra=dashboard.routes(control.capacity, control.farm, control.auth))
    control.http_server = web.listen(app, settings.control_host, settings.control_http_port,
                                     max_body_size=MAX_REST_BODY_BYTES)
    if relay:
        control.tasks.append(asyncio.create_task(control.relay.run(), name="outbox-relay"))
    control.tasks.append(asyncio.create_task(Sampler(control.capacity).run(),
                                             name="capacity-sampler"))


async def stop(control: Control) -> None:
    for task in control.tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if control.http_server is not None:
        control.http_server.stop()
    if control.grpc_server is not None:
        await control.grpc_server.stop(grace=5)
    await control.pool.close()


async def serve(settings: Settings) -> None:
    control = await build(settings)
    await start(control)
    log.info("control serving", grpc=settings.control_grpc_target,
             http_port=settings.control_http_port)
    assert control.http_server is not None

    async def stop_rest() -> None:
        await stop(control)

    await web.serve_until_stopped([control.http_server], on_stop=stop_rest)


def main() -> None:
    service.run("control", serve)


if __name__ == "__main__":
    main()
