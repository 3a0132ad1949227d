import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Gpu(_message.Message):
    __slots__ = ("index", "uuid", "model", "memory_total_bytes", "memory_used_bytes", "nvenc_available", "nvenc_session_cap", "encoder_utilization", "decoder_utilization", "nvenc_sessions_running", "slots_total", "slots_busy")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    NVENC_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    NVENC_SESSION_CAP_FIELD_NUMBER: _ClassVar[int]
    ENCODER_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    DECODER_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    NVENC_SESSIONS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    SLOTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SLOTS_BUSY_FIELD_NUMBER: _ClassVar[int]
    index: int
    uuid: str
    model: str
    memory_total_bytes: int
    memory_used_bytes: int
    nvenc_available: bool
    nvenc_session_cap: int
    encoder_utilization: int
    decoder_utilization: int
    nvenc_sessions_running: int
    slots_total: int
    slots_busy: int
    def __init__(self, index: _Optional[int] = ..., uuid: _Optional[str] = ..., model: _Optional[str] = ..., memory_total_bytes: _Optional[int] = ..., memory_used_bytes: _Optional[int] = ..., nvenc_available: _Optional[bool] = ..., nvenc_session_cap: _Optional[int] = ..., encoder_utilization: _Optional[int] = ..., decoder_utilization: _Optional[int] = ..., nvenc_sessions_running: _Optional[int] = ..., slots_total: _Optional[int] = ..., slots_busy: _Optional[int] = ...) -> None: ...

class RunningJob(_message.Message):
    __slots__ = ("video_id", "pipeline", "gpu_uuid", "start_time", "percent")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    GPU_UUID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    pipeline: str
    gpu_uuid: str
    start_time: _timestamp_pb2.Timestamp
    percent: float
    def __init__(self, video_id: _Optional[str] = ..., pipeline: _Optional[str] = ..., gpu_uuid: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., percent: _Optional[float] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("node_id", "hostname", "version", "ffmpeg_version", "gpus", "cpu_slots_total", "cpu_slots_busy", "running_jobs", "state", "last_seen_time", "register_time", "jobs_completed", "output_seconds")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Node.State]
        STATE_ONLINE: _ClassVar[Node.State]
        STATE_LOST: _ClassVar[Node.State]
        STATE_DRAINING: _ClassVar[Node.State]
    STATE_UNSPECIFIED: Node.State
    STATE_ONLINE: Node.State
    STATE_LOST: Node.State
    STATE_DRAINING: Node.State
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FFMPEG_VERSION_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    CPU_SLOTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CPU_SLOTS_BUSY_FIELD_NUMBER: _ClassVar[int]
    RUNNING_JOBS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    REGISTER_TIME_FIELD_NUMBER: _ClassVar[int]
    JOBS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    hostname: str
    version: str
    ffmpeg_version: str
    gpus: _containers.RepeatedCompositeFieldContainer[Gpu]
    cpu_slots_total: int
    cpu_slots_busy: int
    running_jobs: _containers.RepeatedCompositeFieldContainer[RunningJob]
    state: Node.State
    last_seen_time: _timestamp_pb2.Timestamp
    register_time: _timestamp_pb2.Timestamp
    jobs_completed: int
    output_seconds: float
    def __init__(self, node_id: _Optional[str] = ..., hostname: _Optional[str] = ..., version: _Optional[str] = ..., ffmpeg_version: _Optional[str] = ..., gpus: _Optional[_Iterable[_Union[Gpu, _Mapping]]] = ..., cpu_slots_total: _Optional[int] = ..., cpu_slots_busy: _Optional[int] = ..., running_jobs: _Optional[_Iterable[_Union[RunningJob, _Mapping]]] = ..., state: _Optional[_Union[Node.State, str]] = ..., last_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., register_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., jobs_completed: _Optional[int] = ..., output_seconds: _Optional[float] = ...) -> None: ...

class RegisterNodeRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: Node
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ...) -> None: ...

