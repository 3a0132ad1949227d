"""Registry, node loss, backlog and throughput against a real control process, real farm
workers, PostgreSQL and Temporal of the stack (fixtures in conftest.py)."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import psycopg
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from tests.capacity.backlog_workflow import QueueFarmTasks
from tests.capacity.conftest import (
    FORGET_AFTER_SECONDS,
    LOST_AFTER_SECONDS,
    NAMESPACE,
    ControlProcess,
    wait_for,
)
from tests.capacity.farm_node import ReportingNode, l4_gpu, running_job
from vora.grpcio import SERVICE_TOKEN_METADATA
from vora.v1 import farm_pb2, farm_pb2_grpc


def slot(capacity: dict[str, Any], kind: str) -> dict[str, int]:
    return next(s for s in capacity["slots"] if s["kind"] == kind)


@pytest.fixture
def reporting_node(control: ControlProcess) -> Iterator[ReportingNode]:
    node = ReportingNode(control.settings.control_grpc_target, control.settings.service_token,
                         f"gpu-box-{secrets.token_hex(3)}")
    yield node
    node.close()


def grpc_farm(control: ControlProcess) -> tuple[grpc.Channel, Any, Any]:
    channel = grpc.insecure_channel(control.settings.control_grpc_target)
    stub = farm_pb2_grpc.FarmServiceStub(channel)
    return channel, stub, ((SERVICE_TOKEN_METADATA, control.settings.service_token),)


def test_a_real_farm_worker_registers_and_heartbeats(control: ControlProcess,
                                                      start_farm: Any) -> None:
    farm = start_farm(cpu_slots=2)
    node = control.node(farm.node_id)
    assert node is not None
    assert node["state"] == "ONLINE"
    assert node["hostname"] == socket.gethostname()
    assert node["gpus"] == []  # no NVIDIA GPU on this machine: a CPU-only node
    assert (node["cpu_slots_total"], node["cpu_slots_busy"]) == (2, 0)
    assert node["ffmpeg_version"].startswith("ffmpeg version")
    assert node["running_jobs"] == []
    first_seen = node["last_seen_time"]
    wait_for(lambda: control.known_node(farm.node_id)["last_seen_time"] > first_seen, 5,
             "the next heartbeat to move last_seen_time")

    # Only this worker is alive (earlier tests' workers are gone or LOST within 3 s).
    cpu = wait_for(lambda: (s := slot(control.api("/v1/farm/capacity"), "cpu"))["total"] == 2
                   and s, LOST_AFTER_SECONDS + 3, "the capacity to be this worker's 2 slots")
    assert (cpu["busy"], cpu["free"]) == (0, 2)

    channel, stub, metadata = grpc_farm(control)
    with channel:
        listed = stub.ListNodes(farm_pb2.ListNodesRequest(), metadata=metadata, timeout=5)
        mine = next(n for n in listed.nodes if n.node_id == farm.node_id)
        assert mine.state == farm_pb2.Node.STATE_ONLINE and mine.cpu_slots_total == 2
        capacity = stub.GetCapacity(farm_pb2.GetCapacityRequest(), metadata=metadata,
                                    timeout=5)
        assert {s.kind: (s.total, s.free) for s in capacity.slots}["cpu"] == (2, 2)
        assert capacity.nodes_online >= 1


def test_a_killed_worker_is_lost_and_its_slots_leave_the_capacity(
        control: ControlProcess, start_farm: Any) -> None:
    farm = start_farm(cpu_slots=3)
    wait_for(lambda: slot(control.api("/v1/farm/capacity"), "cpu")["total"] == 3,
             LOST_AFTER_SECONDS + 3, "the capacity to be this worker's 3 slots")
    farm.process.kill()  # no goodbye: the node just stops heartbeating
    farm.process.wait()
    killed_at = time.monotonic()
    wait_for(lambda: control.known_node(farm.node_id)["state"] == "LOST", LOST_AFTER_SECONDS + 3,
             "the node to be LOST")
    # Not before the configured window (minus one heartbeat interval of slack).
    assert time.monotonic() - killed_at >= LOST_AFTER_SECONDS - 1.5
    capacity = control.api("/v1/farm/capacity")
    assert slot(capacity, "cpu")["total"] == 0
    assert capacity["nodes_lost"] >= 1
    live = control.api("/v1/farm/nodes?include_lost=false")["nodes"]
    assert farm.node_id not in {n["node_id"] for n in live}


def _silence(control: ControlProcess, node_id: str, seconds: float) -> None:
    """Make the node's last heartbeat ``seconds`` old, as if it had been gone that long."""
    with psycopg.connect(control.settings.pg_conninfo, autocommit=True) as conn:
        conn.execute("UPDATE nodes SET last_seen_at = now() - make_interval(secs => %s)"
                     " WHERE node_id = %s", (seconds, node_id))


