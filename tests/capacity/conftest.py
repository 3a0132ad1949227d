"""Fixtures for the farm capacity tests: a control process with a short LOST window and
one-second sampling, and real farm worker processes, on this checkout's stack.

Control runs as ``python -m control.main`` on free ports against a fresh database of the
stack's PostgreSQL, in the Temporal namespace ``vora-capacity-tests`` (so the stack's own
farm and control worker never see the tasks these tests queue). Farm workers run as
``python -m farm.main`` against that control with a one-second heartbeat.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from control.auth import mint_token
from tests.control.conftest import create_database, drop_database, free_port
from vora import devstack
from vora.config import Settings

NAMESPACE = "vora-capacity-tests"
LOST_AFTER_SECONDS = 3.0
FORGET_AFTER_SECONDS = 600.0  # tests backdate a node's last heartbeat past it
# The activity heartbeat timeout the tests' transcode workflow uses; control must know it
# to tell whether Temporal already counts a lost node's job in its backlog.
ACTIVITY_HEARTBEAT_TIMEOUT_SECONDS = 8
ROOT = Path(__file__).resolve().parents[2]
_REGISTERED = re.compile(r'"node_id": "([A-Za-z0-9._-]+)"')


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class ControlProcess:
    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.settings.control_http_port}"

    @property
    def service_headers(self) -> dict[str, str]:
        return {"x-vora-service-token": self.settings.service_token}

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path, headers=headers or {})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 (http only)
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def api(self, path: str) -> Any:
        status, body = self.get(path, self.service_headers)
        assert status == 200, body
        return body

    def node(self, node_id: str) -> dict[str, Any] | None:
        nodes = self.api("/v1/farm/nodes")["nodes"]
        return next((n for n in nodes if n["node_id"] == node_id), None)

    def known_node(self, node_id: str) -> dict[str, Any]:
        node = self.node(node_id)
        assert node is not None, f"control does not list node {node_id}"
        return node

    def user_token(self, subject: str = "alice") -> str:
        return mint_token(self.settings, subject)


@dataclass
class FarmProcess:
    process: subprocess.Popen[bytes]
    log: Path
    node_id: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test paused it
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _env(settings: Settings, **values: object) -> dict[str, str]:
    env = dict(os.environ)
    env.update({f"VORA_{k.upper()}": str(v) for k, v in values.items()})
    env["VORA_PG_DATABASE"] = settings.pg_database
    env["VORA_TEMPORAL_NAMESPACE"] = NAMESPACE
    env["VORA_LOG_FORMAT"] = "json"
    return env


@pytest.fixture(scope="session")
def capacity_settings(settings: Settings) -> Iterator[Settings]:
    import asyncio

    devstack.up(settings, devstack.INFRA)
    asyncio.run(ensure_namespace_named(settings))
    fresh = create_database(settings)
    yield fresh.model_copy(update={
        "temporal_namespace": NAMESPACE, "control_grpc_port": free_port(),
        "control_http_port": free_port(), "node_lost_after_seconds": LOST_AFTER_SECONDS,
        "node_heartbeat_seconds": 1, "capacity_sample_seconds": 1.0,
        "node_forget_after_seconds": FORGET_AFTER_SECONDS,
        "farm_heartbeat_timeout_seconds": ACTIVITY_HEARTBEAT_TIMEOUT_SECONDS})
    drop_database(fresh)


async def ensure_namespace_named(settings: Settings) -> None:
    client = await Client.connect(settings.temporal_address)
    try:
        await client.workflow_service.register_namespace(RegisterNamespaceRequest(
            namespace=NAMESPACE, workflow_execution_retention_period=Duration(seconds=86400)))
    except RPCError as exc:
        if "already" not in str(exc).lower():
            raise


@pytest.fixture(scope="session")
def control(capacity_settings: Settings, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[ControlProcess]:
    s = capacity_settings
    log = tmp_path_factory.mktemp("control") / "control.log"
    env = _env(s, control_grpc_port=s.control_grpc_port, control_http_port=s.control_http_port,
               node_lost_after_seconds=s.node_lost_after_seconds, node_heartbeat_seconds=1,
               capacity_sample_seconds=1, node_forget_after_seconds=FORGET_AFTER_SECONDS,
               farm_heartbeat_timeout_seconds=ACTIVITY_HEARTBEAT_TIMEOUT_SECONDS)
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "control.main"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    running = ControlProcess(s, process, log)

    def healthy() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            return running.get("/healthz")[0] == 200
        except OSError:
            return False

    wait_for(healthy, 30, "control /healthz")
    yield running
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def start_farm(control: ControlProcess, tmp_path: Path) -> Iterator[Any]:
    """Starts real farm workers (``python -m farm.main``) against the test control; each is
    returned once control lists it, and stopped at the end of the test."""
    started: list[FarmProcess] = []

    def start(cpu_slots: int = 2, x264_preset: str = "ultrafast") -> FarmProcess:
        log = tmp_path / f"farm-{len(started)}.log"
        s = control.settings
        env = _env(s, control_grpc_port=s.control_grpc_port, farm_metrics_port=free_port(),
                   farm_cpu_slots=cpu_slots, farm_pipeline="cpu", farm_x264_preset=x264_preset,
                   farm_scratch_dir=tmp_path / f"scratch-{len(started)}")
        with log.open("wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "farm.main"], cwd=ROOT, env=env,
                                       stdout=out, stderr=subprocess.STDOUT)
        farm = FarmProcess(process, log, env=env)
        started.append(farm)

        def registered() -> str:
            assert process.poll() is None, log.read_text()[-3000:]
            for line in log.read_text(errors="replace").splitlines():
                if "registered with control" in line:
                    match = _REGISTERED.search(line)
                    if match:
                        return match.group(1)
            return ""

        farm.node_id = wait_for(registered, 30, "the farm worker to register")
        wait_for(lambda: control.node(farm.node_id), 5, "control to list the node")
        return farm

    yield start
    for farm in started:
        farm.stop()
