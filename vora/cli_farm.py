"""``vora nodes`` and ``vora capacity``: the farm as control sees it, over gRPC FarmService.

Both are operator commands: they send the service token (``VORA_SERVICE_TOKEN``) because
control answers ListNodes/GetCapacity only to Vora services and operators.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

import grpc
from rich.console import Console
from rich.table import Table

from vora.client import ClientError
from vora.config import Settings
from vora.grpcio import SERVICE_TOKEN_METADATA, insecure_channel
from vora.v1 import farm_pb2, farm_pb2_grpc

RPC_TIMEOUT_SECONDS = 10.0


async def fetch(settings: Settings, include_lost: bool = True
                ) -> tuple[list[farm_pb2.Node], farm_pb2.GetCapacityResponse]:
    metadata = ((SERVICE_TOKEN_METADATA, settings.service_token),)
    async with insecure_channel(settings.control_grpc_target) as channel:
        stub = farm_pb2_grpc.FarmServiceStub(channel)
        try:
            nodes = await stub.ListNodes(farm_pb2.ListNodesRequest(include_lost=include_lost),
                                         metadata=metadata, timeout=RPC_TIMEOUT_SECONDS)
            capacity = await stub.GetCapacity(farm_pb2.GetCapacityRequest(), metadata=metadata,
                                              timeout=RPC_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            raise ClientError(f"control at {settings.control_grpc_target}: "
                              f"{error.code().name}: {error.details()}") from None
    return list(nodes.nodes), capacity


def state_name(node: farm_pb2.Node) -> str:
    return farm_pb2.Node.State.Name(node.state).removeprefix("STATE_")


def _ago(node: farm_pb2.Node, now: datetime) -> str:
    seen = node.last_seen_time.ToDatetime(tzinfo=UTC)
    return f"{max(0, int((now - seen).total_seconds()))} s ago"


def job_status(node: farm_pb2.Node, job: farm_pb2.RunningJob, requeued: set[str]) -> str:
    """A LOST node's job is requeued unless a live node already runs that video again."""
    if node.state != farm_pb2.Node.STATE_LOST:
        return "running"
    return "requeued" if job.video_id in requeued else "running elsewhere"


def nodes_table(nodes: list[farm_pb2.Node], requeued: set[str],
                now: datetime | None = None) -> Table:
    now = now or datetime.now(UTC)
    table = Table(title="Farm nodes")
    for column in ("node", "host", "state", "last seen", "CPU slots", "GPUs", "jobs",
                   "done"):
        table.add_column(column)
    for node in nodes:
        gpus = "\n".join(
            f"#{g.index} {g.model} NVENC {'yes' if g.nvenc_available else 'no'}"
            f" (cap {g.nvenc_session_cap}) enc {g.encoder_utilization}% dec"
            f" {g.decoder_utilization}% mem {g.memory_used_bytes / 1024**3:.1f}/"
            f"{g.memory_total_bytes / 1024**3:.1f} GiB slots {g.slots_busy}/{g.slots_total}"
            for g in node.gpus) or "none (CPU only)"
        jobs = "\n".join(f"{j.video_id} {j.pipeline} {j.percent:.0f}%"
                         f" {job_status(node, j, requeued)}" for j in node.running_jobs) or "-"
        table.add_row(node.node_id, node.hostname, state_name(node), _ago(node, now),
                      f"{node.cpu_slots_busy}/{node.cpu_slots_total}", gpus, jobs,
                      f"{node.jobs_completed} jobs, {node.output_seconds / 60:.1f} min")
    return table


def _drain(seconds: float, backlog: int) -> str:
    if backlog == 0:
        return "empty"
    if seconds < 0:
        return "unknown (no throughput measured yet)"
    return f"{seconds / 60:.1f} min"


def capacity_tables(capacity: farm_pb2.GetCapacityResponse) -> list[Table]:
    slots = Table(title="Farm slots")
    for column in ("kind", "total", "busy", "free"):
        slots.add_column(column, justify="right" if column != "kind" else "left")
    for slot in capacity.slots:
        slots.add_row(slot.kind, str(slot.total), str(slot.busy), str(slot.free))
    summary = Table(title="Queue and throughput")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    for name, value in (
        ("backlog (tasks waiting)", str(capacity.backlog)),
        ("  in Temporal's queue", str(capacity.temporal_backlog)
         if capacity.HasField("temporal_backlog")
         else f"unknown ({capacity.backlog_error or 'Temporal did not answer'})"),
        ("  requeued from lost nodes", str(len(capacity.requeued_jobs))),
        ("jobs per hour", f"{capacity.jobs_per_hour:.1f}"),
        ("output minutes per hour", f"{capacity.output_minutes_per_hour:.1f}"),
        ("time to drain", _drain(capacity.estimated_drain_seconds, capacity.backlog)),
        ("nodes online", str(capacity.nodes_online)),
        ("nodes lost", str(capacity.nodes_lost)),
    ):
        summary.add_row(name, value)
    return [slots, summary]


def cmd_nodes(settings: Settings, args: argparse.Namespace) -> int:
    nodes, capacity = asyncio.run(fetch(settings, include_lost=not args.live))
    if not nodes:
        Console().print("no farm node has registered with control")
        return 0
    Console().print(nodes_table(nodes, {j.video_id for j in capacity.requeued_jobs}))
    return 0


def cmd_capacity(settings: Settings, args: argparse.Namespace) -> int:
    _, capacity = asyncio.run(fetch(settings))
    console = Console()
    for table in capacity_tables(capacity):
        console.print(table)
    return 0


def add_arguments(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    nodes = commands.add_parser("nodes", help="list the farm's nodes, GPUs and jobs (operator)")
    nodes.add_argument("--live", action="store_true", help="hide LOST nodes")
    nodes.set_defaults(handler=cmd_nodes)
    capacity = commands.add_parser("capacity", help="farm slots, backlog, throughput (operator)")
    capacity.set_defaults(handler=cmd_capacity)
