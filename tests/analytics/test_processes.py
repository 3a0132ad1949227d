"""Several ingest processes on one port (VORA_ANALYTICS_PROCESSES), with the real
ClickHouse: connections spread over them, metrics summed, stops flush every one, a dead
process comes back, and a killed supervisor leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
from clickhouse_driver import Client
from prometheus_client.parser import text_string_to_metric_families

from analytics.events import parse_event
from tests.analytics.conftest import REPO_ROOT
from tests.analytics.helpers import Ingester, Poster, free_port, get_json, play_event
from vora import storage

TWO = {"analytics_processes": "2", "analytics_insert_connections": "1"}
# Never flush on their own during the test: only a stop can write these events.
HOLD = {"analytics_flush_seconds": "600", "analytics_batch_size": "100000"}


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.1)


def _start_two(start: Callable[..., Ingester], *args: Path, **overrides: str) -> Ingester:
    """Two ingest processes, both listening: the first to answer /healthz lets the
    ingester's start return, while the other may still be starting. Each /healthz call is
    a new connection, which the kernel gives to one of the listening processes."""
    ingester = start(*args, **TWO, **overrides)
    answered: set[int] = set()

    def both() -> bool:
        answered.add(get_json(f"{ingester.url}/healthz")["process"])
        return answered == {0, 1}

    _wait_for(both, 20, "both processes answering on the port")
    return ingester


def _metrics(ingester: Ingester) -> dict[str, float]:
    with urllib.request.urlopen(f"{ingester.url}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels}


def _post_on_fresh_connections(ingester: Ingester, video_id: str, connections: int,
                               per_connection: int) -> set[str]:
    """Each connection is a new one, which the kernel gives to one of the processes."""
    sent: set[str] = set()
    for _ in range(connections):
        events = [play_event(video_id, time.time()) for _ in range(per_connection)]
        poster = Poster(ingester.url)
        status, reply = poster.post(events)
        poster.close()
        assert status == 202 and reply["accepted"] == per_connection
        sent |= {str(e["event_id"]) for e in events}
    return sent


def _present(clickhouse: Client, video_id: str) -> list[str]:
    rows = clickhouse.execute("SELECT event_id FROM PlaybackEvents WHERE video_id = %(v)s",
                              {"v": video_id})
    return [row[0] for row in rows]


def test_connections_spread_over_the_processes_and_every_event_lands_once(
        start_ingester: Callable[..., Ingester], clickhouse: Client) -> None:
    ingester = _start_two(start_ingester)
    assert len(_children(ingester.process.pid)) == 2
    answered = {get_json(f"{ingester.url}/healthz")["process"] for _ in range(30)}
    assert answered == {0, 1}  # 30 connections all to one process: 2 ** -29
    video_id = storage.new_video_id()
    sent = _post_on_fresh_connections(ingester, video_id, 20, 100)
    _wait_for(lambda: _metrics(ingester)["vora_analytics_events_written_total"] >= len(sent),
              20, "every event written, summed over the processes")
    totals = _metrics(ingester)
    assert totals["vora_analytics_events_accepted_total"] == len(sent)
    assert totals["vora_analytics_buffered_events"] == 0
    assert totals["vora_analytics_clickhouse_up"] == 1
    summed = get_json(f"{ingester.url}/healthz")["all"]  # the same sums, for a person
    assert (summed["accepted_events"], summed["written_events"], summed["buffered_events"],
            summed["clickhouse"]) == (len(sent), len(sent), 0, "up")
    present = _present(clickhouse, video_id)
    assert sorted(present) == sorted(sent)  # each exactly once


def test_sigterm_flushes_every_process(start_ingester: Callable[..., Ingester],
                                       clickhouse: Client) -> None:
    ingester = _start_two(start_ingester, **HOLD)
    children = _children(ingester.process.pid)
    video_id = storage.new_video_id()
    sent = _post_on_fresh_connections(ingester, video_id, 20, 50)
    assert _metrics(ingester)["vora_analytics_buffered_events"] == len(sent)  # all in memory
    assert get_json(f"{ingester.url}/healthz")["all"]["buffered_events"] == len(sent)
    ingester.process.send_signal(signal.SIGTERM)
    assert ingester.process.wait(timeout=30) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)
    assert set(_present(clickhouse, video_id)) == sent


def test_a_killed_process_is_started_again(start_ingester: Callable[..., Ingester],
                                           clickhouse: Client) -> None:
    ingester = _start_two(start_ingester)
    video_id = storage.new_video_id()
    first = _post_on_fresh_connections(ingester, video_id, 10, 20)
    _wait_for(lambda: _metrics(ingester)["vora_analytics_events_written_total"] >= len(first),
              20, "the first events written")
    children = _children(ingester.process.pid)
    victim = min(children)
    os.kill(victim, signal.SIGKILL)
    _wait_for(lambda: len(_children(ingester.process.pid) - {victim}) == 2, 20,
              "a new process in place of the killed one")
    assert ingester.process.poll() is None
    second = _post_on_fresh_connections(ingester, video_id, 10, 20)
    everything = len(first) + len(second)
    # The dead process's counts stay in the sums: counters never go back.
    _wait_for(lambda: _metrics(ingester)["vora_analytics_events_written_total"] >= everything,
              20, "the later events written")
    assert set(_present(clickhouse, video_id)) == first | second


def test_a_killed_supervisor_takes_its_processes_down_and_they_flush(
        start_ingester: Callable[..., Ingester], clickhouse: Client) -> None:
    ingester = _start_two(start_ingester, **HOLD)
    children = _children(ingester.process.pid)
    video_id = storage.new_video_id()
    sent = _post_on_fresh_connections(ingester, video_id, 20, 50)
    ingester.process.kill()
    ingester.process.wait()
    _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 30,
              "the processes exit after their supervisor")
    assert set(_present(clickhouse, video_id)) == sent  # SIGTERM from the kernel: flushed


def test_a_batch_spooled_by_a_single_process_run_is_replayed_by_two(
        start_ingester: Callable[..., Ingester], clickhouse: Client, tmp_path: Path) -> None:
    spool = tmp_path / "from-one"
    spool.mkdir()
    video_id = storage.new_video_id()
    events = [play_event(video_id, time.time()) for _ in range(5)]
    rows = [parse_event(event, time.time()) for event in events]
    (spool / f"{0:016d}-{len(rows)}.batch").write_bytes(orjson.dumps(rows))
    ingester = _start_two(start_ingester, spool)
    _wait_for(lambda: len(_present(clickhouse, video_id)) == len(rows), 20,
              "the adopted batch replayed")
    assert not list(spool.glob("*.batch"))
    assert _metrics(ingester)["vora_analytics_events_replayed_total"] == len(rows)


def test_processes_that_cannot_start_stop_the_service_with_the_reason(tmp_path: Path) -> None:
    """A port held by a program without SO_REUSEPORT: every process fails to listen; the
    supervisor gives up after a few quick exits instead of restarting forever."""
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        env = {**os.environ, "VORA_ANALYTICS_PORT": str(port), "VORA_LOG_LEVEL": "INFO",
               "VORA_ANALYTICS_SPOOL_DIR": str(tmp_path / "spool"),
               "VORA_ANALYTICS_PROCESSES": "2"}
        result = subprocess.run([sys.executable, "-m", "analytics.main"], env=env,
                                cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                                check=False)
    assert result.returncode == 1
    assert "Address already in use" in result.stderr + result.stdout
    assert "keep exiting at start" in result.stderr + result.stdout
