"""Fixtures for control's tests: a private database and Temporal namespace on the real
stack, and a control process (gRPC + REST + relay) running in the test's event loop.

Each test session gets its own PostgreSQL database (migrated from vora/migrations) and
runs workflows in the ``vora-control-tests`` namespace, so the stack's own control and
worker never see the rows and workflows these tests make.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import psycopg
import pytest
from google.protobuf.duration_pb2 import Duration
from psycopg import sql
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client, WorkflowExecutionDescription
from temporalio.service import RPCError

from control import main as control_main
from control.activities import BookkeepingActivities
from control.auth import mint_token
from vora import devstack
from vora.config import Settings
from vora.grpcio import SERVICE_TOKEN_METADATA
from vora.migrate import migrate_postgres
from vora.v1 import upload_pb2, upload_pb2_grpc, video_pb2_grpc

TEST_NAMESPACE = "vora-control-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def infra(settings: Settings) -> Settings:
    """PostgreSQL and Temporal of this checkout's stack, healthy (started if needed)."""
    devstack.up(settings, devstack.INFRA)
    return settings


def create_database(settings: Settings) -> Settings:
    """A fresh, migrated database on the stack's server; returns settings that use it."""
    name = f"vora_ctl_{secrets.token_hex(4)}"
    admin = settings.model_copy(update={"pg_database": "postgres"})
    with psycopg.connect(admin.pg_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    fresh = settings.model_copy(update={"pg_database": name})
    migrate_postgres(fresh)
    return fresh


def drop_database(settings: Settings) -> None:
    admin = settings.model_copy(update={"pg_database": "postgres"})
    with psycopg.connect(admin.pg_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(settings.pg_database)))


async def ensure_namespace(settings: Settings) -> None:
    client = await Client.connect(settings.temporal_address)
    try:
        await client.workflow_service.register_namespace(RegisterNamespaceRequest(
            namespace=TEST_NAMESPACE,
            workflow_execution_retention_period=Duration(seconds=24 * 3600)))
    except RPCError as exc:
        if "already" not in str(exc).lower():
            raise


@pytest.fixture(scope="session")
async def test_settings(infra: Settings) -> AsyncIterator[Settings]:
    """Settings for this session: own database, own namespace, free ports, fast relay."""
    await ensure_namespace(infra)
    fresh = create_database(infra)
    yield fresh.model_copy(update={
        "temporal_namespace": TEST_NAMESPACE, "control_grpc_port": free_port(),
        "control_http_port": free_port(), "outbox_poll_seconds": 0.2,
        "pg_connect_timeout_seconds": 1.0,
    })
    drop_database(fresh)


@pytest.fixture(scope="session")
async def control(test_settings: Settings) -> AsyncIterator[control_main.Control]:
    running = await control_main.build(test_settings)
    await control_main.start(running)
    yield running
    await control_main.stop(running)


@pytest.fixture(scope="session")
async def temporal(test_settings: Settings) -> AsyncIterator[Client]:
    """A client of the test namespace; the workflows the tests started (no worker runs
    them there) are terminated at the end."""
    yield await Client.connect(test_settings.temporal_address, namespace=TEST_NAMESPACE)
    client = await Client.connect(test_settings.temporal_address, namespace=TEST_NAMESPACE)
    async for execution in client.list_workflows("ExecutionStatus = 'Running'"):
        with contextlib.suppress(RPCError):
            await client.get_workflow_handle(execution.id, run_id=execution.run_id).terminate(
                reason="control tests finished")


@pytest.fixture(scope="session")
async def channel(control: control_main.Control) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(control.settings.control_grpc_target) as chan:
        yield chan


@pytest.fixture(scope="session")
def videos_stub(channel: grpc.aio.Channel) -> video_pb2_grpc.VideoServiceAsyncStub:
    return video_pb2_grpc.VideoServiceStub(channel)


@pytest.fixture(scope="session")
def uploads_stub(channel: grpc.aio.Channel) -> upload_pb2_grpc.UploadCallbackServiceAsyncStub:
    return upload_pb2_grpc.UploadCallbackServiceStub(channel)


@pytest.fixture(scope="session")
def bookkeeping(control: control_main.Control) -> BookkeepingActivities:
    """The activities the control worker registers, on the test database's pool."""
    return BookkeepingActivities(control.pool)


@dataclass(frozen=True)
class User:
    """A user of the API: their subject and the metadata/headers that authenticate them."""

    subject: str
    token: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_user(settings: Settings, prefix: str) -> User:
    subject = f"{prefix}-{secrets.token_hex(4)}"
    return User(subject, mint_token(settings, subject))


@pytest.fixture
def alice(test_settings: Settings) -> User:
    return make_user(test_settings, "alice")


@pytest.fixture
def bob(test_settings: Settings) -> User:
    return make_user(test_settings, "bob")


@pytest.fixture(scope="session")
def service_metadata(test_settings: Settings) -> tuple[tuple[str, str], ...]:
    return ((SERVICE_TOKEN_METADATA, test_settings.service_token),)


async def report_upload(stub: upload_pb2_grpc.UploadCallbackServiceAsyncStub,
                        metadata: tuple[tuple[str, str], ...], subject: str,
                        size: int = 1234) -> str:
    """What the edge does when a TUS upload finishes; returns the new upload id."""
    upload_id = secrets.token_hex(16)
    await stub.UploadCompleted(upload_pb2.UploadCompletedRequest(
        upload_id=upload_id, size_bytes=size, sha256=secrets.token_hex(32),
        metadata={"filename": "clip.mp4"}, subject=subject), metadata=metadata)
    return upload_id


async def count_runs(client: Client, workflow_id: str, expected: int,
                     wait_seconds: float = 10.0) -> int:
    """How many runs Temporal has for ``workflow_id``, polling until ``expected`` is seen
    (visibility is eventually consistent) or the timeout passes."""
    deadline = time.monotonic() + wait_seconds
    while True:
        runs = [w async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
        if len(runs) == expected or time.monotonic() > deadline:
            return len(runs)
        await asyncio.sleep(0.2)


async def described(client: Client, workflow_id: str,
                    wait_seconds: float = 10.0) -> WorkflowExecutionDescription:
    """Temporal's description of the workflow, waiting for the relay to start it."""
    handle = client.get_workflow_handle(workflow_id)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return await handle.describe()
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
