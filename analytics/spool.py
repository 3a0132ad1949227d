"""A bounded, fsynced disk spool of event batches, replayed oldest first.

One file per batch, named ``{sequence:016d}-{events}.batch``: the sequence keeps replay
in arrival order across restarts and the event count lets a dropped file be counted
without reading it. A batch is written to a temporary file, fsynced, renamed into place
and the directory fsynced, so after a crash (kill -9, power loss) a batch is either
entirely in the spool or not at all; leftover temporary files are removed at start.

The spool is synchronous and thread-safe: the writer calls it from a worker thread so
disk waits never stall the IOLoop.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import orjson

from analytics import metrics
from analytics.events import Row
from vora.logs import get_logger

log = get_logger(__name__)
_NAME_RE = re.compile(r"^(\d{16})-(\d+)\.batch$")


def spool_dirs(root: Path, processes: int) -> list[Path]:
    """Where each ingest process keeps its spool: ``root`` itself when there is one
    process, ``root/process-<i>`` for each of several (a spool has one writer)."""
    if processes == 1:
        return [root]
    return [root / f"process-{index}" for index in range(processes)]


def adopt_orphans(root: Path, processes: int) -> int:
    """Move the batches of spool directories no process uses any more (left by a run with
    another VORA_ANALYTICS_PROCESSES) into the first process's spool, in their order and
    after its own, so they are replayed rather than forgotten. Call it before any spool is
    opened. Returns how many batches moved."""
    in_use = spool_dirs(root, processes)
    sources = [path for path in sorted(root.glob("process-*"))
               if path.is_dir() and path not in in_use]
    if processes > 1:
        sources.insert(0, root)
    target = in_use[0]
    target.mkdir(parents=True, exist_ok=True)
    names = [path.name for path in target.iterdir() if _NAME_RE.match(path.name)]
    sequence = max((int(name[:16]) for name in names), default=-1) + 1
    moved = 0
    for source in sources:
        for path in sorted(source.iterdir()):
            match = _NAME_RE.match(path.name)
            if not match:
                continue
            os.replace(path, target / f"{sequence:016d}-{match[2]}.batch")
            sequence += 1
            moved += 1
        if source != root:
            with contextlib.suppress(OSError):  # kept when corrupt/ or anything else is left
                source.rmdir()
    if moved:
        _fsync_directory(target)
        log.warning("spooled batches adopted from unused spool directories",
                    batches=moved, into=str(target))
    return moved


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class SpooledBatch:
    name: str
    rows: list[Row]


@dataclass(frozen=True)
class SpoolDepth:
    batches: int
    events: int
    bytes: int


@dataclass(frozen=True)
class _Entry:
    name: str
    events: int
    size: int


class DiskSpool:
    """Contract: ``append`` returns only after the batch is durable on disk, or raises
    OSError; ``oldest`` never returns a partly written batch; the total size stays within
    ``max_bytes`` by dropping the oldest batches, whose events ``append`` returns.
    Appends come from one thread at a time; ``depth`` may be called from any thread."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        # Oldest first (dicts keep insertion order), with running totals so that depth and
        # room checks stay O(1) however many batches a long outage leaves.
        self._entries: dict[str, _Entry] = {}
        self._events = 0
        self._bytes = 0
        for path in sorted(directory.iterdir()):
            match = _NAME_RE.match(path.name)
            if match:
                self._add(_Entry(path.name, int(match[2]), path.stat().st_size))
        last = next(reversed(self._entries), None)
        self._next = int(last[:16]) + 1 if last else 0

    def _add(self, entry: _Entry) -> None:
        self._entries[entry.name] = entry
        self._events += entry.events
        self._bytes += entry.size

    def _forget(self, name: str) -> None:
        entry = self._entries.pop(name, None)
        if entry is not None:
            self._events -= entry.events
            self._bytes -= entry.size

    def depth(self) -> SpoolDepth:
        with self._lock:
            return SpoolDepth(len(self._entries), self._events, self._bytes)

    def append(self, rows: list[Row]) -> int:
        """Write one batch durably; returns how many older events were dropped for room."""
        data = orjson.dumps(rows)
        if len(data) > self.max_bytes:
            log.error("batch larger than the whole spool, dropped", events=len(rows),
                      bytes=len(data), spool_max_bytes=self.max_bytes)
            return len(rows)
        # The lock guards the bookkeeping only: the slow fsyncs run outside it, so depth()
        # never waits on the disk.
        with self._lock:
            dropped = self._make_room(len(data))
            name = f"{self._next:016d}-{len(rows)}.batch"
            self._next += 1
        self._write_durably(self.directory / name, data)
        with self._lock:
            self._add(_Entry(name, len(rows), len(data)))
        return dropped

    def _make_room(self, incoming: int) -> int:
        dropped = 0
        while self._entries and self._bytes + incoming > self.max_bytes:
            oldest = self._entries[next(iter(self._entries))]
            self._forget(oldest.name)
            (self.directory / oldest.name).unlink(missing_ok=True)
            dropped += oldest.events
            log.warning("spool full, oldest batch dropped", batch=oldest.name,
                        events=oldest.events)
        return dropped

    def _write_durably(self, path: Path, data: bytes) -> None:
        temporary = path.with_suffix(".tmp")
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_directory(self.directory)

    def oldest(self) -> SpooledBatch | None:
        """The oldest batch; a file that cannot be read back is set aside and skipped."""
        while True:
            with self._lock:
                if not self._entries:
                    return None
                entry = self._entries[next(iter(self._entries))]
            try:
                rows = orjson.loads((self.directory / entry.name).read_bytes())
                return SpooledBatch(entry.name, [cast(Row, tuple(row)) for row in rows])
            except FileNotFoundError:
                self.remove(entry.name)  # dropped for room meanwhile
            except (ValueError, TypeError):  # not JSON, or not an array of rows
                self.quarantine(entry.name)
                metrics.DROPPED.labels(reason="unreadable_spool_file").inc(entry.events)

    def remove(self, name: str) -> None:
        """Forget a replayed batch; removing one already dropped is fine."""
        with self._lock:
            self._forget(name)
            (self.directory / name).unlink(missing_ok=True)

    def quarantine(self, name: str) -> None:
        """Set a batch aside in ``corrupt/`` for a person to look at; it is not replayed."""
        corrupt = self.directory / "corrupt"
        corrupt.mkdir(exist_ok=True)
        log.error("spool batch set aside", batch=name, moved_to=str(corrupt))
        with self._lock:
            self._forget(name)
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.directory / name, corrupt / name)
