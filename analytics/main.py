"""Entry point of vora-analytics: ingest on HTTP, the batch writer, the disk spool."""

from __future__ import annotations

import logging
import sys

import tornado.web

from analytics.handlers import EventsHandler, HealthHandler
from analytics.sink import ClickHouseSink
from analytics.spool import DiskSpool
from analytics.writer import BatchWriter, WriterPolicy
from vora import service, web
from vora.config import Settings


def make_writer(settings: Settings) -> BatchWriter:
    policy = WriterPolicy(
        batch_size=settings.analytics_batch_size,
        flush_seconds=settings.analytics_flush_seconds,
        max_buffer_events=settings.analytics_max_buffer_events,
        insert_timeout_seconds=settings.analytics_insert_timeout_seconds,
    )
    spool = DiskSpool(settings.spool_dir, settings.analytics_spool_max_bytes)
    # One connection per insert in flight: ClickHouse stores one batch while the next is
    # encoded.
    sinks = [ClickHouseSink(settings) for _ in range(settings.analytics_insert_connections)]
    return BatchWriter(sinks, spool, policy)


def make_app(settings: Settings, writer: BatchWriter) -> tornado.web.Application:
    events = {"writer": writer, "max_body_bytes": settings.analytics_max_body_bytes,
              "cors_origins": settings.analytics_cors_origins}
    return tornado.web.Application([
        (r"/v1/events", EventsHandler, events),
        (r"/healthz", HealthHandler, {"writer": writer}),
        (r"/metrics", web.MetricsHandler, {}),
    ])


# clickhouse-driver serializes rows in Python on the insert threads; a shorter GIL switch
# interval (default 5 ms) lets the IOLoop answer players sooner while a batch is encoded.
GIL_SWITCH_SECONDS = 0.001


async def serve(settings: Settings) -> None:
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    # The driver logs a traceback for every failed connect; while ClickHouse is down the
    # writer retries each second or so and logs the outage once itself.
    logging.getLogger("clickhouse_driver").setLevel(logging.ERROR)
    writer = make_writer(settings)
    writer.start()
    server = web.listen(make_app(settings, writer), settings.analytics_host,
                        settings.analytics_port)
    await web.serve_until_stopped([server], on_stop=writer.close)


def main() -> None:
    service.run("analytics", serve)


if __name__ == "__main__":
    main()
