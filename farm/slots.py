"""Job slots: which GPU (or CPU) runs the next transcode, and with which pipeline.

A GPU with NVENC runs the nvenc pipeline, as many jobs as ``farm_gpu_slots`` and its
NVENC session cap allow (each rendition is one session; sessions other processes hold,
as NVML counts them, are respected too). A GPU without NVENC runs the nvdec pipeline.
A GPU with too little free memory takes no job. CPU slots take the rest and every job
that failed on a GPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field

from farm.gpus import GpuInfo
from farm.pipeline import Pipeline
from vora.config import Settings


@dataclass
class GpuSlots:
    """The allocator's view of one GPU."""

    info: GpuInfo
    nvenc: bool
    session_cap: int | None  # None: the driver sets no cap
    slots: int
    jobs: int = 0
    sessions: int = 0  # NVENC sessions of this worker's jobs
    present: bool = True

    @property
    def pipeline(self) -> Pipeline:
        return "nvenc" if self.nvenc else "nvdec"

    def sessions_free(self) -> int | None:
        if self.session_cap is None:
            return None
        # NVML counts every process's sessions, ours included; trust the larger count.
        return self.session_cap - max(self.info.encoder_sessions, self.sessions)


@dataclass(frozen=True)
class Slot:
    """One granted slot; hand it back with SlotAllocator.release."""

    id: int
    pipeline: Pipeline
    gpu_index: int = -1
    gpu_uuid: str = ""
    sessions: int = 0

    @property
    def on_gpu(self) -> bool:
        return self.pipeline != "cpu"


def gpu_slot_count(settings: Settings, nvenc: bool, session_cap: int | None) -> int:
    if nvenc and session_cap is not None:
        per_job = max(1, len(settings.farm_ladder))
        return min(settings.farm_gpu_slots, session_cap // per_job)
    return settings.farm_gpu_slots


@dataclass
class SlotAllocator:
    settings: Settings
    gpus: dict[str, GpuSlots] = field(default_factory=dict)
    cpu_busy: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _granted: dict[int, Slot] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def mode(self) -> str:
        return self.settings.farm_pipeline

    def add_gpu(self, info: GpuInfo, nvenc: bool, session_cap: int | None) -> GpuSlots:
        count = gpu_slot_count(self.settings, nvenc, session_cap)
        slots = GpuSlots(info, nvenc, session_cap, count)
        self.gpus[info.uuid] = slots
        return slots

    def update(self, infos: list[GpuInfo]) -> None:
        """Fresh NVML readings; a GPU missing from them takes no new job."""
        seen = {info.uuid: info for info in infos}
        for uuid, gpu in self.gpus.items():
            gpu.present = uuid in seen
            if gpu.present:
                gpu.info = seen[uuid]
        self._notify()

    def usable_gpus(self) -> list[GpuSlots]:
        if self.mode == "cpu":
            return []
        if self.mode == "nvenc":
            return [g for g in self.gpus.values() if g.nvenc]
        return list(self.gpus.values())

    def capacity(self) -> int:
        """How many jobs this node runs at once (the worker's activity limit)."""
        return sum(g.slots for g in self.usable_gpus()) + self.cpu_slots()

    def cpu_slots(self) -> int:
        return 0 if self.mode in ("nvenc", "nvdec") and self.gpus else self.settings.farm_cpu_slots

    def try_acquire(self, renditions: int, *, gpu_allowed: bool = True) -> Slot | None:
        """The least loaded GPU that fits the job, else a CPU slot, else None."""
        if gpu_allowed:
            fitting = [g for g in self.usable_gpus() if self._fits(g, renditions)]
            if fitting:
                return self._grant_gpu(min(fitting, key=self._load), renditions)
        # A job leaving a GPU after a GPU failure may use a CPU slot even on a GPU-only
        # node: it already holds one of the worker's activity slots.
        cpu_limit = self.cpu_slots() if gpu_allowed else max(1, self.cpu_slots())
        if self.cpu_busy < cpu_limit:
            self.cpu_busy += 1
            return self._remember(Slot(next(self._ids), "cpu"))
        return None

    async def acquire(self, renditions: int, *, gpu_allowed: bool = True) -> Slot:
        """Wait until a slot is free. The worker never runs more activities than
        capacity(), so this waits only when GPUs disappeared or a CPU fallback queues."""
        while (slot := self.try_acquire(renditions, gpu_allowed=gpu_allowed)) is None:
            self._changed.clear()
            # Re-check each second too: NVML readings may have freed sessions or memory.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=1.0)
        return slot

    def release(self, slot: Slot) -> None:
        if self._granted.pop(slot.id, None) is None:
            return  # released twice: harmless
        if slot.on_gpu and slot.gpu_uuid in self.gpus:
            gpu = self.gpus[slot.gpu_uuid]
            gpu.jobs -= 1
            gpu.sessions -= slot.sessions
        elif not slot.on_gpu:
            self.cpu_busy -= 1
        self._notify()

    def _fits(self, gpu: GpuSlots, renditions: int) -> bool:
        if not gpu.present or gpu.jobs >= gpu.slots:
            return False
        if gpu.info.memory_free < self.settings.farm_gpu_min_free_memory_bytes:
            return False
        pipeline = self._pipeline_for(gpu)
        free = gpu.sessions_free()
        return pipeline != "nvenc" or free is None or free >= renditions

    def _pipeline_for(self, gpu: GpuSlots) -> Pipeline:
        return "nvdec" if self.mode == "nvdec" else gpu.pipeline

    @staticmethod
    def _load(gpu: GpuSlots) -> tuple[float, int, int]:
        return (gpu.jobs / max(1, gpu.slots), gpu.info.encoder_utilization, -gpu.info.memory_free)

    def _grant_gpu(self, gpu: GpuSlots, renditions: int) -> Slot:
        pipeline = self._pipeline_for(gpu)
        sessions = renditions if pipeline == "nvenc" else 0
        gpu.jobs += 1
        gpu.sessions += sessions
        return self._remember(Slot(next(self._ids), pipeline, gpu.info.index, gpu.info.uuid,
                                   sessions))

    def _remember(self, slot: Slot) -> Slot:
        self._granted[slot.id] = slot
        return slot

    def _notify(self) -> None:
        self._changed.set()
