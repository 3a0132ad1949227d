"""HTTP transport of ingest: translate requests into parsed events and the writer's answer.

Players post from other origins (and with navigator.sendBeacon, whose body arrives as
text/plain), so the content type is not enforced and CORS is answered here, preflight
included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import tornado.web
from prometheus_client import CollectorRegistry

from analytics import metrics
from analytics.events import EventError, ParsedBatch, parse_body
from analytics.writer import BatchWriter

CORS_MAX_AGE_SECONDS = 86400
# A body of many tiny bad events must not earn a reply many times its size.
MAX_REASONS_REPORTED = 100


class CorsMixin(tornado.web.RequestHandler):
    cors_origins: Sequence[str] = ()

    def set_cors_headers(self) -> None:
        """Called from prepare: set_default_headers runs before initialize gives us origins."""
        origin = self.request.headers.get("Origin")
        if not origin:
            return
        if "*" in self.cors_origins:
            self.set_header("Access-Control-Allow-Origin", "*")
        elif origin in self.cors_origins:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Vary", "Origin")

    def options(self, *args: str) -> None:
        self.set_header("Access-Control-Allow-Methods", "POST, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Content-Type")
        self.set_header("Access-Control-Max-Age", str(CORS_MAX_AGE_SECONDS))
        self.set_status(204)
        self.finish()


@tornado.web.stream_request_body
class EventsHandler(CorsMixin):
    """POST /v1/events: one event or an array; 202 with what was accepted and refused."""

    def initialize(self, writer: BatchWriter, max_body_bytes: int,
                   cors_origins: Sequence[str]) -> None:
        self.writer = writer
        self.max_body_bytes = max_body_bytes
        self.cors_origins = cors_origins
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False

    def prepare(self) -> None:
        self.set_cors_headers()
        if self.request.method != "POST":
            return
        declared = self.request.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            self._refuse_too_large()  # before reading a byte of the body
            return
        # A chunked body over the limit is read (and discarded) so the client can read its
        # 413; past four times the limit Tornado drops the connection instead.
        self.request.connection.set_max_body_size(4 * self.max_body_bytes)  # type: ignore[union-attr]

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.max_body_bytes:
            self._too_large = True
            self._chunks.clear()  # keep reading to answer 413, but keep nothing
        elif not self._too_large:
            self._chunks.append(chunk)

    def post(self) -> None:
        if self._too_large:
            self._refuse_too_large()
            return
        try:
            parsed = parse_body(b"".join(self._chunks))
        except EventError as exc:
            metrics.REJECTED.labels(reason="invalid_body").inc()
            self._reply(400, {"error": str(exc)})
            return
        self._answer(parsed)

    def _answer(self, parsed: ParsedBatch) -> None:
        rejected = [{"index": r.index, "reason": r.reason}
                    for r in parsed.rejections[:MAX_REASONS_REPORTED]]
        if parsed.rejections:
            metrics.REJECTED.labels(reason="invalid_event").inc(len(parsed.rejections))
        if not len(parsed.events):
            self._reply(400, {"error": "no valid events in the body", "rejected": rejected,
                              "rejected_count": len(parsed.rejections)})
            return
        if not self.writer.accept(parsed.events):
            metrics.REJECTED.labels(reason="overloaded").inc(len(parsed.events))
            self.set_header("Retry-After", "1")
            self._reply(503, {"error": "ingest is overloaded; retry the same events later"})
            return
        # No event ids in the answer: a player retries exactly when it got no answer, so
        # ids assigned here could never make its retries idempotent; ids it sends can.
        self._reply(202, {"accepted": len(parsed.events), "rejected": rejected,
                          "rejected_count": len(parsed.rejections)})

    def _refuse_too_large(self) -> None:
        metrics.REJECTED.labels(reason="body_too_large").inc()
        self._reply(413, {"error": f"the body is larger than {self.max_body_bytes} bytes; "
                                   "send smaller batches"})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(orjson.dumps(body))


class HealthHandler(tornado.web.RequestHandler):
    """200 while ingest works, whatever ClickHouse's state (which the body reports).

    With several ingest processes the one that took the connection answers for itself
    (its buffer, spool and counts, what a load balancer's check is about), and ``all``
    sums every process from the shared metrics files, as /metrics does."""

    def initialize(self, writer: BatchWriter, process: int | None = None,
                   processes: int = 1, shared: CollectorRegistry | None = None) -> None:
        self.writer = writer
        self.process = process
        self.processes = processes
        self.shared = shared

    def get(self) -> None:
        status = self.writer.status()
        body = {"service": "analytics",
                "status": "ok" if status["clickhouse"] == "up" else "degraded",
                "process": self.process or 0, "processes": self.processes, **status}
        if self.shared is not None:
            body["all"] = _summed(self.shared)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(orjson.dumps(body))


def _summed(registry: CollectorRegistry) -> dict[str, Any]:
    """Every ingest process's state, from the metrics they share."""
    values: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
    name = "vora_analytics_{}".format
    return {
        "clickhouse": "up" if values.get(name("clickhouse_up"), 1.0) >= 1 else "down",
        "buffered_events": int(values.get(name("buffered_events"), 0)),
        "spool": {part: int(values.get(name(f"spool_{part}"), 0))
                  for part in ("batches", "events", "bytes")},
        **{f"{kind}_events": int(values.get(name(f"events_{kind}_total"), 0))
           for kind in ("accepted", "written", "spooled", "replayed", "dropped")},
    }