class RegisterNodeResponse(_message.Message):
    __slots__ = ("node_id", "heartbeat_interval_seconds")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    heartbeat_interval_seconds: int
    def __init__(self, node_id: _Optional[str] = ..., heartbeat_interval_seconds: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("node_id", "gpus", "cpu_slots_total", "cpu_slots_busy", "running_jobs", "draining", "jobs_completed", "output_seconds")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    CPU_SLOTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CPU_SLOTS_BUSY_FIELD_NUMBER: _ClassVar[int]
    RUNNING_JOBS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    JOBS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    gpus: _containers.RepeatedCompositeFieldContainer[Gpu]
    cpu_slots_total: int
    cpu_slots_busy: int
    running_jobs: _containers.RepeatedCompositeFieldContainer[RunningJob]
    draining: bool
    jobs_completed: int
    output_seconds: float
    def __init__(self, node_id: _Optional[str] = ..., gpus: _Optional[_Iterable[_Union[Gpu, _Mapping]]] = ..., cpu_slots_total: _Optional[int] = ..., cpu_slots_busy: _Optional[int] = ..., running_jobs: _Optional[_Iterable[_Union[RunningJob, _Mapping]]] = ..., draining: _Optional[bool] = ..., jobs_completed: _Optional[int] = ..., output_seconds: _Optional[float] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ("include_lost",)
    INCLUDE_LOST_FIELD_NUMBER: _ClassVar[int]
    include_lost: bool
    def __init__(self, include_lost: _Optional[bool] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ...) -> None: ...

class SlotCount(_message.Message):
    __slots__ = ("kind", "total", "busy", "free")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    total: int
    busy: int
    free: int
    def __init__(self, kind: _Optional[str] = ..., total: _Optional[int] = ..., busy: _Optional[int] = ..., free: _Optional[int] = ...) -> None: ...

class GetCapacityRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCapacityResponse(_message.Message):
    __slots__ = ("slots", "backlog", "jobs_per_hour", "output_minutes_per_hour", "estimated_drain_seconds", "nodes_online", "nodes_lost", "temporal_backlog", "backlog_error", "requeued_jobs")
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    JOBS_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MINUTES_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_DRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NODES_ONLINE_FIELD_NUMBER: _ClassVar[int]
    NODES_LOST_FIELD_NUMBER: _ClassVar[int]
    TEMPORAL_BACKLOG_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_ERROR_FIELD_NUMBER: _ClassVar[int]
    REQUEUED_JOBS_FIELD_NUMBER: _ClassVar[int]
    slots: _containers.RepeatedCompositeFieldContainer[SlotCount]
    backlog: int
    jobs_per_hour: float
    output_minutes_per_hour: float
    estimated_drain_seconds: float
    nodes_online: int
    nodes_lost: int
    temporal_backlog: int
    backlog_error: str
    requeued_jobs: _containers.RepeatedCompositeFieldContainer[RequeuedJob]
    def __init__(self, slots: _Optional[_Iterable[_Union[SlotCount, _Mapping]]] = ..., backlog: _Optional[int] = ..., jobs_per_hour: _Optional[float] = ..., output_minutes_per_hour: _Optional[float] = ..., estimated_drain_seconds: _Optional[float] = ..., nodes_online: _Optional[int] = ..., nodes_lost: _Optional[int] = ..., temporal_backlog: _Optional[int] = ..., backlog_error: _Optional[str] = ..., requeued_jobs: _Optional[_Iterable[_Union[RequeuedJob, _Mapping]]] = ...) -> None: ...

class RequeuedJob(_message.Message):
    __slots__ = ("video_id", "pipeline", "lost_node_id", "pending_in_temporal")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    LOST_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PENDING_IN_TEMPORAL_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    pipeline: str
    lost_node_id: str
    pending_in_temporal: bool
    def __init__(self, video_id: _Optional[str] = ..., pipeline: _Optional[str] = ..., lost_node_id: _Optional[str] = ..., pending_in_temporal: _Optional[bool] = ...) -> None: ...
