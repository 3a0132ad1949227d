"""Entry point of vora-control: the gRPC server and the REST facade in one process."""

from __future__ import annotations

import grpc
import psycopg
import tornado.web

from vora import grpcio, service, web
from vora.config import Settings


def make_app(settings: Settings) -> tornado.web.Application:
    async def database() -> None:
        async with await psycopg.AsyncConnection.connect(settings.pg_conninfo) as conn:
            await conn.execute("SELECT 1")

    return tornado.web.Application(web.ops_routes("control", {"postgres": database}))


async def serve(settings: Settings) -> None:
    server = grpc.aio.server()
    health = grpcio.add_health_and_reflection(server, [])
    server.add_insecure_port(settings.control_grpc_target)
    await server.start()
    await grpcio.mark_serving(health, [])
    http = web.listen(make_app(settings), settings.control_host, settings.control_http_port)

    async def stop_grpc() -> None:
        await server.stop(grace=5)

    await web.serve_until_stopped([http], on_stop=stop_grpc)


def main() -> None:
    service.run("control", serve)


if __name__ == "__main__":
    main()
