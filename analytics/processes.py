"""Several ingest processes on one port: one Python process parses and encodes on about
one core (the GIL), so a busy node runs VORA_ANALYTICS_PROCESSES of them.

The supervisor (the process that was started) runs no ingest itself. It adopts spools
left by another process count, then starts each ingest process as ``python -m
analytics.main`` with its index in ``VORA_ANALYTICS_PROCESS``; they listen on the same
port with SO_REUSEPORT, so the kernel spreads connections across them. Each has its own
writer, ClickHouse connections and spool directory (``<spool>/process-<i>``, with an
equal share of the spool's size), and they share Prometheus metrics through files in a
directory of the supervisor's (``PROMETHEUS_MULTIPROC_DIR``).

SIGTERM or SIGINT to the supervisor is passed on: each process flushes or spools what it
holds, and the supervisor exits 0 when all have. A process that dies is started again
(its memory buffer is lost, as with a kill -9 of a single process; see docs/analytics.md);
one that keeps dying soon after it starts (a port in use, bad settings) stops the whole
service with exit 1 rather than loop. If the supervisor itself is killed, the kernel
sends its processes SIGTERM (PR_SET_PDEATHSIG), so none is left behind.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from prometheus_client import multiprocess

from analytics.spool import adopt_orphans
from vora.config import Settings
from vora.logs import get_logger

PROCESS_ENV = "VORA_ANALYTICS_PROCESS"
log = get_logger(__name__)
POLL_SECONDS = 0.2
# A process that exits this soon after it started counts as failing to start.
EARLY_EXIT_SECONDS = 10.0
MAX_EARLY_EXITS = 5
FIRST_RESTART_DELAY_SECONDS = 0.5
MAX_RESTART_DELAY_SECONDS = 30.0
STOP_GRACE_SECONDS = 25.0  # then a process still flushing is killed (systemd: 30 s)
_PR_SET_PDEATHSIG = 1


def process_index() -> int | None:
    """This ingest process's index when a supervisor started it, else None."""
    value = os.environ.get(PROCESS_ENV)
    return int(value) if value is not None else None


@dataclass
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.count = settings.analytics_processes
        self.metrics_dir = Path(tempfile.mkdtemp(prefix="vora-analytics-metrics-"))
        self.children: dict[int, _Child] = {}
        self.early_exits = 0
        self.restart_delay = FIRST_RESTART_DELAY_SECONDS
        self.stopping = False

    def run(self) -> int:
        """Supervise until stopped; the exit status for the service."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop_signal)
        moved = adopt_orphans(self.settings.spool_dir, self.count)
        log.info("starting ingest processes", processes=self.count, adopted_batches=moved)
        status = 1
        try:
            for index in range(self.count):
                self._start(index)
            status = self._watch()
        finally:
            if not self._stop_all():
                status = 1
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        log.info("ingest processes stopped", status=status)
        return status

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _start(self, index: int) -> None:
        env = {**os.environ, PROCESS_ENV: str(index),
               "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)}
        # preexec_fn is safe here: the supervisor runs no threads.
        process = subprocess.Popen([sys.executable, "-m", "analytics.main"], env=env,
                                   preexec_fn=functools.partial(_die_with, os.getpid()))
        self.children[index] = _Child(index, process)
        log.info("ingest process started", process=index, pid=process.pid)

    def _watch(self) -> int:
        while not self.stopping:
            time.sleep(POLL_SECONDS)
            for child in list(self.children.values()):
                code = child.process.poll()
                if code is None or self.stopping:
                    continue
                multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                    child.process.pid, str(self.metrics_dir))
                lived = time.monotonic() - child.started
                log.error("ingest process exited; starting it again", process=child.index,
                          pid=child.process.pid, exit_code=code, lived_seconds=round(lived, 1))
                if lived < EARLY_EXIT_SECONDS:
                    self.early_exits += 1
                    if self.early_exits >= MAX_EARLY_EXITS:
                        log.error("ingest processes keep exiting at start; stopping the "
                                  "service (their log above says why)",
                                  early_exits=self.early_exits)
                        return 1
                    time.sleep(self.restart_delay)
                    self.restart_delay = min(MAX_RESTART_DELAY_SECONDS,
                                             self.restart_delay * 2)
                else:
                    self.early_exits = 0
                    self.restart_delay = FIRST_RESTART_DELAY_SECONDS
                if not self.stopping:
                    self._start(child.index)
        return 0

    def _stop_all(self) -> bool:
        """SIGTERM every process (each flushes or spools), wait, kill what hangs; True
        when every one exited cleanly."""
        for child in self.children.values():
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children.values():
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("ingest process did not stop in time; killed", process=child.index,
                          pid=child.process.pid)
                child.process.kill()
                child.process.wait()
        failed = {child.index: child.process.returncode for child in self.children.values()
                  if child.process.returncode != 0}
        if failed:
            log.error("ingest processes did not exit cleanly", exit_codes=failed)
        return not failed


def _die_with(supervisor: int) -> None:
    """In the child before exec: SIGTERM when the supervisor dies, even by kill -9."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def supervise(settings: Settings) -> int:
    return Supervisor(settings).run()
