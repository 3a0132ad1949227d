"""GPU discovery and slot allocation against a fake NVML (no GPU on CI machines)."""

from __future__ import annotations

import asyncio

import pytest

from farm import node
from farm.gpus import GpuInfo, GpuInventory, nvenc_session_cap
from farm.slots import Slot, SlotAllocator
from tests.farm.fake_nvml import FakeGpu, FakeNvml
from vora.config import Settings

GIB = 1024**3


def grant(allocator: SlotAllocator, renditions: int, *, gpu_allowed: bool = True) -> Slot:
    slot = allocator.try_acquire(renditions, gpu_allowed=gpu_allowed)
    assert slot is not None, "no slot granted"
    return slot


def settings_for(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"farm_cpu_slots": 1, "farm_gpu_slots": 2,
                                       "farm_nvenc_session_cap": 0, "farm_pipeline": "auto",
                                       **changes})


async def nvenc_on(names: set[str]):
    """An NVENC probe double for absent hardware: the listed models 'have' NVENC."""
    async def probe(settings: Settings, gpu: GpuInfo, driver: str) -> bool:
        return gpu.name in names
    return probe


async def test_no_driver_means_cpu_only(settings: Settings) -> None:
    inventory, allocator = await node.discover(settings_for(settings),
                                               FakeNvml(driver_loaded=False))
    assert not inventory.available and allocator.gpus == {}
    assert allocator.capacity() == 1
    assert grant(allocator, 3).pipeline == "cpu"
    assert allocator.try_acquire(3) is None


async def test_real_pynvml_without_driver_is_not_an_error(settings: Settings) -> None:
    inventory, allocator = await node.discover(settings_for(settings))
    assert allocator.gpus == {} and allocator.capacity() == settings_for(settings).farm_cpu_slots
    inventory.stop()


async def test_h100_without_nvenc_gets_the_nvdec_pipeline(settings: Settings) -> None:
    """The real NVENC probe runs (and fails: no NVENC here), so the card is NVDEC-only."""
    fake = FakeNvml(gpus=[FakeGpu("NVIDIA H100 80GB HBM3", "GPU-h100", has_encoder=False)])
    inventory, allocator = await node.discover(settings_for(settings), fake)
    gpu = allocator.gpus["GPU-h100"]
    assert not gpu.nvenc and gpu.pipeline == "nvdec" and gpu.session_cap == 0
    assert gpu.info.encoder_utilization == 0 and gpu.info.encoder_sessions == 0
    slot = allocator.try_acquire(3)
    assert slot is not None and slot.pipeline == "nvdec" and slot.sessions == 0
    inventory.stop()
    assert fake.initialised == 0


async def test_least_loaded_gpu_wins_and_cpu_takes_the_rest(settings: Settings) -> None:
    fake = FakeNvml(gpus=[
        FakeGpu("NVIDIA L4", "GPU-a", encoder_utilization=80),
        FakeGpu("NVIDIA L4", "GPU-b", encoder_utilization=10),
    ])
    _, allocator = await node.discover(settings_for(settings), fake,
                                       nvenc_probe=await nvenc_on({"NVIDIA L4"}))
    assert allocator.capacity() == 2 * 2 + 1
    first = allocator.try_acquire(3)
    assert first is not None and (first.gpu_uuid, first.pipeline) == ("GPU-b", "nvenc")
    assert first.sessions == 3
    second = allocator.try_acquire(3)
    assert second is not None and second.gpu_uuid == "GPU-a"
    granted = [allocator.try_acquire(3) for _ in range(3)]
    assert [s.pipeline if s else None for s in granted] == ["nvenc", "nvenc", "cpu"]
    assert allocator.try_acquire(3) is None
    allocator.release(first)
    again = allocator.try_acquire(3)
    assert again is not None and again.gpu_uuid == "GPU-b"


@pytest.mark.parametrize(("driver", "cap"), [("525.147.05", 3), ("535.183.01", 5),
                                              ("550.54.15", 5), ("560.35.03", 8)])
def test_consumer_session_cap_follows_the_driver(driver: str, cap: int) -> None:
    assert nvenc_session_cap("NVIDIA GeForce RTX 4090", driver, 0) == cap
    assert nvenc_session_cap("NVIDIA L40S", driver, 0) is None
    assert nvenc_session_cap("NVIDIA GeForce RTX 4090", driver, 12) == 12


