"""Analytics ingest: events over HTTP through `python -m analytics.main` into ClickHouse,
against direct clickhouse-driver bulk inserts of the same events, alternately.

Vora's figure counts until the ingester reports every accepted event written (in
ClickHouse, not merely acknowledged); the reference inserts the same rows in batches of
the same size, both columnar (as Vora's writer does) and row-wise, and counts the method
with the better median. Vora runs one ingest process per core (VORA_ANALYTICS_PROCESSES),
as a node would, and is sent 500-event requests over 32 keep-alive connections (few
connections would leave the processes' shares of them to chance).
Both write to PlaybackEvents in a database of the benchmark's own (vora_bench_analytics,
created by the migrations at the start and dropped at the end, so no run inherits the
merges of the runs before it and the stack's own table gets no fake events), and each
side starts once ClickHouse has finished merging what the previous one wrote. Needs the
local stack's ClickHouse (`vora dev up postgres s3 clickhouse`).

    python -m bench.analytics [--rounds 5] [--events 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from clickhouse_driver import Client
from prometheus_client.parser import text_string_to_metric_families

from analytics.events import EventColumns, Row, parse_event
from analytics.sink import INSERT_SQL
from bench.harness import Report, alternate, figure, save, show
from vora import devstack, storage
from vora.config import Settings, load_settings
from vora.migrate import clickhouse_client, migrate_clickhouse

EVENTS = 100_000
ROUNDS = 5  # short rounds on a shared machine: more of them steady the medians
REQUEST_EVENTS = 500
WRITER_BATCH = 5000
CLIENTS = 32
# One ingest process per core, as on a production node (VORA_ANALYTICS_PROCESSES), each
# inserting over one connection.
PROCESSES = os.cpu_count() or 1
# Acknowledgement latency is measured apart, with requests the size a player sends.
PLAYER_EVENTS = 20
PLAYER_REQUESTS = 1000
REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "vora_bench_analytics"
DROP_TIMEOUT_SECONDS = 600
SETTLE_SECONDS = 15  # at most, waiting for ClickHouse's merges before a measurement


def _events(count: int) -> list[dict[str, Any]]:
    now = time.time()
    video_ids = [storage.new_video_id() for _ in range(10)]
    return [{"event_id": str(uuid.uuid4()), "video_id": video_ids[i % 10],
             "user_id": f"viewer-{i % 5000}", "session_id": f"s-{i % 20000}",
             "event_type": "heartbeat", "event_time": now - i / 100, "position": i / 10,
             "rendition": "720p"} for i in range(count)]


def _health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:  # noqa: S310
        body: dict[str, Any] = json.loads(response.read())
        return body


class Ingester:
    def __init__(self, spool: Path, database: str) -> None:
        self.port = _free_port()
        env = {**os.environ, "VORA_ANALYTICS_PORT": str(self.port),
               "VORA_CLICKHOUSE_DATABASE": database,
               "VORA_ANALYTICS_SPOOL_DIR": str(spool), "VORA_LOG_LEVEL": "WARNING",
               "VORA_ANALYTICS_BATCH_SIZE": str(WRITER_BATCH),
               "VORA_ANALYTICS_FLUSH_SECONDS": "0.05",
               "VORA_ANALYTICS_PROCESSES": str(PROCESSES),
               "VORA_ANALYTICS_INSERT_CONNECTIONS": "1" if PROCESSES > 1 else "2"}
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "analytics.main"], env=env,
                                        cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
        # Until every process answers: each /healthz is a new connection, which the kernel
        # gives only to processes already listening.
        deadline = time.monotonic() + 20
        answered: set[int] = set()
        while answered != set(range(PROCESSES)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"ingest processes {sorted(answered)} of {PROCESSES} "
                                   "answered within 20 s")
            try:
                answered.add(_health(self.url)["process"])
            except OSError:
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def _counters(url: str) -> dict[str, float]:
    """The ingester's counters, summed over its processes by /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name.endswith("_total")}