def test_a_long_lost_node_is_forgotten_and_a_live_one_registers_again_with_its_id(
        control: ControlProcess, start_farm: Any, reporting_node: ReportingNode) -> None:
    """Decommissioned nodes leave the registry after node_forget_after_seconds; a node
    merely LOST stays listed; a worker control forgot comes back under the same id."""
    lost = reporting_node.register([], [], cpu_slots=1)
    _silence(control, lost, LOST_AFTER_SECONDS + 60)
    gone = ReportingNode(control.settings.control_grpc_target, control.settings.service_token,
                         f"retired-{secrets.token_hex(3)}")
    try:
        gone_id = gone.register([], [], cpu_slots=1)
        _silence(control, gone_id, FORGET_AFTER_SECONDS + 60)
        wait_for(lambda: control.node(gone_id) is None, 5, "the retired node to be forgotten")
    finally:
        gone.close()
    assert control.known_node(lost)["state"] == "LOST"
    with urllib.request.urlopen(f"{control.base}/metrics", timeout=5) as reply:  # noqa: S310
        assert "control_farm_nodes_forgotten_total 1.0" in reply.read().decode()

    farm = start_farm(cpu_slots=1)
    _silence(control, farm.node_id, FORGET_AFTER_SECONDS + 60)  # e.g. a long partition
    wait_for(lambda: control.node(farm.node_id) is None, 5, "the worker to be forgotten")
    node = wait_for(lambda: control.node(farm.node_id), 10,
                    "the worker to register again under its id")
    assert node["state"] == "ONLINE"
    assert node["cpu_slots_total"] == 1


def test_a_lost_nodes_jobs_are_shown_requeued_and_counted_in_the_backlog(
        control: ControlProcess, reporting_node: ReportingNode) -> None:
    job = running_job("nvenc")
    node_id = reporting_node.register([l4_gpu(busy=1)], [job])
    node = control.node(node_id)
    assert node is not None and node["state"] == "ONLINE"
    gpu = node["gpus"][0]
    assert gpu["model"] == "NVIDIA L4" and gpu["nvenc_available"] is True
    assert (gpu["nvenc_session_cap"], gpu["encoder_utilization"]) == (8, 40)
    assert gpu["memory_total_bytes"] == 24 * 1024**3
    assert node["running_jobs"][0]["status"] == "running"
    before = control.api("/v1/farm/capacity")
    assert slot(before, "nvenc")["busy"] >= 1

    # The node goes silent: LOST, its job requeued (Temporal retries it after the
    # activity heartbeat timeout; until then control counts it in the backlog itself).
    wait_for(lambda: control.known_node(node_id)["state"] == "LOST", LOST_AFTER_SECONDS + 3,
             "the silent node to be LOST")
    lost = control.node(node_id)
    assert lost is not None
    assert [j["status"] for j in lost["running_jobs"]] == ["requeued"]
    capacity = control.api("/v1/farm/capacity")
    requeued = {j["video_id"]: j for j in capacity["requeued_jobs"]}
    assert requeued[job.video_id]["lost_node_id"] == node_id
    assert requeued[job.video_id]["counted_in_backlog"] is True
    pending = sum(j["counted_in_backlog"] for j in capacity["requeued_jobs"])
    assert capacity["backlog"] == (capacity["temporal_backlog"] or 0) + pending

    # gRPC gives operators the same split, and `vora nodes` marks the job requeued.
    channel, stub, metadata = grpc_farm(control)
    with channel:
        reply = stub.GetCapacity(farm_pb2.GetCapacityRequest(), metadata=metadata, timeout=5)
    grpc_requeued = {j.video_id: j for j in reply.requeued_jobs}
    assert grpc_requeued[job.video_id].lost_node_id == node_id
    assert reply.HasField("temporal_backlog") and reply.backlog_error == ""
    assert reply.backlog == reply.temporal_backlog + sum(
        j.pending_in_temporal for j in reply.requeued_jobs)
    env = {**os.environ, "VORA_CONTROL_GRPC_PORT": str(control.settings.control_grpc_port),
           "COLUMNS": "250"}
    listing = subprocess.run([sys.executable, "-c", "from vora.cli import main; main()",
                              "nodes"], env=env, capture_output=True, text=True, timeout=30,
                             check=True).stdout
    row = next(line for line in listing.splitlines() if job.video_id in line)
    assert "requeued" in row and "elsewhere" not in row


