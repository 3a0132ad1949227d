"""Entry point of vora-edge: wires settings, S3, the store, control's callback and Tornado."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

import tornado.web

from edge.callback import CompletionNotifier
from edge.handlers import EdgeContext, UploadHandler
from edge.info import UploadInfo
from edge.objects import S3Objects
from edge.store import StoreLimits, UploadStore
from edge.sweeper import run_sweeper
from vora import service, storage, web
from vora.config import Settings
from vora.tokens import Keyring

# Tornado hands bodies over in 64 KiB pieces by default; 1 MiB cuts the per-chunk
# Python overhead (hash update, buffer append, timers) sixteen-fold.
READ_CHUNK_BYTES = 1024 * 1024


@dataclass
class Edge:
    app: tornado.web.Application
    store: UploadStore
    notifier: CompletionNotifier


def build(settings: Settings) -> Edge:
    # Few retries and short timeouts: a client waiting on an S3 outage should get 503
    # within seconds and back off, rather than hold its connection.
    client = storage.s3_client(settings, connect_timeout=3, read_timeout=30, max_attempts=2)
    objects = S3Objects(client, settings.bucket_raw)
    notifier_box: list[CompletionNotifier] = []

    async def on_complete(info: UploadInfo) -> None:
        await notifier_box[0].notify_and_wait(info, settings.edge_callback_wait_seconds)

    limits = StoreLimits(
        max_size=settings.edge_max_upload_bytes, part_bytes=settings.edge_part_bytes,
        expiry_seconds=settings.edge_upload_expiry_seconds,
        lease_seconds=2 * settings.edge_idle_timeout_seconds + 10,
        parts_in_flight=settings.edge_parts_in_flight)
    store = UploadStore(objects, limits, on_complete)
    notifier = CompletionNotifier(settings.control_grpc_target, settings.service_token,
                                  on_ack=store.mark_notified)
    notifier_box.append(notifier)
    context = EdgeContext(
        store=store, keyring=Keyring.from_settings(settings),
        public_url=settings.edge_public_url, max_size=settings.edge_max_upload_bytes,
        max_active=settings.edge_max_concurrent_uploads,
        idle_seconds=settings.edge_idle_timeout_seconds)

    async def s3_check() -> None:
        await objects.list_keys(".healthz/")

    base = urlsplit(settings.edge_public_url).path.rstrip("/") or ""
    routes = [
        *web.ops_routes("edge", {"s3": s3_check}),
        (rf"{base}/?", UploadHandler, {"context": context}),
        (rf"{base}/(?P<upload_id>[^/]+)/?", UploadHandler, {"context": context}),
    ]
    app = tornado.web.Application(routes, cors_origins=tuple(settings.edge_cors_origins))
    return Edge(app, store, notifier)


def make_app(settings: Settings) -> tornado.web.Application:
    return build(settings).app


async def serve(settings: Settings) -> None:
    edge = build(settings)
    # Bodies stream to S3, so Tornado must not cap them at its 100 MB default; each
    # request sets its own limit from the upload's remaining length.
    server = web.listen(edge.app, settings.edge_host, settings.edge_port,
                        max_body_size=settings.edge_max_upload_bytes,
                        idle_connection_timeout=settings.edge_idle_timeout_seconds,
                        chunk_size=READ_CHUNK_BYTES)
    sweeper = asyncio.create_task(run_sweeper(
        edge.store, edge.notifier, settings.edge_sweep_interval_seconds))

    async def stop() -> None:
        sweeper.cancel()
        await edge.notifier.close()

    await web.serve_until_stopped([server], on_stop=stop)


def main() -> None:
    service.run("edge", serve)


if __name__ == "__main__":
    main()