def _drop_database(settings: Settings) -> None:
    # ClickHouse 18.16 drops a table only after its merges stop: after a full run that
    # took 30-60 s here, longer than the driver's usual timeout.
    admin = Client(host=settings.clickhouse_host, port=settings.clickhouse_port,
                   user=settings.clickhouse_user, password=settings.clickhouse_password,
                   database="default", send_receive_timeout=DROP_TIMEOUT_SECONDS)
    try:
        admin.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
    finally:
        admin.disconnect()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _post_all(url: str, requests: list[bytes], latencies: list[float]) -> None:
    """Send prepared requests (see requests_of) on one keep-alive connection, each after
    the answer to the one before, reading answers by their Content-Length. A lean client:
    http.client parses every answer's headers with the email package, and on two cores
    the load generator's CPU is taken from the ingester it measures."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock, \
            sock.makefile("rb") as answers:
        for request in requests:
            started = time.perf_counter()
            sock.sendall(request)
            status = answers.readline()
            length = 0
            while (line := answers.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answers.read(length)
            latencies.append(time.perf_counter() - started)
            if status.split()[1:2] != [b"202"]:
                raise RuntimeError(f"ingest answered {status!r}")


def _settle(client: Client) -> None:
    """Wait until ClickHouse merges nothing (what the last side wrote, or the stack's own
    tables: a merge anywhere takes CPU from whichever side runs next)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline and client.execute(
            "SELECT count() FROM system.merges")[0][0]:
        time.sleep(0.1)


