"""The gateway's Prometheus metrics (one process-wide registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# kind: master, playlist, segment, thumbnail, other.
REQUESTS = Counter(
    "vora_gateway_requests_total", "Playback requests answered, by kind and status",
    ["kind", "status"],
)
LATENCY = Histogram(
    "vora_gateway_request_seconds", "Time from request to last byte, by kind", ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5),
)
FIRST_BYTE = Histogram(
    "vora_gateway_first_byte_seconds", "Time from request to response headers, by kind",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1),
)
BYTES_OUT = Counter("vora_gateway_bytes_out_total", "Body bytes sent, by kind", ["kind"])
LOOKUPS = Counter(
    "vora_gateway_video_lookups_total",
    "Video lookups: cached (in-process), fetched (from control) or error", ["result"],
)
TOKEN_REFUSALS = Counter(
    "vora_gateway_token_refusals_total", "Playback tokens refused, by reason class", ["reason"],
)
