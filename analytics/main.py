"""Entry point of vora-analytics: ingest on HTTP, the batch writer, the disk spool."""

from __future__ import annotations

import logging
import sys

import structlog
import tornado.web
from prometheus_client import CollectorRegistry, multiprocess

from analytics.handlers import EventsHandler, HealthHandler
from analytics.processes import process_index, supervise
from analytics.sink import ClickHouseSink
from analytics.spool import DiskSpool, adopt_orphans, spool_dirs
from analytics.writer import BatchWriter, WriterPolicy
from vora import service, web
from vora.config import Settings
from vora.logs import configure_logging


def make_writer(settings: Settings, process: int | None = None) -> BatchWriter:
    """The writer of the only ingest process, or of process ``process`` of several."""
    policy = WriterPolicy(
        batch_size=settings.analytics_batch_size,
        flush_seconds=settings.analytics_flush_seconds,
        max_buffer_events=settings.analytics_max_buffer_events,
        insert_timeout_seconds=settings.analytics_insert_timeout_seconds,
    )
    count = settings.analytics_processes
    directory = spool_dirs(settings.spool_dir, count)[process or 0]
    spool = DiskSpool(directory, settings.analytics_spool_max_bytes // count)
    # One connection per insert in flight: ClickHouse stores one batch while the next is
    # encoded.
    sinks = [ClickHouseSink(settings) for _ in range(settings.analytics_insert_connections)]
    return BatchWriter(sinks, spool, policy)


def make_app(settings: Settings, writer: BatchWriter,
             process: int | None = None) -> tornado.web.Application:
    events = {"writer": writer, "max_body_bytes": settings.analytics_max_body_bytes,
              "cors_origins": settings.analytics_cors_origins}
    shared: CollectorRegistry | None = None
    if process is not None:  # every ingest process's values, from their shared files
        shared = CollectorRegistry()
        multiprocess.MultiProcessCollector(shared)  # type: ignore[no-untyped-call]
    health = {"writer": writer, "process": process,
              "processes": settings.analytics_processes, "shared": shared}
    return tornado.web.Application([
        (r"/v1/events", EventsHandler, events),
        (r"/healthz", HealthHandler, health),
        (r"/metrics", web.MetricsHandler, {"registry": shared} if shared else {}),
    ])


# clickhouse-driver serializes rows in Python on the insert threads; a shorter GIL switch
# interval (default 5 ms) lets the IOLoop answer players sooner while a batch is encoded.
GIL_SWITCH_SECONDS = 0.001


async def serve(settings: Settings) -> None:
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    # The driver logs a traceback for every failed connect; while ClickHouse is down the
    # writer retries each second or so and logs the outage once itself.
    logging.getLogger("clickhouse_driver").setLevel(logging.ERROR)
    process = process_index()
    if process is None:
        adopt_orphans(settings.spool_dir, 1)
    else:
        structlog.contextvars.bind_contextvars(process=process)
    writer = make_writer(settings, process)
    writer.start()
    server = web.listen(make_app(settings, writer, process), settings.analytics_host,
                        settings.analytics_port, reuse_port=process is not None)
    await web.serve_until_stopped([server], on_stop=writer.close)


def main() -> None:
    settings = service.load("analytics")
    if settings.analytics_processes > 1 and process_index() is None:
        configure_logging(settings, "analytics")
        raise SystemExit(supervise(settings))
    service.run("analytics", serve)


if __name__ == "__main__":
    main()
