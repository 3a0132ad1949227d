"""The capacity arithmetic: counter increases across resets, rates, drain time, requeued
jobs and the chart series (pure functions; the integration tests use the real stack)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from control.capacity import (
    Rates,
    Sample,
    counter_increase,
    drain_seconds,
    history,
    rates,
    requeued_jobs,
)
from control.farm import NodeView
from control.store import NodeRecord

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def sample(seconds: float, counters: dict[str, list[float]], backlog: int | None = 0) -> Sample:
    return Sample(T0 + timedelta(seconds=seconds), backlog, {"cpu": [2, 1]}, counters)


def test_counter_increase_counts_new_nodes_from_zero_and_resets_from_their_value() -> None:
    before = {"a": [10.0, 600.0], "b": [5.0, 300.0]}
    after = {"a": [12.0, 720.0], "b": [1.0, 30.0], "c": [2.0, 60.0]}
    # a: +2 jobs/+120 s; b restarted (counts 1/30 since); c is new (2/60)
    assert counter_increase(before, after) == (5.0, 210.0)


def test_rates_per_hour_over_the_sampled_span() -> None:
    samples = [sample(0, {"a": [0, 0]}), sample(600, {"a": [3, 180]}),
               sample(1200, {"a": [6, 360]})]
    result = rates(samples)
    assert result.window_seconds == 1200
    assert result.jobs_per_hour == 18.0  # 6 jobs in 20 minutes
    assert result.output_minutes_per_hour == 18.0  # 6 minutes of output in 20 minutes


def test_rates_need_two_samples() -> None:
    assert rates([sample(0, {"a": [4, 10]})]) == Rates(0.0, 0.0, 0.0)


def test_drain_time_is_backlog_over_rate_and_unknown_without_throughput() -> None:
    assert drain_seconds(0, Rates(0, 0, 0)) == 0.0
    assert drain_seconds(6, Rates(12.0, 0, 3600)) == 1800.0
    assert drain_seconds(6, Rates(0.0, 0, 3600)) == -1.0


def node(node_id: str, state: str, last_seen: datetime, jobs: list[str]) -> NodeView:
    record = NodeRecord(node_id=node_id, hostname="h", version="", ffmpeg_version="", gpus=[],
                        cpu_slots_total=1, cpu_slots_busy=len(jobs),
                        running_jobs=[{"video_id": v, "pipeline": "cpu"} for v in jobs],
                        draining=False, jobs_completed=0, output_seconds=0.0,
                        registered_at=last_seen, last_seen_at=last_seen)
    return NodeView(record, state)


def test_requeued_jobs_are_a_lost_nodes_jobs_not_running_elsewhere() -> None:
    now = T0.timestamp()
    views = [node("lost-recently", "LOST", T0 - timedelta(seconds=10), ["v1", "v2"]),
             node("lost-long-ago", "LOST", T0 - timedelta(seconds=120), ["v3"]),
             node("alive", "ONLINE", T0, ["v2"])]
    jobs = {j.video_id: j for j in requeued_jobs(views, now, temporal_heartbeat_timeout=30)}
    assert set(jobs) == {"v1", "v3"}  # v2 already runs again on "alive"
    assert jobs["v1"].pending_in_temporal  # Temporal has not timed it out yet: count it
    assert not jobs["v3"].pending_in_temporal  # Temporal's backlog holds it now


def test_history_rates_use_a_trailing_window() -> None:
    samples = [sample(i * 60, {"a": [i, i * 30.0]}) for i in range(11)]  # 1 job a minute
    series = history(samples)
    assert series.times[0] == T0.timestamp()
    assert series.jobs_per_hour[0] is None
    assert series.jobs_per_hour[-1] == 60.0
    assert series.output_minutes_per_hour[-1] == 30.0
    assert series.busy["cpu"] == [1] * 11 and series.total["nvenc"] == [0] * 11