def _insert(client: Client, events: EventColumns, start: int, stop: int) -> None:
    """One bulk insert of the same kind as Vora's writer makes (columnar)."""
    client.execute(INSERT_SQL, [column[start:stop] for column in events.columns],
                   types_check=False, columnar=True)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(rounds: int = ROUNDS, count: int = EVENTS) -> Report:
    settings = load_settings()
    infra = ["postgres", "s3", "clickhouse"]
    table = devstack.components(settings)
    if any(devstack.health(table[name]) for name in infra):  # `up` could restart services
        devstack.up(settings, infra)
    events = _events(count)
    bodies = requests_of(bodies_of(events, REQUEST_EVENTS))
    received = time.time()
    rows: list[Row] = [parse_event(event, received) for event in events]
    columns = EventColumns.from_rows(rows)
    # A database of the benchmark's own, new each run: the stack's table keeps what every
    # earlier run wrote (it had 90 million rows, whose merges took 0.7 of a core
    # throughout), so results drifted run after run, and dashboards saw fake events.
    database = BENCH_DATABASE
    settings = settings.model_copy(update={"clickhouse_database": database})
    _drop_database(settings)
    migrate_clickhouse(settings)
    client = clickhouse_client(settings)
    http_acks: list[list[float]] = []
    row_wise: list[float] = []
    columnar: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as spool:
            ingester = Ingester(Path(spool), database)

            def vora() -> float:
                _settle(client)
                before = _counters(ingester.url)
                latencies: list[float] = []
                started = time.perf_counter()
                threads = [threading.Thread(target=_post_all,
                                            args=(ingester.url, bodies[n::CLIENTS], latencies))
                           for n in range(CLIENTS)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                written = "vora_analytics_events_written_total"
                while True:
                    now = _counters(ingester.url)
                    if now[written] - before[written] >= count:
                        break
                    time.sleep(0.01)
                elapsed = time.perf_counter() - started
                spooled = "vora_analytics_events_spooled_total"
                if now[spooled] != before[spooled]:
                    raise RuntimeError("events went to the spool: ClickHouse was not keeping up")
                http_acks.append(latencies)
                return count / elapsed

            def direct_columnar() -> float:
                _settle(client)
                started = time.perf_counter()
                for i in range(0, count, WRITER_BATCH):
                    _insert(client, columns, i, i + WRITER_BATCH)
                columnar.append(count / (time.perf_counter() - started))
                return columnar[-1]

            def direct_row_wise() -> float:
                _settle(client)
                started = time.perf_counter()
                for i in range(0, count, WRITER_BATCH):
                    client.execute(INSERT_SQL, rows[i:i + WRITER_BATCH], types_check=False)
                row_wise.append(count / (time.perf_counter() - started))
                return row_wise[-1]

            def direct() -> float:
                """Both of the driver's ways to insert, each measured every round, in turns
                first. The figure is the one with the better median: the faster of two
                noisy runs in each round would flatter the reference."""
                pair = (direct_columnar, direct_row_wise)
                return min(f() for f in (pair if len(columnar) % 2 == 0 else pair[::-1]))

            player_bodies = requests_of(
                bodies_of(events[:PLAYER_EVENTS * PLAYER_REQUESTS], PLAYER_EVENTS))

            def vora_ack() -> float:
                latencies: list[float] = []
                _post_all(ingester.url, player_bodies, latencies)
                return _percentile(latencies, 0.99) * 1000

            def direct_ack() -> float:
                latencies: list[float] = []
                for i in range(0, PLAYER_EVENTS * PLAYER_REQUESTS, PLAYER_EVENTS):
                    started = time.perf_counter()
                    _insert(client, columns, i, i + PLAYER_EVENTS)
                    latencies.append(time.perf_counter() - started)
                return _percentile(latencies, 0.99) * 1000

            try:
                ours, _ = alternate(rounds, vora, direct)
                theirs = max(columnar, row_wise, key=statistics.median)
                ack_ours, ack_theirs = alternate(rounds, vora_ack, direct_ack)
            finally:
                ingester.stop()
    finally:
        client.disconnect()
        _drop_database(settings)
    return Report("analytics", [
        figure("sustained ingest", "events/s", ours, theirs, "clickhouse-driver bulk insert",
               goal=">= 0.5x and >= 20k events/s"),
        figure(f"ack p99, {PLAYER_EVENTS}-event requests", "ms", ack_ours, ack_theirs,
               "synchronous insert of the same events", higher_is_better=False,
               goal="< 10 ms"),
    ], notes=[
        f"{count} events per round, {REQUEST_EVENTS} per HTTP request over {CLIENTS} "
        f"keep-alive connections, writer and reference batches of {WRITER_BATCH}; "
        "vora is timed until every event is written to ClickHouse, not until acknowledged",
        f"reference: the better by median of columnar ({statistics.median(columnar):,.0f} "
        f"events/s) and row-wise ({statistics.median(row_wise):,.0f} events/s) inserts of "
        "the same rows, both measured every round; Vora's "
        f"writer inserts columnar; Vora runs {PROCESSES} ingest process(es) (one per core, "
        "VORA_ANALYTICS_PROCESSES) sharing the port",
        f"both write to PlaybackEvents in {BENCH_DATABASE}, a database created empty for "
        "this run and dropped after it; each side starts when ClickHouse has no merge "
        "running",
        f"during sustained ingest, ack p50 "
        f"{statistics.median([_percentile(a, 0.5) for a in http_acks]) * 1000:.1f} ms, p99 "
        f"{statistics.median([_percentile(a, 0.99) for a in http_acks]) * 1000:.1f} ms "
        f"per {REQUEST_EVENTS}-event request",
        f"ack latency: {PLAYER_REQUESTS} sequential requests of {PLAYER_EVENTS} events on one "
        "connection, against a synchronous clickhouse-driver insert of the same events",
    ])


def bodies_of(events: list[dict[str, Any]], size: int) -> list[bytes]:
    return [json.dumps(events[i:i + size]).encode() for i in range(0, len(events), size)]


def requests_of(bodies: list[bytes]) -> list[bytes]:
    """Each body as a whole HTTP/1.1 POST to /v1/events."""
    return [b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body) for body in bodies]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--events", type=int, default=EVENTS, help="events per round")
    args = parser.parse_args()
    report = run(args.rounds, args.events)
    show(report)
    print(f"  written: {save(report)}")


if __name__ == "__main__":
    main()
