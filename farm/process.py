"""Running one FFmpeg/ffprobe process: limits, wall-clock timeout, progress, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from farm.limits import ProcessLimits
from vora.logs import get_logger

log = get_logger(__name__)
STDERR_TAIL_LINES = 40


class FfmpegError(Exception):
    """FFmpeg exited non-zero; ``stderr`` holds the end of what it said."""

    def __init__(self, message: str, returncode: int | None, stderr: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class FfmpegTimeout(FfmpegError):
    """FFmpeg ran past its wall-clock limit and was killed."""


@dataclass(frozen=True)
class Progress:
    """One block of FFmpeg's ``-progress`` output."""

    out_seconds: float
    fps: float
    speed: float
    done: bool


ProgressCallback = Callable[[Progress], Awaitable[None]]


def parse_progress_block(fields: dict[str, str]) -> Progress:
    def number(key: str) -> float:
        value = fields.get(key, "").strip().rstrip("x")
        try:
            return float(value)
        except ValueError:
            return 0.0

    # out_time_us is microseconds; FFmpeg's out_time_ms is (misnamed) microseconds too.
    micros = number("out_time_us") or number("out_time_ms")
    return Progress(out_seconds=max(0.0, micros / 1e6), fps=number("fps"),
                    speed=number("speed"), done=fields.get("progress") == "end")


async def _read_progress(stream: asyncio.StreamReader,
                         on_progress: ProgressCallback | None) -> None:
    fields: dict[str, str] = {}
    async for raw in stream:
        key, _, value = raw.decode(errors="replace").strip().partition("=")
        fields[key] = value
        if key == "progress":
            if on_progress is not None:
                await on_progress(parse_progress_block(fields))
            fields = {}


async def _read_tail(stream: asyncio.StreamReader, tail: deque[str]) -> None:
    async for raw in stream:
        tail.append(raw.decode(errors="replace").rstrip())


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run(args: Sequence[str], *, limits: ProcessLimits, timeout: float,  # noqa: ASYNC109
              on_progress: ProgressCallback | None = None,
              env: dict[str, str] | None = None) -> str:
    """Run the command to completion and return its stdout when no progress is parsed.

    The process runs in its own session with ``limits`` applied, so a kill reaches
    every thread and child. A timeout or a cancellation of the calling task kills it.
    """
    proc = await asyncio.create_subprocess_exec(
        *limits.wrap(args), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None and proc.stderr is not None
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    stdout_chunks: list[bytes] = []
    reader = (_read_progress(proc.stdout, on_progress) if on_progress is not None
              else _collect(proc.stdout, stdout_chunks))
    io = asyncio.gather(reader, _read_tail(proc.stderr, tail))
    try:
        await asyncio.wait_for(asyncio.shield(io), timeout)
        returncode = await proc.wait()
    except TimeoutError:
        _kill_group(proc)
        await proc.wait()
        io.cancel()
        raise FfmpegTimeout(f"{os.path.basename(args[0])} ran longer than {timeout:.0f} s "
                            "and was stopped", None, "\n".join(tail)) from None
    except BaseException:
        _kill_group(proc)
        await proc.wait()
        io.cancel()
        raise
    if returncode != 0:
        stderr = "\n".join(tail)
        raise FfmpegError(f"{os.path.basename(args[0])} exited with {returncode}: "
                          f"{_last_line(stderr)}", returncode, stderr)
    return b"".join(stdout_chunks).decode(errors="replace")


async def _collect(stream: asyncio.StreamReader, chunks: list[bytes]) -> None:
    while chunk := await stream.read(65536):
        chunks.append(chunk)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


async def run_bytes(args: Sequence[str], *, limits: ProcessLimits,
                    timeout: float) -> bytes:  # noqa: ASYNC109
    """Run a short tool and return its raw stdout (binary output such as a bitstream)."""
    proc = await asyncio.create_subprocess_exec(
        *limits.wrap(args), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        _kill_group(proc)
        await proc.wait()
        raise
    if proc.returncode != 0:
        text = stderr.decode(errors="replace")
        raise FfmpegError(f"{os.path.basename(args[0])} exited with {proc.returncode}: "
                          f"{_last_line(text)}", proc.returncode, text)
    return stdout
