"""A fake NVML module for machines without an NVIDIA GPU.

It mirrors nvidia-ml-py function for function: the same names and arguments, the
same return types (ctypes structs, lists, tuples, str), and the real NVMLError
subclasses with the real error codes, raised where the real library raises them.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import pynvml

NVMLError = pynvml.NVMLError
NVML_ERROR_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED


@dataclass
class FakeGpu:
    name: str
    uuid: str
    memory_total: int = 80 * 1024**3
    memory_used: int = 1024**3
    encoder_utilization: int = 0
    decoder_utilization: int = 0
    encoder_sessions: int = 0
    has_encoder: bool = True  # False: the encoder counters are NOT_SUPPORTED (A100/H100)
    lost: bool = False  # True: every query raises NVML_ERROR_GPU_IS_LOST


@dataclass
class FakeNvml:
    gpus: list[FakeGpu] = field(default_factory=list)
    driver_version: str = "550.54.15"
    driver_loaded: bool = True
    initialised: int = 0
    NVMLError: type[Exception] = pynvml.NVMLError
    NVML_ERROR_NOT_SUPPORTED: int = pynvml.NVML_ERROR_NOT_SUPPORTED

    def nvmlInit(self) -> None:
        if not self.driver_loaded:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._need_init()
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._need_init()
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._need_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> pynvml.c_nvmlDevice_t:
        self._need_init()
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if self.gpus[index].lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        # The real handle is an opaque pointer; the fake one carries the index.
        return ctypes.cast(ctypes.c_void_p(index + 1), pynvml.c_nvmlDevice_t)

    def nvmlDeviceGetName(self, handle: pynvml.c_nvmlDevice_t) -> str:
        return self._gpu(handle).name

    def nvmlDeviceGetUUID(self, handle: pynvml.c_nvmlDevice_t) -> str:
        return self._gpu(handle).uuid

    def nvmlDeviceGetMemoryInfo(self, handle: pynvml.c_nvmlDevice_t) -> pynvml.c_nvmlMemory_t:
        gpu = self._gpu(handle)
        memory = pynvml.c_nvmlMemory_t()
        memory.total = gpu.memory_total
        memory.used = gpu.memory_used
        memory.free = gpu.memory_total - gpu.memory_used
        return memory

    def nvmlDeviceGetEncoderUtilization(self, handle: pynvml.c_nvmlDevice_t) -> list[int]:
        gpu = self._encoder(handle)
        return [gpu.encoder_utilization, 167000]

    def nvmlDeviceGetDecoderUtilization(self, handle: pynvml.c_nvmlDevice_t) -> list[int]:
        gpu = self._gpu(handle)
        return [gpu.decoder_utilization, 167000]

    def nvmlDeviceGetEncoderStats(self, handle: pynvml.c_nvmlDevice_t) -> tuple[int, int, int]:
        gpu = self._encoder(handle)
        return (gpu.encoder_sessions, 240 if gpu.encoder_sessions else 0, 1500)

    def _need_init(self) -> None:
        if self.initialised <= 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: pynvml.c_nvmlDevice_t) -> FakeGpu:
        self._need_init()
        index = ctypes.cast(handle, ctypes.c_void_p).value
        assert index is not None
        gpu = self.gpus[index - 1]
        if gpu.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return gpu

    def _encoder(self, handle: pynvml.c_nvmlDevice_t) -> FakeGpu:
        gpu = self._gpu(handle)
        if not gpu.has_encoder:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu
