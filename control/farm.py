"""Farm nodes: registration, heartbeats, and the capacity the farm offers.

Nodes report GPUs, slots and running jobs; control only stores and sums what they say.
A node is LOST when its last heartbeat is older than settings.node_lost_after_seconds.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from control.auth import Caller
from control.errors import InvalidArgument, NotFound
from control.store import NodeRecord, VideoStore
from vora.config import Settings
from vora.logs import get_logger

log = get_logger(__name__)

_NODE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_MAX_GPUS = 64
_MAX_JOBS = 1024
SLOT_KINDS = ("nvenc", "nvdec", "cpu")


@dataclass(frozen=True)
class NodeView:
    record: NodeRecord
    state: str  # ONLINE, LOST or DRAINING


@dataclass
class SlotCount:
    kind: str
    total: int = 0
    busy: int = 0

    @property
    def free(self) -> int:
        return max(0, self.total - self.busy)


@dataclass
class Capacity:
    slots: list[SlotCount] = field(default_factory=list)
    backlog: int = 0  # transcode tasks waiting in Temporal: the Farm capacity issue fills it
    nodes_online: int = 0
    nodes_lost: int = 0


class FarmRegistry:
    def __init__(self, settings: Settings, store: VideoStore,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock

    async def register(self, caller: Caller, node: Mapping[str, Any]) -> str:
        caller.require_service()
        hostname = str(node.get("hostname", ""))
        if not 0 < len(hostname) <= 255:
            raise InvalidArgument("node.hostname is required (at most 255 characters)")
        # A node registering for the first time sends no id: control names it.
        node_id = _node_id(str(node.get("node_id", "")) or _new_node_id(hostname))
        fields = {"node_id": node_id, "hostname": hostname,
                  "version": str(node.get("version", ""))[:64],
                  "ffmpeg_version": str(node.get("ffmpeg_version", ""))[:256],
                  **_load(node)}
        await self.store.upsert_node(fields)
        return node_id

    async def heartbeat(self, caller: Caller, node_id: str, report: Mapping[str, Any]) -> None:
        caller.require_service()
        if not await self.store.heartbeat_node(_node_id(node_id), _load(report)):
            raise NotFound(f"node {node_id} is not registered; call RegisterNode first")

    async def list_nodes(self, caller: Caller, include_lost: bool) -> list[NodeView]:
        caller.require_service()
        views = [NodeView(n, self._state(n)) for n in await self.store.list_nodes()]
        return [v for v in views if include_lost or v.state != "LOST"]

    async def forget_silent(self, caller: Caller) -> list[str]:
        """Delete nodes silent for node_forget_after_seconds (decommissioned, or gone for
        good); a node that comes back later is told NOT_FOUND and registers again."""
        caller.require_service()
        forgotten = await self.store.forget_nodes(self.settings.node_forget_after_seconds)
        for node_id in forgotten:
            log.info("forgot a long-lost farm node", node_id=node_id,
                     silent_for_seconds=self.settings.node_forget_after_seconds)
        return forgotten

    async def capacity(self, caller: Caller) -> Capacity:
        caller.require_service()
        slots = {kind: SlotCount(kind) for kind in SLOT_KINDS}
        capacity = Capacity(slots=list(slots.values()))
        for node in await self.store.list_nodes():
            state = self._state(node)
            if state == "LOST":
                capacity.nodes_lost += 1
                continue
            capacity.nodes_online += 1
            _add_node_slots(slots, node, draining=state == "DRAINING")
        return capacity

    def _state(self, node: NodeRecord) -> str:
        if self.clock() - node.last_seen_at.timestamp() > self.settings.node_lost_after_seconds:
            return "LOST"
        return "DRAINING" if node.draining else "ONLINE"


def _add_node_slots(slots: dict[str, SlotCount], node: NodeRecord, *, draining: bool) -> None:
    """A draining node takes no new work: its busy slots count, its free ones do not."""
    for gpu in node.gpus:
        kind = "nvenc" if gpu.get("nvenc_available") else "nvdec"
        busy = int(gpu.get("slots_busy", 0))
        slots[kind].busy += busy
        slots[kind].total += busy if draining else int(gpu.get("slots_total", 0))
    slots["cpu"].busy += node.cpu_slots_busy
    slots["cpu"].total += node.cpu_slots_busy if draining else node.cpu_slots_total


def _new_node_id(hostname: str) -> str:
    prefix = re.sub(r"[^A-Za-z0-9._-]", "-", hostname).strip(".-_")[:100] or "node"
    return f"{prefix}-{secrets.token_hex(4)}"


def _node_id(value: str) -> str:
    if not _NODE_ID_RE.fullmatch(value):
        raise InvalidArgument("node_id must be 1 to 128 letters, digits, '.', '_' or '-'")
    return value


def _load(report: Mapping[str, Any]) -> dict[str, Any]:
    """The load fields a registration or heartbeat carries, checked for sanity."""
    gpus = list(report.get("gpus", []))
    jobs = list(report.get("running_jobs", []))
    if len(gpus) > _MAX_GPUS or len(jobs) > _MAX_JOBS:
        raise InvalidArgument(f"at most {_MAX_GPUS} GPUs and {_MAX_JOBS} running jobs")
    numbers = {name: report.get(name, 0) for name in
               ("cpu_slots_total", "cpu_slots_busy", "jobs_completed", "output_seconds")}
    if any(value < 0 for value in numbers.values()):
        raise InvalidArgument("slot counts, jobs_completed and output_seconds must not be "
                              "negative")
    return {"gpus": gpus, "running_jobs": jobs, "draining": bool(report.get("draining")),
            **numbers}
