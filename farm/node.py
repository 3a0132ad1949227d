"""What this node can do: GPUs (NVML + NVENC probe), slots, the FFmpeg build."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from farm import nvenc
from farm.gpus import GpuInfo, GpuInventory, Nvml, load_nvml, nvenc_session_cap
from farm.slots import SlotAllocator
from vora.config import Settings
from vora.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class FfmpegBuild:
    version: str
    hwaccels: list[str]
    encoders: list[str]
    filters: list[str]


def ffmpeg_build(settings: Settings) -> FfmpegBuild:
    if not shutil.which(settings.farm_ffmpeg):
        return FfmpegBuild("not found", [], [], [])

    def ask(*args: str) -> str:
        return subprocess.run([settings.farm_ffmpeg, "-hide_banner", *args], capture_output=True,
                              text=True, check=False, timeout=10).stdout

    version = (ask("-version").splitlines() or ["unknown"])[0]
    hwaccels = [line.strip() for line in ask("-hwaccels").splitlines()[1:] if line.strip()]
    wanted = ("libx264", "h264_nvenc", "aac")
    encoders = [name for name in wanted if f" {name} " in ask("-encoders")]
    filter_text = ask("-filters")
    filters = [name for name in ("scale_cuda", "hwupload_cuda", "thumbnail")
               if f" {name} " in filter_text]
    return FfmpegBuild(version, hwaccels, encoders, filters)


NvencProbe = Callable[[Settings, GpuInfo, str], Awaitable[bool]]


async def discover(settings: Settings, nvml: Nvml | None = None,
                   nvenc_probe: NvencProbe = nvenc.nvenc_works
                   ) -> tuple[GpuInventory, SlotAllocator]:
    """NVML GPUs, each NVENC-probed, in an allocator; no driver means CPU only."""
    inventory = GpuInventory(nvml if nvml is not None else load_nvml())
    allocator = SlotAllocator(settings)
    if settings.farm_pipeline == "cpu" or not inventory.start():
        return inventory, allocator
    for info in inventory.list():
        works = await nvenc_probe(settings, info, inventory.driver_version)
        cap = nvenc_session_cap(info.name, inventory.driver_version,
                                settings.farm_nvenc_session_cap) if works else 0
        allocator.add_gpu(info, works, cap)
        log.info("gpu found", index=info.index, model=info.name, uuid=info.uuid, nvenc=works,
                 session_cap=cap, memory_total=info.memory_total)
    return inventory, allocator


async def poll_gpus(settings: Settings, inventory: GpuInventory,
                    allocator: SlotAllocator) -> None:
    """Refresh utilisation, memory and presence of every GPU."""
    while True:
        await asyncio.sleep(settings.farm_nvml_poll_seconds)
        allocator.update(await asyncio.to_thread(inventory.list))