async def test_consumer_card_at_its_session_cap_takes_no_job(settings: Settings) -> None:
    """A GeForce on driver 535 allows 5 sessions; another process already holds 3, so a
    3-rendition job (3 sessions) does not fit and goes to the CPU."""
    fake = FakeNvml(driver_version="535.183.01", gpus=[
        FakeGpu("NVIDIA GeForce RTX 3080", "GPU-geforce", encoder_sessions=3)])
    _, allocator = await node.discover(settings_for(settings), fake,
                                       nvenc_probe=await nvenc_on({"NVIDIA GeForce RTX 3080"}))
    gpu = allocator.gpus["GPU-geforce"]
    assert gpu.session_cap == 5 and gpu.slots == 1  # 5 sessions // 3 renditions
    slot = allocator.try_acquire(3)
    assert slot is not None and slot.pipeline == "cpu"
    small = allocator.try_acquire(2)  # two renditions still fit in the 2 free sessions
    assert small is not None and small.pipeline == "nvenc"


async def test_session_cap_setting_overrides_the_driver(settings: Settings) -> None:
    fake = FakeNvml(driver_version="535.183.01", gpus=[
        FakeGpu("NVIDIA GeForce RTX 3080", "GPU-geforce")])
    _, allocator = await node.discover(
        settings_for(settings, farm_nvenc_session_cap=6, farm_gpu_slots=4), fake,
        nvenc_probe=await nvenc_on({"NVIDIA GeForce RTX 3080"}))
    assert allocator.gpus["GPU-geforce"].slots == 2
    assert [grant(allocator, 3).pipeline for _ in range(3)] == ["nvenc", "nvenc", "cpu"]


async def test_gpu_without_free_memory_takes_no_job(settings: Settings) -> None:
    fake = FakeNvml(gpus=[FakeGpu("NVIDIA A100-SXM4-40GB", "GPU-full", memory_total=40 * GIB,
                                  memory_used=40 * GIB - 100, has_encoder=False)])
    _, allocator = await node.discover(settings_for(settings), fake)
    assert grant(allocator, 3).pipeline == "cpu"


async def test_gpu_that_disappears_takes_no_new_job(settings: Settings) -> None:
    fake = FakeNvml(gpus=[FakeGpu("NVIDIA L4", "GPU-a"), FakeGpu("NVIDIA L4", "GPU-b")])
    inventory, allocator = await node.discover(settings_for(settings), fake,
                                               nvenc_probe=await nvenc_on({"NVIDIA L4"}))
    running = allocator.try_acquire(3)
    assert running is not None and running.gpu_uuid == "GPU-a"
    fake.gpus[1].lost = True  # NVML answers NVML_ERROR_GPU_IS_LOST from now on
    listed = inventory.list()
    assert [g.uuid for g in listed] == ["GPU-a"]
    allocator.update(listed)
    assert not allocator.gpus["GPU-b"].present
    nxt = allocator.try_acquire(3)
    assert nxt is not None and nxt.gpu_uuid == "GPU-a"  # not the lost card
    allocator.release(running)
    allocator.release(running)  # a double release changes nothing
    assert allocator.gpus["GPU-a"].jobs == 1


async def test_forced_pipelines(settings: Settings) -> None:
    fake = FakeNvml(gpus=[FakeGpu("NVIDIA L4", "GPU-l4"),
                          FakeGpu("NVIDIA H100", "GPU-h100", has_encoder=False)])
    probe = await nvenc_on({"NVIDIA L4"})
    _, cpu = await node.discover(settings_for(settings, farm_pipeline="cpu"), fake, probe)
    assert cpu.gpus == {} and cpu.capacity() == 1
    _, nvenc_only = await node.discover(settings_for(settings, farm_pipeline="nvenc"), fake, probe)
    assert nvenc_only.capacity() == 2 and grant(nvenc_only, 3).gpu_uuid == "GPU-l4"
    _, nvdec = await node.discover(settings_for(settings, farm_pipeline="nvdec"), fake, probe)
    assert {grant(nvdec, 3).pipeline for _ in range(4)} == {"nvdec"}


async def test_a_gpu_failure_falls_back_to_a_cpu_slot_even_on_a_gpu_only_node(
        settings: Settings) -> None:
    fake = FakeNvml(gpus=[FakeGpu("NVIDIA L4", "GPU-l4")])
    _, allocator = await node.discover(settings_for(settings, farm_pipeline="nvenc"), fake,
                                       await nvenc_on({"NVIDIA L4"}))
    assert allocator.cpu_slots() == 0
    assert grant(allocator, 3, gpu_allowed=False).pipeline == "cpu"


async def test_acquire_waits_for_a_release(settings: Settings) -> None:
    allocator = SlotAllocator(settings_for(settings))
    held = allocator.try_acquire(1)
    assert held is not None
    waiter = asyncio.create_task(allocator.acquire(1))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    allocator.release(held)
    slot = await asyncio.wait_for(waiter, 2)
    assert slot.pipeline == "cpu"


def test_inventory_lists_nothing_before_start() -> None:
    assert GpuInventory(FakeNvml(gpus=[FakeGpu("x", "y")])).list() == []