def test_throughput_and_drain_time_follow_the_nodes_counters(
        control: ControlProcess, reporting_node: ReportingNode) -> None:
    reporting_node.register([], [], cpu_slots=1)
    baseline = control.api("/v1/farm/capacity")
    done_before = baseline["jobs_per_hour"] * baseline["rate_window_seconds"] / 3600
    # Four jobs of 30 s of output each, reported over a few sampling ticks.
    for completed in range(5):
        reporting_node.heartbeat([], [], completed=completed, output_seconds=30.0 * completed,
                                 cpu_slots=1)
        time.sleep(0.6)

    def four_more_jobs() -> dict[str, Any] | None:
        capacity = control.api("/v1/farm/capacity")
        done = capacity["jobs_per_hour"] * capacity["rate_window_seconds"] / 3600
        return capacity if round(done - done_before) == 4 else None

    capacity = wait_for(four_more_jobs, 5, "the samples to show 4 more finished jobs")
    window_hours = capacity["rate_window_seconds"] / 3600
    assert capacity["output_minutes_per_hour"] * window_hours == pytest.approx(
        capacity["jobs_per_hour"] * window_hours * 0.5, abs=0.05)  # 30 s per job
    if capacity["backlog"]:
        assert capacity["estimated_drain_seconds"] == pytest.approx(
            capacity["backlog"] / capacity["jobs_per_hour"] * 3600, rel=0.01, abs=0.2)
    series = control.api("/v1/farm/history?minutes=10")
    assert len(series["times"]) >= 3
    assert max(v or 0 for v in series["jobs_per_hour"]) > 0
    assert series["times"] == sorted(series["times"])


async def _queue_and_measure(control: ControlProcess, count: int) -> dict[str, Any]:
    client = await Client.connect(control.settings.temporal_address, namespace=NAMESPACE)
    task_queue = f"capacity-tests-{secrets.token_hex(4)}"
    async with Worker(client, task_queue=task_queue, workflows=[QueueFarmTasks]):
        handle = await client.start_workflow(QueueFarmTasks.run, count,
                                             id=f"capacity-backlog-{secrets.token_hex(4)}",
                                             task_queue=task_queue)
        try:
            deadline = time.monotonic() + 20
            while True:
                capacity: dict[str, Any] = await asyncio.to_thread(control.api,
                                                                   "/v1/farm/capacity")
                if (capacity["temporal_backlog"] or 0) >= count or time.monotonic() > deadline:
                    return capacity
                await asyncio.sleep(0.5)
        finally:
            await handle.terminate(reason="capacity test done")


def test_the_backlog_is_temporals_count_of_waiting_farm_tasks(control: ControlProcess) -> None:
    # No farm worker polls this namespace now, so the tasks wait in the queue.
    capacity = asyncio.run(_queue_and_measure(control, 3))
    assert capacity["temporal_error"] == ""
    assert capacity["temporal_backlog"] >= 3
    assert capacity["backlog"] >= capacity["temporal_backlog"]
    if capacity["jobs_per_hour"] == 0:
        assert capacity["estimated_drain_seconds"] is None  # unknown: nothing finished yet
    else:
        assert capacity["estimated_drain_seconds"] > 0


def test_farm_endpoints_are_for_operators_and_validate_input(control: ControlProcess) -> None:
    status, body = control.get("/v1/farm/capacity")
    assert status == 401
    status, body = control.get("/v1/farm/nodes", {
        "Authorization": f"Bearer {control.user_token()}"})
    assert status == 403 and "service" in body["error"]["message"]
    status, body = control.get("/v1/farm/nodes?include_lost=maybe", control.service_headers)
    assert status == 400 and "include_lost" in body["error"]["message"]
    status, body = control.get("/v1/farm/history?minutes=0", control.service_headers)
    assert status == 400 and "minutes" in body["error"]["message"]
    paths = control.api("/openapi.json")["paths"]
    assert {"/v1/farm/nodes", "/v1/farm/capacity", "/v1/farm/history"} <= set(paths)


def test_metrics_expose_the_farm_gauges(control: ControlProcess, start_farm: Any) -> None:
    start_farm(cpu_slots=2)

    def metrics() -> str:
        with urllib.request.urlopen(control.base + "/metrics", timeout=5) as reply:  # noqa: S310
            return str(reply.read().decode())

    def with_two_cpu_slots() -> str | None:
        text = metrics()
        return text if 'control_farm_slots{kind="cpu",state="total"} 2.0' in text else None

    text = wait_for(with_two_cpu_slots, LOST_AFTER_SECONDS + 4, "the cpu slot gauge")
    assert "control_farm_backlog" in text and "control_farm_jobs_per_hour" in text


def test_cli_prints_nodes_and_capacity_over_grpc(control: ControlProcess,
                                                 start_farm: Any) -> None:
    farm = start_farm(cpu_slots=2)
    env = {**os.environ, "VORA_CONTROL_GRPC_PORT": str(control.settings.control_grpc_port),
           "COLUMNS": "250"}
    vora = [sys.executable, "-c", "from vora.cli import main; main()"]
    nodes = subprocess.run([*vora, "nodes", "--live"], env=env, capture_output=True,
                           text=True, timeout=30, check=True).stdout
    assert farm.node_id in nodes and "ONLINE" in nodes and "none (CPU only)" in nodes
    capacity = subprocess.run([*vora, "capacity"], env=env, capture_output=True, text=True,
                              timeout=30, check=True).stdout
    assert "cpu" in capacity and "jobs per hour" in capacity and "backlog" in capacity
    assert "in Temporal's queue" in capacity and "requeued from lost nodes" in capacity
