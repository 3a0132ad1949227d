"""Fixtures for the analytics tests: the real ClickHouse of the stack and ingesters run
as separate processes (python -m analytics.main), as the stack runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clickhouse_driver import Client

from tests.analytics.helpers import Ingester, free_port, get_json
from vora import devstack
from vora.config import Settings
from vora.migrate import clickhouse_client

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = ["postgres", "s3", "clickhouse"]


@pytest.fixture(scope="session")
def analytics_stack(settings: Settings) -> Settings:
    """Only what analytics needs (migrations need PostgreSQL and S3 up as well). A healthy
    stack is left alone: `up` re-renders supervisord.conf, and when this interpreter's path
    differs from the one `vora dev up` used (.venv/bin/python vs python3.11), supervisor's
    `update` stops the running services."""
    table = devstack.components(settings)
    if any(devstack.health(table[name]) for name in INFRA):
        devstack.up(settings, INFRA)
    return settings


@pytest.fixture
def clickhouse(analytics_stack: Settings) -> Iterator[Client]:
    client = clickhouse_client(analytics_stack)
    yield client
    client.disconnect()


@pytest.fixture
def clickhouse_outage(analytics_stack: Settings) -> Iterator[Callable[[], None]]:
    """Stops this stack's ClickHouse now; the returned callable (and teardown, always)
    starts it again and waits until it is healthy."""
    devstack.stop(analytics_stack, ["clickhouse"])

    def restore() -> None:
        if devstack.program_states(analytics_stack).get("clickhouse") != "RUNNING":
            devstack.start(analytics_stack, ["clickhouse"])
        devstack.wait_healthy(analytics_stack, ["clickhouse"], timeout=60)

    try:
        yield restore
    finally:
        restore()


def launch(spool_dir: Path, log_dir: Path, **overrides: str) -> Ingester:
    """Start `python -m analytics.main` on a free port and wait until it answers."""
    port = free_port()
    env = {**os.environ, "VORA_ANALYTICS_PORT": str(port),
           "VORA_ANALYTICS_SPOOL_DIR": str(spool_dir), "VORA_LOG_LEVEL": "WARNING",
           **{f"VORA_{key.upper()}": value for key, value in overrides.items()}}
    log_path = log_dir / f"ingester-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "analytics.main"], env=env,
                                   cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    ingester = Ingester(process, f"http://127.0.0.1:{port}")
    try:
        _wait_listening(ingester, log_path)
    except AssertionError:
        stop(ingester)
        raise
    return ingester


def stop(ingester: Ingester) -> None:
    """Graceful stop (SIGTERM, which flushes); SIGKILL only if it hangs."""
    process = ingester.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def start_ingester(analytics_stack: Settings, tmp_path: Path) -> Iterator[
        Callable[..., Ingester]]:
    """Starts ingesters for one test; all are stopped after it."""
    started: list[Ingester] = []

    def start(spool_dir: Path | None = None, **overrides: str) -> Ingester:
        started.append(launch(spool_dir or tmp_path / "spool", tmp_path, **overrides))
        return started[-1]

    yield start
    for ingester in started:
        stop(ingester)


def _wait_listening(ingester: Ingester, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ingester.process.poll() is not None:
            raise AssertionError(f"ingester exited at start:\n{log.read_text()}")
        try:
            get_json(f"{ingester.url}/healthz")
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"ingester did not answer within 20s:\n{log.read_text()}")
