"""Prometheus metrics of the edge (one set per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BYTES_RECEIVED = Counter("edge_bytes_received_total", "Upload bytes committed to storage")
UPLOADS_STARTED = Counter("edge_uploads_started_total", "Uploads created")
UPLOADS_COMPLETED = Counter("edge_uploads_completed_total", "Uploads whose bytes are all stored")
UPLOADS_FAILED = Counter("edge_uploads_failed_total", "Write requests that failed on the server",
                         ["reason"])
UPLOADS_EXPIRED = Counter("edge_uploads_expired_total", "Unfinished uploads reclaimed by expiry")
UPLOADS_ACTIVE = Gauge("edge_uploads_active", "Requests streaming bytes right now")
CALLBACKS = Counter("edge_callbacks_total", "UploadCompleted calls to control", ["outcome"])
CALLBACK_WAIT_TIMEOUTS = Counter(
    "edge_callback_wait_timeouts_total",
    "Final PATCHes answered before control acknowledged UploadCompleted")
PATCH_SECONDS = Histogram(
    "edge_patch_seconds", "Duration of PATCH requests",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
