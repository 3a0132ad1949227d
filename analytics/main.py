"""Entry point of vora-analytics."""

from __future__ import annotations

import tornado.web

from vora import service, web
from vora.config import Settings


def make_app(settings: Settings) -> tornado.web.Application:
    return tornado.web.Application(web.ops_routes("analytics"))


async def serve(settings: Settings) -> None:
    server = web.listen(make_app(settings), settings.analytics_host, settings.analytics_port)
    await web.serve_until_stopped([server])


def main() -> None:
    service.run("analytics", serve)


if __name__ == "__main__":
    main()
