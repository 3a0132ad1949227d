"""NVIDIA GPU discovery through NVML (nvidia-ml-py), and what each card can do.

NVML is reached through the ``Nvml`` protocol: production passes the ``pynvml``
module itself, tests pass a fake module with the same functions and exceptions.
No driver (NVMLError on init) means zero GPUs, which is normal on CPU-only nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from vora.logs import get_logger

log = get_logger(__name__)


class Nvml(Protocol):
    """The subset of nvidia-ml-py the farm calls (same names, arguments and results)."""

    NVMLError: type[Exception]

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlSystemGetDriverVersion(self) -> str: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetName(self, handle: Any) -> str: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> str: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...
    def nvmlDeviceGetEncoderUtilization(self, handle: Any) -> Sequence[int]: ...
    def nvmlDeviceGetDecoderUtilization(self, handle: Any) -> Sequence[int]: ...
    def nvmlDeviceGetEncoderStats(self, handle: Any) -> Sequence[int]: ...


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML reports it at one moment."""

    index: int
    uuid: str
    name: str
    memory_total: int
    memory_free: int
    encoder_utilization: int
    decoder_utilization: int
    encoder_sessions: int

    @property
    def memory_used(self) -> int:
        return self.memory_total - self.memory_free


def load_nvml() -> Nvml | None:
    try:
        import pynvml
    except ImportError:
        return None
    module: Nvml = pynvml
    return module


class GpuInventory:
    """Holds NVML open and lists the GPUs on demand."""

    def __init__(self, nvml: Nvml | None) -> None:
        self.nvml = nvml
        self.driver_version = ""
        self.available = False

    def start(self) -> bool:
        """Initialise NVML; False (logged, not raised) where there is no driver."""
        if self.nvml is None:
            log.info("nvml not installed; cpu only")
            return False
        try:
            self.nvml.nvmlInit()
            self.driver_version = self.nvml.nvmlSystemGetDriverVersion()
        except self.nvml.NVMLError as exc:
            log.info("no nvidia driver; cpu only", reason=str(exc))
            return False
        self.available = True
        return True

    def stop(self) -> None:
        if self.available and self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except self.nvml.NVMLError as exc:
                log.warning("nvml shutdown failed", reason=str(exc))
            self.available = False

    def list(self) -> list[GpuInfo]:
        """Every GPU that answers now; a card that fails (lost, fallen off the bus) is left
        out, so the allocator stops giving it work."""
        if not self.available or self.nvml is None:
            return []
        try:
            count = self.nvml.nvmlDeviceGetCount()
        except self.nvml.NVMLError as exc:
            log.warning("nvml cannot count gpus", reason=str(exc))
            return []
        found = []
        for index in range(count):
            try:
                found.append(self._read(index))
            except self.nvml.NVMLError as exc:
                log.warning("gpu not answering", index=index, reason=str(exc))
        return found

    def _read(self, index: int) -> GpuInfo:
        assert self.nvml is not None
        nvml = self.nvml
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        return GpuInfo(
            index=index, uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
            name=_text(nvml.nvmlDeviceGetName(handle)),
            memory_total=int(memory.total), memory_free=int(memory.free),
            encoder_utilization=self._optional(nvml.nvmlDeviceGetEncoderUtilization, handle),
            decoder_utilization=self._optional(nvml.nvmlDeviceGetDecoderUtilization, handle),
            encoder_sessions=self._optional(nvml.nvmlDeviceGetEncoderStats, handle),
        )

    def _optional(self, call: Any, handle: Any) -> int:
        """First value of a counter some cards do not support (NVML_ERROR_NOT_SUPPORTED)."""
        assert self.nvml is not None
        try:
            return int(call(handle)[0])
        except self.nvml.NVMLError as exc:
            if getattr(exc, "value", None) == getattr(self.nvml, "NVML_ERROR_NOT_SUPPORTED", 3):
                return 0
            raise


def _text(value: str | bytes) -> str:
    # Old nvidia-ml-py releases return bytes.
    return value.decode() if isinstance(value, bytes) else value


def consumer_card(name: str) -> bool:
    return any(word in name for word in ("GeForce", "TITAN", "Titan"))


def nvenc_session_cap(name: str, driver_version: str, override: int) -> int | None:
    """Concurrent NVENC sessions the driver allows on this card, None for no driver cap.

    GeForce/TITAN drivers cap sessions: 3 before driver 530, 5 from 530, 8 from 551.
    Data-centre and professional cards have no such cap. ``override`` (>0) wins."""
    if override > 0:
        return override
    if not consumer_card(name):
        return None
    try:
        major = int(driver_version.split(".")[0])
    except ValueError:
        return 3
    if major >= 551:
        return 8
    return 5 if major >= 530 else 3
