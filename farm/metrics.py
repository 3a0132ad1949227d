"""The farm's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOBS = Counter("vora_farm_jobs_total", "Transcode jobs finished, by pipeline and result",
               ["pipeline", "result"])
JOB_SECONDS = Histogram("vora_farm_job_seconds", "Wall-clock seconds per transcode job",
                        ["pipeline"], buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 2400, 3600,
                                               7200, 14400))
ENCODE_FPS = Histogram("vora_farm_encode_fps", "Average frames per second of finished encodes",
                       ["pipeline"], buckets=(10, 25, 50, 100, 200, 400, 800, 1600))
ENCODE_FPS_NOW = Gauge("vora_farm_encode_fps_current", "FFmpeg's fps of running encodes",
                       ["pipeline"])
SLOTS_IN_USE = Gauge("vora_farm_slots_in_use", "Job slots busy, per GPU uuid or 'cpu'",
                     ["device"])
SLOTS_TOTAL = Gauge("vora_farm_slots_total", "Job slots, per GPU uuid or 'cpu'", ["device"])
GPU_FALLBACKS = Counter("vora_farm_gpu_fallbacks_total",
                        "Jobs that failed on a GPU and were retried on the CPU pipeline")
PUBLISH_RETRIES = Counter("vora_farm_publish_retries_total",
                          "Publish attempts that met an object-store error and were retried")
STORAGE_FAILURES = Counter("vora_farm_storage_failures_total",
                           "Activities failed by an object-store error, by step", ["step"])
