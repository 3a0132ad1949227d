"""Entry point of the control worker: the Conductor's workflows and control's bookkeeping
activities on the control task queue, with /healthz (Temporal reachable) and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import tornado.web
from prometheus_client import REGISTRY, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector
from temporalio import activity
from temporalio.client import Client
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from control.activities import create_bookkeeping
from control.ladder import TranscodeSettingsActivity
from control.workflows import DeleteVideoWorkflow, TranscodeVideoWorkflow
from vora import jobs, service, web
from vora.config import Settings
from vora.logs import get_logger

log = get_logger(__name__)

# Bookkeeping activities are short transactions: let running ones finish on SIGTERM,
# within the 20 s supervisord (vora dev) gives a program before it kills it.
GRACEFUL_SHUTDOWN = timedelta(seconds=15)
CONNECT_RETRY_SECONDS = 2.0
SDK_METRICS_DRAIN_SECONDS = 10.0

ACTIVITY_SECONDS = Histogram(
    "vora_control_activity_seconds", "Control activities run by this worker, by outcome",
    ["activity", "outcome"], buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30))
TEMPORAL_CONNECTED = Gauge(
    "vora_control_worker_temporal_connected", "1 while the worker holds a Temporal client")


class _TimedActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        started, outcome = time.monotonic(), "error"
        try:
            result = await super().execute_activity(input)
            outcome = "ok"
            return result
        finally:
            ACTIVITY_SECONDS.labels(activity.info().activity_type, outcome).observe(
                time.monotonic() - started)


class ActivityMetrics(Interceptor):
    """Times every activity this worker runs (the workflows themselves are replayed,
    so their metrics would count twice; Temporal's own UI covers them)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TimedActivity(next)


def conductor_worker(client: Client, settings: Settings, task_queue: str,
                     activities: Sequence[Callable[..., Any]]) -> Worker:
    """A worker with both workflows, the settings snapshot and the given activities."""
    return Worker(
        client, task_queue=task_queue,
        workflows=[TranscodeVideoWorkflow, DeleteVideoWorkflow],
        activities=[TranscodeSettingsActivity(settings).load, *activities],
        interceptors=[ActivityMetrics()],
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


Labels = tuple[tuple[str, str], ...]


class SdkMetrics(Collector):
    """The Temporal SDK's own metrics (workflow completions and failures, task latencies,
    pollers, slots) on this process's /metrics. The SDK writes them into a buffer that
    each scrape, and a timer in between, drains. Counters and gauges keep their kind; a
    histogram becomes a summary (``_count`` and ``_sum``, in seconds for durations),
    which is enough for rates and means."""

    def __init__(self) -> None:
        self.buffer = MetricBuffer(100_000, MetricBufferDurationFormat.SECONDS)
        self.runtime = Runtime(telemetry=TelemetryConfig(metrics=self.buffer))
        self._counters: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._gauges: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._summaries: dict[str, dict[Labels, tuple[int, float]]] = defaultdict(dict)
        self._help: dict[str, str] = {}

    def drain(self) -> None:
        for update in self.buffer.retrieve_updates():
            name = update.metric.name
            name = name if name.startswith("temporal_") else f"temporal_{name}"
            labels = tuple(sorted((k, str(v)) for k, v in update.attributes.items()))
            self._help.setdefault(name, update.metric.description or name)
            if update.metric.kind == BUFFERED_METRIC_KIND_GAUGE:
                self._gauges[name][labels] = float(update.value)
            elif update.metric.kind == BUFFERED_METRIC_KIND_COUNTER:
                self._add(name, labels, float(update.value))
            else:
                count, total = self._summaries[name].get(labels, (0, 0.0))
                self._summaries[name][labels] = (count + 1, total + float(update.value))

    def _add(self, name: str, labels: Labels, delta: float) -> None:
        series = self._counters[name]
        series[labels] = series.get(labels, 0.0) + delta

    def collect(self) -> Iterator[Metric]:
        self.drain()
        for kind, table in ((CounterMetricFamily, self._counters),
                            (GaugeMetricFamily, self._gauges)):
            for name, series in table.items():
                keys = sorted({key for labels in series for key, _ in labels})
                family = kind(name, self._help.get(name, name), labels=keys)
                for labels, value in series.items():
                    family.add_metric(_values(labels, keys), value)
                yield family
        for name, summaries in self._summaries.items():
            keys = sorted({key for labels in summaries for key, _ in labels})
            summary = SummaryMetricFamily(name, self._help.get(name, name), labels=keys)
            for labels, (count, total) in summaries.items():
                summary.add_metric(_values(labels, keys), count_value=count, sum_value=total)
            yield summary


def _values(labels: Labels, keys: list[str]) -> list[str]:
    given = dict(labels)
    return [given.get(key, "") for key in keys]


class TemporalLink:
    """The process's Temporal client, once connected (the worker starts during outages)."""

    def __init__(self, settings: Settings, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime
        self.client: Client | None = None
        self.worker_task: asyncio.Task[None] | None = None

    async def connect(self, stopping: asyncio.Event) -> Client | None:
        while not stopping.is_set():
            try:
                self.client = await Client.connect(self.settings.temporal_address,
                                                   namespace=self.settings.temporal_namespace,
                                                   runtime=self.runtime)
                TEMPORAL_CONNECTED.set(1)
                return self.client
            except Exception as exc:  # keep trying: Temporal may start after us
                log.warning("temporal not reachable", address=self.settings.temporal_address,
                            error=str(exc))
                await _sleep_unless(stopping, CONNECT_RETRY_SECONDS)
        return None

    async def check(self) -> None:
        if self.worker_task is not None and self.worker_task.done():
            raise RuntimeError("the Temporal worker stopped")
        if self.client is None:
            raise RuntimeError(f"not connected to Temporal at {self.settings.temporal_address}")
        await self.client.service_client.check_health()


async def _sleep_unless(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)


def make_app(settings: Settings, link: TemporalLink) -> tornado.web.Application:
    return tornado.web.Application(web.ops_routes("control-worker", {"temporal": link.check}))


async def run_worker(settings: Settings, link: TemporalLink, stopping: asyncio.Event) -> None:
    """Poll the control task queue until ``stopping`` is set, then drain gracefully."""
    bookkeeping = await create_bookkeeping(settings)
    try:
        client = await link.connect(stopping)
        if client is None:
            return
        worker = conductor_worker(client, settings, jobs.CONTROL_TASK_QUEUE,
                                  bookkeeping.activities())
        log.info("polling", task_queue=jobs.CONTROL_TASK_QUEUE)
        polling = asyncio.create_task(worker.run())
        stop = asyncio.create_task(stopping.wait())
        await asyncio.wait([polling, stop], return_when=asyncio.FIRST_COMPLETED)
        if not polling.done():
            log.info("draining", grace_seconds=GRACEFUL_SHUTDOWN.total_seconds())
            await worker.shutdown()
        stop.cancel()
        await polling  # a fatal worker error surfaces here
    finally:
        await bookkeeping.close()


async def serve(settings: Settings) -> None:
    sdk_metrics = SdkMetrics()
    REGISTRY.register(sdk_metrics)
    link = TemporalLink(settings, sdk_metrics.runtime)
    stopping = asyncio.Event()
    polling = asyncio.create_task(run_worker(settings, link, stopping))
    draining = asyncio.create_task(_drain_every(sdk_metrics, SDK_METRICS_DRAIN_SECONDS))
    # A worker that died must not leave a healthy-looking process behind: stop it all,
    # so the supervisor restarts the process.
    polling.add_done_callback(lambda _: signal.raise_signal(signal.SIGTERM))
    link.worker_task = polling
    server = web.listen(make_app(settings, link), settings.control_host,
                        settings.control_worker_metrics_port)

    async def stop_worker() -> None:
        stopping.set()
        await polling
        draining.cancel()

    await web.serve_until_stopped([server], on_stop=stop_worker)


async def _drain_every(metrics: SdkMetrics, seconds: float) -> None:
    """Keep the SDK's buffer from filling up between scrapes."""
    while True:
        await asyncio.sleep(seconds)
        metrics.drain()


def main() -> None:
    service.run("control-worker", serve)


if __name__ == "__main__":
    main()
