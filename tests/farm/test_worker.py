"""The farm against a real Temporal worker, and its control link against a gRPC double."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from farm.activities import FarmActivities, JobBook
from farm.control_link import ControlLink
from farm.objects import S3OutputStore
from farm.probe import probe_file
from farm.progress import TemporalSignaller
from farm.slots import SlotAllocator
from farm.worker import build_worker
from tests.farm.conftest import plan_for
from tests.farm.fake_nvml import FakeGpu, FakeNvml
from tests.farm.progress_workflow import ProgressRecordingWorkflow
from vora import grpcio, jobs
from vora.config import Settings
from vora.v1 import farm_pb2, farm_pb2_grpc


async def test_real_worker_transcodes_and_signals_progress(
        farm_settings: Settings, media: Callable[[str], Path], uploaded: Callable[[Path], str],
        video_id: str) -> None:
    """Production encoder settings (x264 'medium'), a real worker, a real workflow."""
    settings = farm_settings.model_copy(update={"farm_x264_preset": Settings().farm_x264_preset})
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    queue = f"farm-test-{uuid.uuid4()}"
    allocator = SlotAllocator(settings)
    activities = FarmActivities(settings, S3OutputStore(settings), allocator,
                                TemporalSignaller(client))
    source, _ = await probe_file(settings, media("noaudio"))
    plan = plan_for(source, settings)
    farm_worker = build_worker(client, activities, allocator.capacity(), task_queue=queue)
    # The farm's worker runs activities only; the workflow needs a worker of its own.
    workflow_worker = Worker(client, task_queue=queue, workflows=[ProgressRecordingWorkflow])
    async with farm_worker, workflow_worker:
        result, beats = await client.execute_workflow(
            ProgressRecordingWorkflow.run,
            jobs.TranscodeInput(video_id, uploaded(media("noaudio")), plan),
            id=f"farm-test-{video_id}", task_queue=queue,
            execution_timeout=timedelta(seconds=90))
    assert [r.name for r in result.renditions] == ["360p"]
    assert result.renditions[0].codecs.startswith("avc1.4d")  # the planned Main profile
    assert beats and beats[-1].percent == 100.0 and beats[-1].pipeline == "cpu"


class RecordingFarmService(farm_pb2_grpc.FarmServiceServicer):
    """A real FarmService servicer standing in for control's (written concurrently)."""

    def __init__(self) -> None:
        self.registered: list[farm_pb2.RegisterNodeRequest] = []
        self.heartbeats: list[farm_pb2.HeartbeatRequest] = []
        self.tokens: list[str] = []

    async def RegisterNode(self, request, context):
        self.tokens.append(dict(context.invocation_metadata()).get(
            grpcio.SERVICE_TOKEN_METADATA, ""))
        self.registered.append(request)
        return farm_pb2.RegisterNodeResponse(node_id="node-1", heartbeat_interval_seconds=1)

    async def Heartbeat(self, request, context):
        self.tokens.append(dict(context.invocation_metadata()).get(
            grpcio.SERVICE_TOKEN_METADATA, ""))
        self.heartbeats.append(request)
        return farm_pb2.HeartbeatResponse()


async def test_control_link_registers_and_heartbeats_with_the_service_token(
        settings: Settings) -> None:
    from farm import node

    async def has_nvenc(*_: object) -> bool:
        return True

    _, allocator = await node.discover(
        settings, FakeNvml(driver_version="535.183.01",
                           gpus=[FakeGpu("NVIDIA GeForce RTX 4080", "GPU-4080")]), has_nvenc)
    servicer = RecordingFarmService()  # type: ignore[abstract]  # partial fake
    server = grpc.aio.server()
    farm_pb2_grpc.add_FarmServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    link = ControlLink(settings.model_copy(update={"control_grpc_port": port}), allocator,
                       JobBook(), "ffmpeg test")
    task = asyncio.create_task(link.run())
    await asyncio.sleep(1.5)  # control is down: the link retries, never fails
    assert not task.done()
    await server.start()
    try:
        for _ in range(100):
            if servicer.heartbeats:
                break
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop(None)
    node_msg = servicer.registered[0].node
    assert node_msg.ffmpeg_version == "ffmpeg test"
    assert [(g.uuid, g.nvenc_available, g.nvenc_session_cap) for g in node_msg.gpus] == [
        ("GPU-4080", True, 5)]
    assert servicer.heartbeats[0].node_id == "node-1"
    assert set(servicer.tokens) == {settings.service_token}


def test_check_prints_what_the_node_can_do(settings: Settings) -> None:
    out = subprocess.run([sys.executable, "-m", "farm.main", "--check"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert "h264_nvenc" in out and "libx264" in out and "cuda" in out
    assert "gpus: 0" in out and f"cpu slots: {settings.farm_cpu_slots}" in out


def test_the_stack_farm_serves_health_and_metrics(stack: Settings) -> None:
    base = f"http://{stack.farm_host}:{stack.farm_metrics_port}"
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as reply:  # noqa: S310
        assert json.load(reply)["service"] == "farm"
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as reply:  # noqa: S310
        text = reply.read().decode()
    if "vora_farm_slots_total" not in text:
        pytest.fail("the running farm does not export slot metrics; restart it with "
                    "`vora dev stop farm && vora dev start farm`")
    assert 'vora_farm_slots_total{device="cpu"}' in text
