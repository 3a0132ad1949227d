"""Prometheus metrics of the control process (exposed on the REST port at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("control_requests_total", "API requests by API, method and result code",
                   ["api", "method", "code"])
LATENCY = Histogram("control_request_seconds", "API request latency", ["api", "method"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
OUTBOX_DEPTH = Gauge("control_outbox_depth", "Outbox rows not yet sent to Temporal")
RELAY_ERRORS = Counter("control_relay_errors_total", "Outbox relay failures", ["reason"])
RELAY_STARTED = Counter("control_relay_started_total", "Workflows started by the relay",
                        ["kind"])
RELAY_CIRCUIT_OPEN = Gauge("control_relay_circuit_open",
                           "1 while the relay's circuit breaker skips Temporal")
