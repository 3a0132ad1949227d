"""gRPC transport: VideoService, UploadCallbackService and FarmService servicers.

Each method authenticates from metadata, translates the request into a call on the
logic (videos.VideoService, farm.FarmRegistry) and the result back into protobuf.
ControlError becomes its status code with the reason; anything else is INTERNAL
with a generic message (the details go to the log, never to the caller).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from control import metrics
from control.auth import Authenticator, Caller
from control.capacity import CapacityReport, CapacityService
from control.errors import ControlError
from control.farm import FarmRegistry, NodeView
from control.store import VideoRecord
from control.videos import VideoService
from vora.grpcio import SERVICE_TOKEN_METADATA
from vora.logs import get_logger
from vora.v1 import farm_pb2, farm_pb2_grpc, upload_pb2, upload_pb2_grpc, video_pb2, video_pb2_grpc

log = get_logger(__name__)
Req = TypeVar("Req")
Resp = TypeVar("Resp")
# Our servicers take any request/response pair; the generated stubs fix each method's.
Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Req, Context], Awaitable[Resp]]

_RENDITION_FIELDS = frozenset(video_pb2.Rendition.DESCRIPTOR.fields_by_name)


def rpc(method: Handler[Req, Resp]) -> Handler[Req, Resp]:
    """Map errors to status codes and record the request in the metrics."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Req, context: Context) -> Resp:
        started, code = time.perf_counter(), "OK"
        try:
            return await method(self, request, context)
        except ControlError as exc:
            code = exc.grpc_code
            await context.abort(grpc.StatusCode[code], exc.reason)
        except Exception:
            code = "INTERNAL"
            log.exception("unexpected error", method=method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; it has been logged")
        finally:
            metrics.REQUESTS.labels("grpc", method.__name__, code).inc()
            metrics.LATENCY.labels("grpc", method.__name__).observe(
                time.perf_counter() - started)
        raise AssertionError("unreachable: abort raises")

    return wrapper


def caller_of(auth: Authenticator, context: Context) -> Caller:
    metadata = {key: value for key, value in (context.invocation_metadata() or ())
                if isinstance(value, str)}
    return auth.authenticate(metadata.get("authorization"), metadata.get(SERVICE_TOKEN_METADATA))


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def video_message(video: VideoRecord) -> video_pb2.Video:
    created, updated = Timestamp(), Timestamp()
    created.FromDatetime(video.created_at)
    updated.FromDatetime(video.updated_at)
    return video_pb2.Video(
        id=video.id, owner=video.owner, title=video.title, description=video.description,
        state=f"STATE_{video.state.value}",
        failure_reason=video.failure_reason,
        progress=video_pb2.Progress(phase=video.progress_phase,
                                    percent=video.progress_percent),
        renditions=[video_pb2.Rendition(**{k: v for k, v in r.items() if k in _RENDITION_FIELDS})
                    for r in video.renditions],
        duration_seconds=video.duration_seconds, manifest_key=video.manifest_key,
        thumbnail_key=video.thumbnail_key, create_time=created, update_time=updated,
        upload_id=video.upload_id,
    )


class VideoServicer(video_pb2_grpc.VideoServiceServicer):
    def __init__(self, videos: VideoService, auth: Authenticator) -> None:
        self.videos = videos
        self.auth = auth

    @rpc
    async def CreateVideo(self, request: video_pb2.CreateVideoRequest,
                          context: Context) -> video_pb2.CreateVideoResponse:
        created = await self.videos.create_video(caller_of(self.auth, context), request.title,
                                                 request.description, request.size_bytes)
        return video_pb2.CreateVideoResponse(
            video=video_message(created.video), upload_url=created.upload_url,
            upload_token=created.upload_token,
            upload_token_expire_time=_timestamp(created.upload_token_expires_at))

    @rpc
    async def GetVideo(self, request: video_pb2.GetVideoRequest,
                       context: Context) -> video_pb2.GetVideoResponse:
        video = await self.videos.get_video(caller_of(self.auth, context), request.video_id)
        return video_pb2.GetVideoResponse(video=video_message(video))

    @rpc
    async def ListVideos(self, request: video_pb2.ListVideosRequest,
                         context: Context) -> video_pb2.ListVideosResponse:
        page = await self.videos.list_videos(caller_of(self.auth, context), request.page_size,
                                             request.page_token)
        return video_pb2.ListVideosResponse(videos=[video_message(v) for v in page.videos],
                                            next_page_token=page.next_page_token)

    @rpc
    async def CompleteUpload(self, request: video_pb2.CompleteUploadRequest,
                             context: Context
                             ) -> video_pb2.CompleteUploadResponse:
        video = await self.videos.complete_upload(caller_of(self.auth, context),
                                                  request.video_id, request.upload_id)
        return video_pb2.CompleteUploadResponse(video=video_message(video))

    @rpc
    async def GetPlaybackUrl(self, request: video_pb2.GetPlaybackUrlRequest,
                             context: Context
                             ) -> video_pb2.GetPlaybackUrlResponse:
        url = await self.videos.playback_url(caller_of(self.auth, context), request.video_id,
                                             request.ttl_seconds)
        return video_pb2.GetPlaybackUrlResponse(url=url.url, token=url.token,
                                                expire_time=_timestamp(url.expires_at))

    @rpc
    async def DeleteVideo(self, request: video_pb2.DeleteVideoRequest,
                          context: Context) -> video_pb2.DeleteVideoResponse:
        await self.videos.delete_video(caller_of(self.auth, context), request.video_id)
        return video_pb2.DeleteVideoResponse()

    @rpc
    async def RetryProcessing(self, request: video_pb2.RetryProcessingRequest,
                              context: Context
                              ) -> video_pb2.RetryProcessingResponse:
        video = await self.videos.retry_processing(caller_of(self.auth, context),
                                                   request.video_id)
        return video_pb2.RetryProcessingResponse(video=video_message(video))


class UploadCallbackServicer(upload_pb2_grpc.UploadCallbackServiceServicer):
    def __init__(self, videos: VideoService, auth: Authenticator) -> None:
        self.videos = videos
        self.auth = auth

    @rpc
    async def UploadCompleted(self, request: upload_pb2.UploadCompletedRequest,
                              context: Context
                              ) -> upload_pb2.UploadCompletedResponse:
        await self.videos.upload_completed(
            caller_of(self.auth, context), request.upload_id, request.size_bytes,
            request.sha256, dict(request.metadata), request.subject)
        return upload_pb2.UploadCompletedResponse()


def _as_dicts(messages: Any) -> list[dict[str, Any]]:
    return [json_format.MessageToDict(m, preserving_proto_field_name=True) for m in messages]


def _load_of(message: farm_pb2.Node | farm_pb2.HeartbeatRequest) -> dict[str, Any]:
    """The load fields shared by Node and HeartbeatRequest, as plain values."""
    return {"cpu_slots_total": message.cpu_slots_total,
            "cpu_slots_busy": message.cpu_slots_busy,
            "jobs_completed": message.jobs_completed, "output_seconds": message.output_seconds,
            "gpus": _as_dicts(message.gpus), "running_jobs": _as_dicts(message.running_jobs)}


def node_message(view: NodeView) -> farm_pb2.Node:
    node = view.record
    seen, registered = Timestamp(), Timestamp()
    seen.FromDatetime(node.last_seen_at)
    registered.FromDatetime(node.registered_at)
    return farm_pb2.Node(
        node_id=node.node_id, hostname=node.hostname, version=node.version,
        ffmpeg_version=node.ffmpeg_version,
        gpus=[json_format.ParseDict(g, farm_pb2.Gpu(), ignore_unknown_fields=True)
              for g in node.gpus],
        cpu_slots_total=node.cpu_slots_total, cpu_slots_busy=node.cpu_slots_busy,
        running_jobs=[json_format.ParseDict(j, farm_pb2.RunningJob(), ignore_unknown_fields=True)
                      for j in node.running_jobs],
        state=f"STATE_{view.state}",
        last_seen_time=seen, register_time=registered, jobs_completed=node.jobs_completed,
        output_seconds=node.output_seconds)


class FarmServicer(farm_pb2_grpc.FarmServiceServicer):
    def __init__(self, farm: FarmRegistry, auth: Authenticator, heartbeat_seconds: int,
                 capacity: CapacityService | None = None) -> None:
        self.farm = farm
        self.capacity = capacity
        self.auth = auth
        self.heartbeat_seconds = heartbeat_seconds

    @rpc
    async def RegisterNode(self, request: farm_pb2.RegisterNodeRequest,
                           context: Context) -> farm_pb2.RegisterNodeResponse:
        node = request.node
        fields = {"node_id": node.node_id, "hostname": node.hostname, "version": node.version,
                  "ffmpeg_version": node.ffmpeg_version, **_load_of(node)}
        node_id = await self.farm.register(caller_of(self.auth, context), fields)
        return farm_pb2.RegisterNodeResponse(
            node_id=node_id, heartbeat_interval_seconds=self.heartbeat_seconds)

    @rpc
    async def Heartbeat(self, request: farm_pb2.HeartbeatRequest,
                        context: Context) -> farm_pb2.HeartbeatResponse:
        report = {**_load_of(request), "draining": request.draining}
        await self.farm.heartbeat(caller_of(self.auth, context), request.node_id, report)
        return farm_pb2.HeartbeatResponse()

    @rpc
    async def ListNodes(self, request: farm_pb2.ListNodesRequest,
                        context: Context) -> farm_pb2.ListNodesResponse:
        views = await self.farm.list_nodes(caller_of(self.auth, context), request.include_lost)
        return farm_pb2.ListNodesResponse(nodes=[node_message(v) for v in views])

    @rpc
    async def GetCapacity(self, request: farm_pb2.GetCapacityRequest,
                          context: Context) -> farm_pb2.GetCapacityResponse:
        caller = caller_of(self.auth, context)
        if self.capacity is not None:
            return capacity_message(await self.capacity.report(caller))
        capacity = await self.farm.capacity(caller)
        return farm_pb2.GetCapacityResponse(
            slots=[farm_pb2.SlotCount(kind=s.kind, total=s.total, busy=s.busy, free=s.free)
                   for s in capacity.slots],
            backlog=capacity.backlog, nodes_online=capacity.nodes_online,
            nodes_lost=capacity.nodes_lost)


def capacity_message(report: CapacityReport) -> farm_pb2.GetCapacityResponse:
    capacity = report.capacity
    return farm_pb2.GetCapacityResponse(
        slots=[farm_pb2.SlotCount(kind=s.kind, total=s.total, busy=s.busy, free=s.free)
               for s in capacity.slots],
        backlog=report.backlog, jobs_per_hour=report.rates.jobs_per_hour,
        output_minutes_per_hour=report.rates.output_minutes_per_hour,
        estimated_drain_seconds=report.estimated_drain_seconds,
        nodes_online=capacity.nodes_online, nodes_lost=capacity.nodes_lost,
        temporal_backlog=report.temporal_backlog, backlog_error=report.temporal_error,
        requeued_jobs=[farm_pb2.RequeuedJob(
            video_id=j.video_id, pipeline=j.pipeline, lost_node_id=j.lost_node_id,
            pending_in_temporal=j.pending_in_temporal) for j in report.requeued])


SERVICE_NAMES = [
    video_pb2.DESCRIPTOR.services_by_name["VideoService"].full_name,
    upload_pb2.DESCRIPTOR.services_by_name["UploadCallbackService"].full_name,
    farm_pb2.DESCRIPTOR.services_by_name["FarmService"].full_name,
]


def add_servicers(server: grpc.aio.Server, videos: VideoService, farm: FarmRegistry,
                  auth: Authenticator, heartbeat_seconds: int,
                  capacity: CapacityService | None = None) -> None:
    video_pb2_grpc.add_VideoServiceServicer_to_server(
        VideoServicer(videos, auth), server)
    upload_pb2_grpc.add_UploadCallbackServiceServicer_to_server(
        UploadCallbackServicer(videos, auth), server)
    farm_pb2_grpc.add_FarmServiceServicer_to_server(
        FarmServicer(farm, auth, heartbeat_seconds, capacity), server)
