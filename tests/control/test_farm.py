"""FarmService over a real grpc.aio channel: registration, heartbeats, node listing and
the capacity summed from heartbeats."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable

import grpc
import pytest

from control.main import Control
from tests.control.conftest import User
from vora.v1 import farm_pb2, farm_pb2_grpc

Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
def farm_stub(channel: grpc.aio.Channel) -> farm_pb2_grpc.FarmServiceAsyncStub:
    return farm_pb2_grpc.FarmServiceStub(channel)


def gpu(index: int, nvenc: bool, total: int, busy: int) -> farm_pb2.Gpu:
    return farm_pb2.Gpu(index=index, uuid=f"GPU-{index}", model="NVIDIA H200",
                        nvenc_available=nvenc, nvenc_session_cap=8 if nvenc else 0,
                        slots_total=total, slots_busy=busy)


async def test_register_heartbeat_list_and_capacity(
        farm_stub: farm_pb2_grpc.FarmServiceAsyncStub, service_metadata: Metadata,
        control: Control) -> None:
    before = await farm_stub.GetCapacity(farm_pb2.GetCapacityRequest(),
                                         metadata=service_metadata)
    node_id = f"node-{secrets.token_hex(4)}"
    registered = await farm_stub.RegisterNode(farm_pb2.RegisterNodeRequest(node=farm_pb2.Node(
        node_id=node_id, hostname="gpu-01", version="0.1.0", ffmpeg_version="7.1",
        gpus=[gpu(0, False, 2, 0)], cpu_slots_total=1)), metadata=service_metadata)
    assert registered.node_id == node_id
    assert registered.heartbeat_interval_seconds == control.settings.node_heartbeat_seconds
    await farm_stub.Heartbeat(farm_pb2.HeartbeatRequest(
        node_id=node_id, gpus=[gpu(0, False, 2, 1), gpu(1, True, 3, 2)], cpu_slots_total=2,
        cpu_slots_busy=1, running_jobs=[farm_pb2.RunningJob(video_id="v", pipeline="nvenc",
                                                            gpu_uuid="GPU-1", percent=12.5)],
        jobs_completed=4, output_seconds=40.0), metadata=service_metadata)
    nodes = {n.node_id: n for n in (await farm_stub.ListNodes(
        farm_pb2.ListNodesRequest(), metadata=service_metadata)).nodes}
    node = nodes[node_id]
    assert node.state == farm_pb2.Node.STATE_ONLINE
    assert [g.uuid for g in node.gpus] == ["GPU-0", "GPU-1"]
    assert node.running_jobs[0].percent == 12.5 and node.jobs_completed == 4
    after = await farm_stub.GetCapacity(farm_pb2.GetCapacityRequest(),
                                        metadata=service_metadata)
    grew = {s.kind: (s.total - b.total, s.busy - b.busy, s.free - b.free)
            for s, b in zip(after.slots, before.slots, strict=True)}
    assert grew == {"nvenc": (3, 2, 1), "nvdec": (2, 1, 1), "cpu": (2, 1, 1)}
    assert after.nodes_online == before.nodes_online + 1
    await farm_stub.Heartbeat(farm_pb2.HeartbeatRequest(node_id=node_id, draining=True,
                                                        cpu_slots_total=2, cpu_slots_busy=1),
                              metadata=service_metadata)
    nodes = {n.node_id: n for n in (await farm_stub.ListNodes(
        farm_pb2.ListNodesRequest(), metadata=service_metadata)).nodes}
    assert nodes[node_id].state == farm_pb2.Node.STATE_DRAINING


async def test_a_new_node_without_an_id_is_named_by_control(
        farm_stub: farm_pb2_grpc.FarmServiceAsyncStub, service_metadata: Metadata) -> None:
    node = farm_pb2.Node(hostname="gpu box/7", cpu_slots_total=1)
    first = await farm_stub.RegisterNode(farm_pb2.RegisterNodeRequest(node=node),
                                         metadata=service_metadata)
    second = await farm_stub.RegisterNode(farm_pb2.RegisterNodeRequest(node=node),
                                          metadata=service_metadata)
    assert first.node_id.startswith("gpu-box-7-") and first.node_id != second.node_id
    await farm_stub.Heartbeat(farm_pb2.HeartbeatRequest(node_id=first.node_id,
                                                        cpu_slots_total=1),
                              metadata=service_metadata)


async def test_farm_refuses_unknown_nodes_bad_input_and_users(
        farm_stub: farm_pb2_grpc.FarmServiceAsyncStub, service_metadata: Metadata,
        alice: User) -> None:
    cases: list[tuple[Awaitable[object], grpc.StatusCode]] = [
        (farm_stub.Heartbeat(farm_pb2.HeartbeatRequest(node_id="never-registered"),
                             metadata=service_metadata), grpc.StatusCode.NOT_FOUND),
        (farm_stub.RegisterNode(farm_pb2.RegisterNodeRequest(node=farm_pb2.Node(
            node_id="../x", hostname="h")), metadata=service_metadata),
         grpc.StatusCode.INVALID_ARGUMENT),
        (farm_stub.RegisterNode(farm_pb2.RegisterNodeRequest(node=farm_pb2.Node(
            node_id="n1", hostname="h", cpu_slots_total=-1)), metadata=service_metadata),
         grpc.StatusCode.INVALID_ARGUMENT),
        (farm_stub.ListNodes(farm_pb2.ListNodesRequest(), metadata=alice.metadata),
         grpc.StatusCode.PERMISSION_DENIED),
        (farm_stub.GetCapacity(farm_pb2.GetCapacityRequest()),
         grpc.StatusCode.UNAUTHENTICATED),
    ]
    for call, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == code, caught.value.details()


async def test_a_silent_node_is_lost_and_offers_no_slots(control: Control,
                                                         service_metadata: Metadata) -> None:
    from control.auth import Caller
    from control.farm import FarmRegistry

    service = Caller("", is_service=True)
    node_id = f"node-{secrets.token_hex(4)}"
    await control.farm.register(service, {"node_id": node_id, "hostname": "h",
                                          "cpu_slots_total": 4})
    later = time.time() + control.settings.node_lost_after_seconds + 1
    future = FarmRegistry(control.settings, control.store, clock=lambda: later)
    assert node_id not in {v.record.node_id for v in await future.list_nodes(service, False)}
    lost = {v.record.node_id: v.state for v in await future.list_nodes(service, True)}
    assert lost[node_id] == "LOST"
    capacity = await future.capacity(service)
    assert capacity.nodes_online == 0 and capacity.nodes_lost >= 1
    assert sum(slot.total for slot in capacity.slots) == 0
