"""Entry point of vora-edge."""

from __future__ import annotations

import tornado.web

from vora import service, web
from vora.config import Settings


def make_app(settings: Settings) -> tornado.web.Application:
    return tornado.web.Application(web.ops_routes("edge"))


async def serve(settings: Settings) -> None:
    server = web.listen(make_app(settings), settings.edge_host, settings.edge_port)
    await web.serve_until_stopped([server])


def main() -> None:
    service.run("edge", serve)


if __name__ == "__main__":
    main()
