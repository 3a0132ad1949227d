"""The disk spool: durable batches, replay order across restarts, bounded size."""

from __future__ import annotations

from pathlib import Path

import orjson

from analytics.events import Row
from analytics.spool import DiskSpool, adopt_orphans, spool_dirs


def rows(n: int, tag: str) -> list[Row]:
    return [(f"{tag}-{i:08d}", "0b6f8a5e-2d4c-4d1e-9a7b-3c2e1f0a9b8c", "u", "", "play",
             1_780_000_000, 0, 1_780_000_000, float(i), "720p", 0.0) for i in range(n)]


def test_batches_come_back_oldest_first_even_after_a_restart(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, 10**6)
    spool.append(rows(3, "a"))
    spool.append(rows(2, "b"))
    reopened = DiskSpool(tmp_path, 10**6)
    reopened.append(rows(1, "c"))
    seen = []
    while (batch := reopened.oldest()) is not None:
        seen.append(batch.rows)
        reopened.remove(batch.name)
    assert seen == [rows(3, "a"), rows(2, "b"), rows(1, "c")]
    assert reopened.depth().batches == 0


def test_a_full_spool_drops_the_oldest_and_says_how_many(tmp_path: Path) -> None:
    size = len(orjson.dumps(rows(10, "x")))
    spool = DiskSpool(tmp_path / "s", 3 * size)
    assert [spool.append(rows(10, tag)) for tag in "abc"] == [0, 0, 0]
    assert spool.append(rows(10, "d")) == 10
    oldest = spool.oldest()
    assert oldest is not None and oldest.rows == rows(10, "b")
    assert spool.depth().events == 30 and spool.depth().bytes <= 3 * size


def test_a_batch_larger_than_the_spool_is_dropped(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, 100)
    assert spool.append(rows(10, "a")) == 10
    assert spool.depth().batches == 0


def test_half_written_and_corrupt_files_never_replay(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, 10**6)
    spool.append(rows(2, "a"))
    (tmp_path / "0000000000000099-5.tmp").write_bytes(b'[["half')  # a crash mid-write
    (tmp_path / "0000000000000000-2.batch").write_bytes(b'[["torn')  # disk damage
    spool.append(rows(1, "b"))
    reopened = DiskSpool(tmp_path, 10**6)
    assert not list(tmp_path.glob("*.tmp"))
    batch = reopened.oldest()
    assert batch is not None and batch.rows == rows(1, "b")
    assert (tmp_path / "corrupt" / "0000000000000000-2.batch").exists()


def test_json_that_is_not_rows_is_set_aside(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, 10**6)
    spool.append(rows(1, "a"))
    (tmp_path / "0000000000000000-1.batch").write_bytes(b"[1, 2]")  # JSON, but no rows
    spool.append(rows(1, "b"))
    batch = spool.oldest()
    assert batch is not None and batch.rows == rows(1, "b")
    assert (tmp_path / "corrupt" / "0000000000000000-1.batch").exists()


def _drain(spool: DiskSpool) -> list[list[Row]]:
    seen = []
    while (batch := spool.oldest()) is not None:
        seen.append(batch.rows)
        spool.remove(batch.name)
    return seen


def test_spools_left_by_another_process_count_are_adopted_in_order(tmp_path: Path) -> None:
    """From one process to two: the top directory's batches and those of a process that
    no longer exists move into process 0's spool, after its own and in their order."""
    DiskSpool(tmp_path, 10**6).append(rows(2, "single-1"))
    DiskSpool(tmp_path, 10**6).append(rows(1, "single-2"))
    DiskSpool(tmp_path / "process-0", 10**6).append(rows(1, "own"))
    DiskSpool(tmp_path / "process-3", 10**6).append(rows(3, "gone"))
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "0000000000000000-1.batch").write_bytes(b"not json")

    assert adopt_orphans(tmp_path, 2) == 3
    assert spool_dirs(tmp_path, 2) == [tmp_path / "process-0", tmp_path / "process-1"]
    assert not list(tmp_path.glob("*.batch")) and not (tmp_path / "process-3").exists()
    assert (tmp_path / "corrupt" / "0000000000000000-1.batch").exists()  # left for a person
    first = DiskSpool(tmp_path / "process-0", 10**6)
    assert first.depth().events == 7
    assert _drain(first) == [rows(1, "own"), rows(2, "single-1"), rows(1, "single-2"),
                             rows(3, "gone")]
    assert adopt_orphans(tmp_path, 2) == 0  # nothing left to move


def test_back_to_one_process_the_per_process_spools_are_adopted(tmp_path: Path) -> None:
    DiskSpool(tmp_path / "process-0", 10**6).append(rows(1, "p0"))
    DiskSpool(tmp_path / "process-1", 10**6).append(rows(2, "p1"))
    assert adopt_orphans(tmp_path, 1) == 2
    assert spool_dirs(tmp_path, 1) == [tmp_path]
    assert not list(tmp_path.glob("process-*"))
    assert _drain(DiskSpool(tmp_path, 10**6)) == [rows(1, "p0"), rows(2, "p1")]
