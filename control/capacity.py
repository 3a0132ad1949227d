"""Farm capacity: slots by kind, the queue backlog from Temporal, throughput and the time to
drain the backlog, plus the history the dashboard charts.

Layers: ``CapacityService`` (logic) reads the node registry (control.farm.FarmRegistry),
a ``BacklogSource`` (Temporal adapter) and a ``SampleStore`` (PostgreSQL adapter, table
``farm_samples``). ``Sampler`` is the task in the control process that writes one sample
per ``capacity_sample_seconds`` and keeps the Prometheus gauges current.

Throughput comes from the nodes' own counters (jobs_completed, output_seconds since the
node registered): the sum of their increases between consecutive samples over the last
hour. A counter that went down (the node restarted and registered again) counts from 0.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from prometheus_client import Counter, Gauge
from psycopg.types.json import Jsonb
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from control.auth import Caller
from control.errors import ControlError
from control.farm import SLOT_KINDS, Capacity, FarmRegistry, NodeView
from control.store import VideoStore
from vora import jobs
from vora.config import Settings
from vora.logs import get_logger

log = get_logger(__name__)

THROUGHPUT_WINDOW_SECONDS = 3600.0  # "per hour" means over the last hour of samples
CHART_RATE_WINDOW_SECONDS = 300.0  # each chart point: the rate over the 5 minutes before it
SAMPLE_RETENTION = timedelta(days=1)
_TEMPORAL_TIMEOUT_SECONDS = 2.0
_BACKLOG_CACHE_SECONDS = 1.0

SLOTS = Gauge("control_farm_slots", "Farm job slots by kind and state (busy/free/total)",
              ["kind", "state"])
NODES = Gauge("control_farm_nodes", "Registered farm nodes by state", ["state"])
NODES_FORGOTTEN = Counter("control_farm_nodes_forgotten_total",
                          "LOST nodes removed after node_forget_after_seconds of silence")
BACKLOG = Gauge("control_farm_backlog", "Farm tasks waiting (Temporal backlog + requeued)")
JOBS_PER_HOUR = Gauge("control_farm_jobs_per_hour", "Transcodes finished in the last hour")
OUTPUT_MINUTES_PER_HOUR = Gauge("control_farm_output_minutes_per_hour",
                                "Minutes of output transcoded in the last hour")
DRAIN_SECONDS = Gauge("control_farm_drain_seconds",
                      "Estimated seconds to clear the backlog (-1: no throughput yet)")


# --- data -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    taken_at: datetime
    backlog: int | None
    slots: dict[str, list[int]]  # kind -> [total, busy]
    counters: dict[str, list[float]]  # node_id -> [jobs_completed, output_seconds]


@dataclass(frozen=True)
class Rates:
    jobs_per_hour: float
    output_minutes_per_hour: float
    window_seconds: float  # how much history the rates are based on (0: none yet)


@dataclass(frozen=True)
class RequeuedJob:
    video_id: str
    pipeline: str
    lost_node_id: str
    # True while Temporal has not yet timed out the activity (its heartbeat timeout): the
    # job is then not in Temporal's backlog count yet, so control adds it.
    pending_in_temporal: bool


@dataclass
class CapacityReport:
    capacity: Capacity
    temporal_backlog: int | None  # None: Temporal did not answer
    requeued: list[RequeuedJob]
    rates: Rates
    estimated_drain_seconds: float  # -1 when unknown (backlog but no throughput measured)
    temporal_error: str = ""

    @property
    def backlog(self) -> int:
        return (self.temporal_backlog or 0) + sum(j.pending_in_temporal for j in self.requeued)


@dataclass
class History:
    times: list[float] = field(default_factory=list)  # unix seconds
    backlog: list[float | None] = field(default_factory=list)
    busy: dict[str, list[int]] = field(default_factory=dict)
    total: dict[str, list[int]] = field(default_factory=dict)
    jobs_per_hour: list[float | None] = field(default_factory=list)
    output_minutes_per_hour: list[float | None] = field(default_factory=list)


# --- pure logic ------------------------------------------------------------------------------

def counter_increase(before: dict[str, list[float]], after: dict[str, list[float]]
                     ) -> tuple[float, float]:
    """Jobs and output seconds finished between two samples, summed over nodes. A node new
    since ``before`` counts from 0; a counter that went down was reset (re-registration)."""
    jobs_done = output = 0.0
    for node_id, (jobs_now, output_now) in after.items():
        jobs_then, output_then = before.get(node_id, [0.0, 0.0])
        jobs_done += jobs_now - jobs_then if jobs_now >= jobs_then else jobs_now
        output += output_now - output_then if output_now >= output_then else output_now
    return jobs_done, output


def rates(samples: Sequence[Sample]) -> Rates:
    """Throughput over the samples given (oldest first)."""
    if len(samples) < 2:
        return Rates(0.0, 0.0, 0.0)
    span = (samples[-1].taken_at - samples[0].taken_at).total_seconds()
    if span <= 0:
        return Rates(0.0, 0.0, 0.0)
    jobs_done = output = 0.0
    for before, after in itertools.pairwise(samples):
        step_jobs, step_output = counter_increase(before.counters, after.counters)
        jobs_done += step_jobs
        output += step_output
    per_hour = 3600.0 / span
    return Rates(jobs_done * per_hour, output / 60.0 * per_hour, span)


def drain_seconds(backlog: int, rate: Rates) -> float:
    if backlog <= 0:
        return 0.0
    if rate.jobs_per_hour <= 0:
        return -1.0
    return backlog / rate.jobs_per_hour * 3600.0


def requeued_jobs(views: Sequence[NodeView], now: float,
                  temporal_heartbeat_timeout: float) -> list[RequeuedJob]:
    """The jobs a LOST node was running and no live node runs now. Temporal retries each
    after its activity heartbeat timeout, counted from the node's last sign of life."""
    live = {str(job.get("video_id", "")) for view in views if view.state != "LOST"
            for job in view.record.running_jobs}
    result = []
    for view in views:
        if view.state != "LOST":
            continue
        pending = now - view.record.last_seen_at.timestamp() < temporal_heartbeat_timeout
        for job in view.record.running_jobs:
            video_id = str(job.get("video_id", ""))
            if video_id not in live:
                result.append(RequeuedJob(video_id, str(job.get("pipeline", "")),
                                          view.record.node_id, pending))
    return result


