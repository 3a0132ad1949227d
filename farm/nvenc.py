"""Does a GPU encode H.264 with NVENC? Asked of the card itself, once, by encoding one frame.

The model name does not tell: A100, H100 and H200 have NVDEC but no NVENC, and a
card at its session cap or a broken driver also fails. The answer is cached per
GPU uuid and driver version.
"""

from __future__ import annotations

from farm import process
from farm.gpus import GpuInfo
from farm.limits import ProcessLimits
from vora.config import Settings
from vora.logs import get_logger

log = get_logger(__name__)
PROBE_TIMEOUT_SECONDS = 30
# CUDA needs its address space unbounded (see limits.ffmpeg_limits).
_PROBE_LIMITS = ProcessLimits(memory_bytes=0, cpu_seconds=120, file_bytes=0)
# NVML numbers GPUs by PCI bus id; CUDA (and so FFmpeg's -gpu / cuda=gpu:N) does too
# only with this set.
CUDA_ENV = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}

_cache: dict[tuple[str, str], bool] = {}


def probe_args(settings: Settings, gpu_index: int) -> list[str]:
    return [settings.farm_ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "lavfi", "-i",
            "color=c=black:size=256x256:rate=1", "-frames:v", "1", "-c:v", "h264_nvenc",
            "-gpu", str(gpu_index), "-f", "null", "-"]


async def nvenc_works(settings: Settings, gpu: GpuInfo, driver_version: str) -> bool:
    key = (gpu.uuid, driver_version)
    if key not in _cache:
        _cache[key] = await _probe(settings, gpu)
    return _cache[key]


async def _probe(settings: Settings, gpu: GpuInfo) -> bool:
    try:
        await process.run(probe_args(settings, gpu.index), limits=_PROBE_LIMITS,
                          timeout=PROBE_TIMEOUT_SECONDS, env=CUDA_ENV)
    except process.FfmpegError as exc:
        log.info("nvenc probe failed", gpu=gpu.uuid, model=gpu.name, reason=str(exc))
        return False
    log.info("nvenc probe passed", gpu=gpu.uuid, model=gpu.name)
    return True
