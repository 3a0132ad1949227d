"""Entry point of the control worker: workflows and bookkeeping activities on the
control task queue (the Conductor issue fills it in)."""

from __future__ import annotations

import tornado.web

from vora import service, web
from vora.config import Settings


def make_app(settings: Settings) -> tornado.web.Application:
    return tornado.web.Application(web.ops_routes("control-worker"))


async def serve(settings: Settings) -> None:
    server = web.listen(make_app(settings), settings.control_host,
                        settings.control_worker_metrics_port)
    await web.serve_until_stopped([server])


def main() -> None:
    service.run("control-worker", serve)


if __name__ == "__main__":
    main()