def history(samples: Sequence[Sample]) -> History:
    """Chart series: backlog and slots per sample, rates over a trailing 5-minute window."""
    out = History(busy={k: [] for k in SLOT_KINDS}, total={k: [] for k in SLOT_KINDS})
    cumulative: list[tuple[float, float]] = [(0.0, 0.0)]
    for before, after in itertools.pairwise(samples):
        step = counter_increase(before.counters, after.counters)
        last = cumulative[-1]
        cumulative.append((last[0] + step[0], last[1] + step[1]))
    start = 0
    for i, sample in enumerate(samples):
        now = sample.taken_at.timestamp()
        while samples[start].taken_at.timestamp() < now - CHART_RATE_WINDOW_SECONDS:
            start += 1
        out.times.append(now)
        out.backlog.append(sample.backlog)
        for kind in SLOT_KINDS:
            total, busy = sample.slots.get(kind, [0, 0])
            out.total[kind].append(total)
            out.busy[kind].append(busy)
        span = now - samples[start].taken_at.timestamp()
        if span <= 0:
            out.jobs_per_hour.append(None)
            out.output_minutes_per_hour.append(None)
            continue
        jobs_done = cumulative[i][0] - cumulative[start][0]
        output = cumulative[i][1] - cumulative[start][1]
        out.jobs_per_hour.append(round(jobs_done * 3600.0 / span, 3))
        out.output_minutes_per_hour.append(round(output / 60.0 * 3600.0 / span, 3))
    return out


def bucket(now: float, interval: float) -> datetime:
    return datetime.fromtimestamp(math.floor(now / interval) * interval, UTC)


# --- adapters --------------------------------------------------------------------------------

class BacklogSource(Protocol):
    async def backlog(self) -> int: ...


class TemporalBacklog:
    """Approximate backlog of the farm's activity task queue (Temporal >= 1.25 reports
    it with DescribeTaskQueue(report_stats=True); the count is eventually consistent)."""

    def __init__(self, settings: Settings, client: Callable[[], Any]) -> None:
        self.settings = settings
        self._client = client  # async () -> temporalio Client, e.g. TemporalStarter.client
        self._cached: tuple[float, int] | None = None

    async def backlog(self) -> int:
        if self._cached and time.monotonic() - self._cached[0] < _BACKLOG_CACHE_SECONDS:
            return self._cached[1]
        client: Client = await self._client()
        reply = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.settings.temporal_namespace,
                task_queue=TaskQueue(name=jobs.FARM_TASK_QUEUE,
                                     kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, report_stats=True),
            timeout=timedelta(seconds=_TEMPORAL_TIMEOUT_SECONDS))
        count = int(reply.stats.approximate_backlog_count)
        self._cached = (time.monotonic(), count)
        return count


