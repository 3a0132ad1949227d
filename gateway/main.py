"""Entry point of vora-gateway: signed HLS playback proxied from S3 bucket-processed."""

from __future__ import annotations

import logging
import re

import tornado.web

from gateway.catalog import CachedVideoCatalog, GrpcVideoCatalog, VideoCatalog
from gateway.handlers import (
    MasterHandler,
    NotFoundHandler,
    PlaylistHandler,
    SegmentHandler,
    ThumbnailHandler,
)
from gateway.objects import ObjectStore, S3ObjectStore
from gateway.playback import Playback
from gateway.player import TEMPLATES, player_routes
from vora import service, tokens, web
from vora.config import Settings
from vora.logs import get_logger

_TOKEN = r"([^/]{1,256})"  # noqa: S105 (a URL pattern)
_VIDEO = r"([^/]{1,64})"
_RENDITION = r"([0-9]{3,4}p)"
# Tokens are credentials until they expire: never written to logs.
_TOKEN_IN_PATH = re.compile(r"^/v1/play/[^/]+/")
access_log = get_logger("gateway.access")


def make_app(settings: Settings, catalog: VideoCatalog, store: ObjectStore,
             checks: dict[str, web.HealthCheck] | None = None) -> tornado.web.Application:
    playback = Playback(tokens.Keyring.from_settings(settings), catalog)
    deps = {"playback": playback, "store": store}
    base = rf"/v1/play/{_TOKEN}/{_VIDEO}"
    routes: list[tuple[str, type[tornado.web.RequestHandler], dict[str, object]]] = [
        (rf"{base}/master\.m3u8", MasterHandler, deps),
        (rf"{base}/{_RENDITION}/playlist\.m3u8", PlaylistHandler, deps),
        (rf"{base}/{_RENDITION}/seg_([0-9]{{3,6}})\.ts", SegmentHandler, deps),
        (rf"{base}/thumbnail\.jpg", ThumbnailHandler, deps),
        *player_routes(settings),
        *web.ops_routes("gateway", checks),
    ]
    return tornado.web.Application(
        routes, default_handler_class=NotFoundHandler, default_handler_args=deps,
        log_function=log_request, template_path=str(TEMPLATES),
    )


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Structured access log; successes at DEBUG, since every segment fetch is one."""
    status = handler.get_status()
    level = logging.DEBUG if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if not access_log.isEnabledFor(level):
        return
    path = _TOKEN_IN_PATH.sub("/v1/play/<token>/", handler.request.path)
    access_log.log(level, "request", method=handler.request.method, path=path, status=status,
                   ms=round(handler.request.request_time() * 1000, 2))


async def serve(settings: Settings) -> None:
    grpc_catalog = GrpcVideoCatalog(settings.control_grpc_target, settings.service_token)
    catalog = CachedVideoCatalog(grpc_catalog, settings.gateway_lookup_cache_seconds)
    store = S3ObjectStore(settings)
    # Control being down is not "unhealthy": cached lookups keep playing, and Varnish
    # serves what it holds; the lookup error counter shows it.
    checks: dict[str, web.HealthCheck] = {"s3": store.check}
    app = make_app(settings, catalog, store, checks)
    server = web.listen(app, settings.gateway_host, settings.gateway_port)

    async def close() -> None:
        await store.close()
        await grpc_catalog.close()

    await web.serve_until_stopped([server], on_stop=close)


def main() -> None:
    service.run("gateway", serve)


if __name__ == "__main__":
    main()
