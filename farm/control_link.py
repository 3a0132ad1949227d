"""Registration and heartbeats to control's FarmService (gRPC, service-token metadata).

Control may be down or restarting: every failure is logged and retried with backoff,
and the worker keeps transcoding meanwhile.
"""

from __future__ import annotations

import asyncio
import platform
import socket
from collections.abc import Callable

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from farm.activities import JobBook
from farm.slots import SlotAllocator
from vora import grpcio
from vora.config import Settings
from vora.logs import get_logger
from vora.v1 import farm_pb2, farm_pb2_grpc

log = get_logger(__name__)
MAX_BACKOFF_SECONDS = 30.0
RPC_TIMEOUT_SECONDS = 5.0


def gpu_messages(allocator: SlotAllocator) -> list[farm_pb2.Gpu]:
    messages = []
    for gpu in allocator.gpus.values():
        if not gpu.present:
            continue
        info = gpu.info
        cap = gpu.session_cap if gpu.session_cap is not None else gpu.slots * max(
            1, len(allocator.settings.farm_ladder))
        messages.append(farm_pb2.Gpu(
            index=info.index, uuid=info.uuid, model=info.name,
            memory_total_bytes=info.memory_total, memory_used_bytes=info.memory_used,
            nvenc_available=gpu.nvenc, nvenc_session_cap=cap if gpu.nvenc else 0,
            encoder_utilization=info.encoder_utilization,
            decoder_utilization=info.decoder_utilization,
            nvenc_sessions_running=info.encoder_sessions, slots_total=gpu.slots,
            slots_busy=gpu.jobs))
    return messages


def running_messages(book: JobBook) -> list[farm_pb2.RunningJob]:
    jobs = []
    for job in list(book.running.values()):
        started = Timestamp()
        started.FromDatetime(job.started)
        jobs.append(farm_pb2.RunningJob(video_id=job.video_id, pipeline=job.pipeline,
                                        gpu_uuid=job.gpu_uuid, start_time=started,
                                        percent=job.percent))
    return jobs


class ControlLink:
    def __init__(self, settings: Settings, allocator: SlotAllocator, book: JobBook,
                 ffmpeg_version: str, version: str = "0.1.0",
                 draining: Callable[[], bool] = lambda: False) -> None:
        self.settings = settings
        self.allocator = allocator
        self.book = book
        self.ffmpeg_version = ffmpeg_version
        self.version = version
        self.draining = draining
        self.node_id = ""
        self.registered = False
        self.interval = float(settings.node_heartbeat_seconds)
        self.metadata = ((grpcio.SERVICE_TOKEN_METADATA, settings.service_token),)

    def node(self) -> farm_pb2.Node:
        return farm_pb2.Node(
            node_id=self.node_id, hostname=socket.gethostname(), version=self.version,
            ffmpeg_version=self.ffmpeg_version, gpus=gpu_messages(self.allocator),
            cpu_slots_total=self.allocator.cpu_slots(), cpu_slots_busy=self.allocator.cpu_busy,
            running_jobs=running_messages(self.book), state=farm_pb2.Node.STATE_ONLINE,
            jobs_completed=self.book.completed, output_seconds=self.book.output_seconds)

    def heartbeat_request(self) -> farm_pb2.HeartbeatRequest:
        return farm_pb2.HeartbeatRequest(
            node_id=self.node_id, gpus=gpu_messages(self.allocator),
            cpu_slots_total=self.allocator.cpu_slots(), cpu_slots_busy=self.allocator.cpu_busy,
            running_jobs=running_messages(self.book), draining=self.draining(),
            jobs_completed=self.book.completed, output_seconds=self.book.output_seconds)

    async def run(self) -> None:
        """Register, then heartbeat forever; re-register when control forgets the node."""
        backoff = 1.0
        async with grpcio.insecure_channel(self.settings.control_grpc_target) as channel:
            stub = farm_pb2_grpc.FarmServiceStub(channel)
            while True:
                try:
                    await self.beat(stub)
                    backoff = 1.0
                    await asyncio.sleep(self.interval)
                except grpc.aio.AioRpcError as exc:
                    log.warning("control unreachable; will retry", code=exc.code().name,
                                reason=exc.details(), retry_in=backoff)
                    if exc.code() == grpc.StatusCode.NOT_FOUND:
                        self.registered = False  # forgotten: register again, same id
                    await asyncio.sleep(backoff)
                    backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)

    async def beat(self, stub: farm_pb2_grpc.FarmServiceAsyncStub) -> None:
        if not self.registered:
            reply = await stub.RegisterNode(farm_pb2.RegisterNodeRequest(node=self.node()),
                                            metadata=self.metadata, timeout=RPC_TIMEOUT_SECONDS)
            self.node_id = reply.node_id
            self.registered = True
            if reply.heartbeat_interval_seconds > 0:
                self.interval = float(reply.heartbeat_interval_seconds)
            log.info("registered with control", node_id=self.node_id, host=platform.node())
            return
        await stub.Heartbeat(self.heartbeat_request(), metadata=self.metadata,
                             timeout=RPC_TIMEOUT_SECONDS)