class SampleStore(VideoStore):
    """The farm_samples table, on control's pool."""

    async def add_sample(self, sample: Sample) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO farm_samples (taken_at, backlog, slots, counters)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (taken_at) DO NOTHING",
                (sample.taken_at, sample.backlog, Jsonb(sample.slots), Jsonb(sample.counters)))
            await conn.execute("DELETE FROM farm_samples WHERE taken_at < %s",
                               (sample.taken_at - SAMPLE_RETENTION,))

    async def samples_since(self, since: datetime) -> list[Sample]:
        rows = await self._read("SELECT taken_at, backlog, slots, counters FROM farm_samples"
                                " WHERE taken_at >= %s ORDER BY taken_at", (since,))
        return [Sample(**row) for row in rows]


# --- logic -----------------------------------------------------------------------------------

class CapacityService:
    def __init__(self, settings: Settings, farm: FarmRegistry, samples: SampleStore,
                 backlog: BacklogSource, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.farm = farm
        self.samples = samples
        self.backlog_source = backlog
        self.clock = clock

    async def _temporal_backlog(self) -> tuple[int | None, str]:
        try:
            return await asyncio.wait_for(self.backlog_source.backlog(),
                                          _TEMPORAL_TIMEOUT_SECONDS), ""
        except TimeoutError:
            return None, "Temporal did not answer within 2 s"
        except Exception as exc:  # reported in the answer, never fatal for the API
            return None, f"Temporal unreachable: {exc or type(exc).__name__}"

    async def report(self, caller: Caller) -> CapacityReport:
        views = await self.farm.list_nodes(caller, include_lost=True)
        capacity = await self.farm.capacity(caller)
        temporal_backlog, error = await self._temporal_backlog()
        now = self.clock()
        requeued = requeued_jobs(views, now, float(self.settings.farm_heartbeat_timeout_seconds))
        since = datetime.fromtimestamp(now - THROUGHPUT_WINDOW_SECONDS, UTC)
        rate = rates(await self.samples.samples_since(since))
        report = CapacityReport(capacity, temporal_backlog, requeued, rate, 0.0, error)
        report.estimated_drain_seconds = drain_seconds(report.backlog, rate)
        capacity.backlog = report.backlog
        return report

    async def history(self, caller: Caller, minutes: int) -> History:
        caller.require_service()
        since = datetime.fromtimestamp(self.clock() - minutes * 60.0, UTC)
        return history(await self.samples.samples_since(since))

    async def sample(self, caller: Caller) -> CapacityReport:
        """Take one sample now (the sampler's tick) and update the gauges."""
        NODES_FORGOTTEN.inc(len(await self.farm.forget_silent(caller)))
        report = await self.report(caller)
        views = await self.farm.list_nodes(caller, include_lost=True)
        await self.samples.add_sample(Sample(
            taken_at=bucket(self.clock(), self.settings.capacity_sample_seconds),
            backlog=report.backlog if report.temporal_backlog is not None else None,
            slots={s.kind: [s.total, s.busy] for s in report.capacity.slots},
            counters={v.record.node_id: [v.record.jobs_completed, v.record.output_seconds]
                      for v in views}))
        _set_gauges(report, views)
        return report


def _set_gauges(report: CapacityReport, views: Sequence[NodeView]) -> None:
    for slot in report.capacity.slots:
        SLOTS.labels(slot.kind, "total").set(slot.total)
        SLOTS.labels(slot.kind, "busy").set(slot.busy)
        SLOTS.labels(slot.kind, "free").set(slot.free)
    for state in ("ONLINE", "DRAINING", "LOST"):
        NODES.labels(state).set(sum(v.state == state for v in views))
    BACKLOG.set(report.backlog)
    JOBS_PER_HOUR.set(report.rates.jobs_per_hour)
    OUTPUT_MINUTES_PER_HOUR.set(report.rates.output_minutes_per_hour)
    DRAIN_SECONDS.set(report.estimated_drain_seconds)


class Sampler:
    """Samples the farm every ``capacity_sample_seconds`` until cancelled."""

    def __init__(self, capacity: CapacityService) -> None:
        self.capacity = capacity
        self.caller = Caller(subject="", is_service=True)

    async def run(self) -> None:
        interval = self.capacity.settings.capacity_sample_seconds
        while True:
            try:
                await self.capacity.sample(self.caller)
            except ControlError as exc:  # database down: the next tick retries
                log.warning("capacity sample skipped", reason=exc.reason)
            except Exception:  # a bug must not stop sampling for the process's lifetime
                log.exception("capacity sample failed")
            await asyncio.sleep(interval - time.time() % interval)
