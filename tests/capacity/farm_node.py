"""A farm node speaking the real FarmService gRPC API from the test, for what a CPU-only
test machine cannot make a real worker report: NVIDIA GPUs, a job caught mid-run by a
node loss, and completed-job counters."""

from __future__ import annotations

import uuid

import grpc

from vora.grpcio import SERVICE_TOKEN_METADATA
from vora.v1 import farm_pb2, farm_pb2_grpc

GIB = 1024**3


def l4_gpu(busy: int) -> farm_pb2.Gpu:
    return farm_pb2.Gpu(index=0, uuid="GPU-capacity-test", model="NVIDIA L4",
                        memory_total_bytes=24 * GIB, memory_used_bytes=6 * GIB,
                        nvenc_available=True, nvenc_session_cap=8, encoder_utilization=40,
                        decoder_utilization=15, nvenc_sessions_running=busy, slots_total=2,
                        slots_busy=busy)


class ReportingNode:
    def __init__(self, grpc_target: str, service_token: str, hostname: str) -> None:
        self.channel = grpc.insecure_channel(grpc_target)
        self.stub = farm_pb2_grpc.FarmServiceStub(self.channel)
        self.metadata = ((SERVICE_TOKEN_METADATA, service_token),)
        self.hostname = hostname
        self.node_id = ""

    def register(self, gpus: list[farm_pb2.Gpu], jobs: list[farm_pb2.RunningJob],
                 cpu_slots: int = 0) -> str:
        reply = self.stub.RegisterNode(farm_pb2.RegisterNodeRequest(node=farm_pb2.Node(
            hostname=self.hostname, version="test", ffmpeg_version="ffmpeg version test",
            gpus=gpus, cpu_slots_total=cpu_slots, running_jobs=jobs)),
            metadata=self.metadata, timeout=5)
        self.node_id = reply.node_id
        return self.node_id

    def heartbeat(self, gpus: list[farm_pb2.Gpu], jobs: list[farm_pb2.RunningJob],
                  completed: int = 0, output_seconds: float = 0.0, cpu_slots: int = 0) -> None:
        self.stub.Heartbeat(farm_pb2.HeartbeatRequest(
            node_id=self.node_id, gpus=gpus, running_jobs=jobs, cpu_slots_total=cpu_slots,
            jobs_completed=completed, output_seconds=output_seconds),
            metadata=self.metadata, timeout=5)

    def close(self) -> None:
        self.channel.close()


def running_job(pipeline: str = "nvenc") -> farm_pb2.RunningJob:
    return farm_pb2.RunningJob(video_id=str(uuid.uuid4()), pipeline=pipeline,
                               gpu_uuid="GPU-capacity-test", percent=42.0)
