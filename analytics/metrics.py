"""Prometheus metrics of the analytics pipeline.

With several ingest processes (VORA_ANALYTICS_PROCESSES > 1) every process writes its
values to files in PROMETHEUS_MULTIPROC_DIR and /metrics, whichever process answers it,
reports the sum over all of them: counters and histograms add up, and each gauge says
how it combines (livesum: over the processes running now; livemin: the worst of them).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACCEPTED = Counter("vora_analytics_events_accepted_total",
                   "Events accepted by ingest (answered 202).")
REJECTED = Counter("vora_analytics_events_rejected_total",
                   "Events or bodies refused by ingest.", ["reason"])
WRITTEN = Counter("vora_analytics_events_written_total",
                  "Events inserted into ClickHouse, replays included.")
SPOOLED = Counter("vora_analytics_events_spooled_total",
                  "Events written to the disk spool because ClickHouse was down or slow.")
REPLAYED = Counter("vora_analytics_events_replayed_total",
                   "Spooled events later inserted into ClickHouse.")
DROPPED = Counter("vora_analytics_events_dropped_total",
                  "Accepted events lost: spool full (oldest dropped) or unusable.", ["reason"])
BATCH_SIZE = Histogram("vora_analytics_batch_events", "Events per flushed batch.",
                       buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000))
FLUSH_SECONDS = Histogram("vora_analytics_flush_seconds",
                          "Time to write one batch to ClickHouse or the spool.", ["target"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
SPOOL_BATCHES = Gauge("vora_analytics_spool_batches", "Batches waiting in the disk spool.",
                      multiprocess_mode="livesum")
SPOOL_EVENTS = Gauge("vora_analytics_spool_events", "Events waiting in the disk spool.",
                     multiprocess_mode="livesum")
SPOOL_BYTES = Gauge("vora_analytics_spool_bytes", "Bytes used by the disk spool.",
                    multiprocess_mode="livesum")
BUFFERED = Gauge("vora_analytics_buffered_events", "Accepted events held in memory.",
                 multiprocess_mode="livesum")
CLICKHOUSE_UP = Gauge("vora_analytics_clickhouse_up",
                      "1 when the last ClickHouse insert or probe succeeded.",
                      multiprocess_mode="livemin")
