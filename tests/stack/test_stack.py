"""The local stack is real: each component answers through the same client code Vora uses."""

from __future__ import annotations

import datetime as dt
import urllib.request
import uuid
from datetime import timedelta

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from temporalio.client import Client
from temporalio.worker import Worker

from tests.stack.probe_workflow import StackProbeWorkflow
from vora import storage
from vora.config import Settings
from vora.migrate import clickhouse_client, migrate_clickhouse, migrate_postgres


def test_postgres_has_the_schema(stack: Settings) -> None:
    with psycopg.connect(stack.pg_conninfo) as conn:
        tables = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        assert {"videos", "uploads", "outbox", "nodes", "schema_migrations"} <= tables
        video_id = storage.new_video_id()
        conn.execute(
            "INSERT INTO videos (id, owner, title, state) VALUES (%s, 'u', 't', 'CREATED')",
            (video_id,))
        assert conn.execute("SELECT state FROM videos WHERE id = %s",
                            (video_id,)).fetchone() == ("CREATED",)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE videos SET state = 'BOGUS' WHERE id = %s", (video_id,))
        conn.rollback()


def test_migrations_are_idempotent(stack: Settings) -> None:
    assert migrate_postgres(stack) == []
    assert migrate_clickhouse(stack) == []


@pytest.mark.parametrize("bucket_attr", ["bucket_raw", "bucket_processed"])
def test_s3_round_trip(stack: Settings, bucket_attr: str) -> None:
    client = storage.s3_client(stack)
    bucket = getattr(stack, bucket_attr)
    key = f"{storage.new_upload_id()}/probe.bin"
    body = uuid.uuid4().bytes * 1000
    client.put_object(Bucket=bucket, Key=key, Body=body)
    try:
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    finally:
        client.delete_object(Bucket=bucket, Key=key)


def test_s3_refuses_wrong_credentials(stack: Settings) -> None:
    from botocore.exceptions import ClientError

    bad = storage.s3_client(stack.model_copy(update={"s3_secret_key": "wrong"}), max_attempts=1)
    with pytest.raises(ClientError):
        bad.list_objects_v2(Bucket=stack.bucket_raw, MaxKeys=1)


async def test_temporal_runs_a_workflow(stack: Settings) -> None:
    client = await Client.connect(stack.temporal_address, namespace=stack.temporal_namespace)
    queue = f"stack-probe-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[StackProbeWorkflow]):
        result = await client.execute_workflow(
            StackProbeWorkflow.run, "vora", id=f"probe-{uuid.uuid4()}", task_queue=queue,
            execution_timeout=timedelta(seconds=30))
    assert result == "hello vora"


def test_clickhouse_playback_events_partitioned_by_day(stack: Settings,
                                                     request: pytest.FixtureRequest) -> None:
    client = clickhouse_client(stack)
    request.addfinalizer(client.disconnect)
    video_id = storage.new_video_id()
    rows = [
        (str(uuid.uuid4()), video_id, "u1", "s1", "play", dt.datetime(2026, 3, 1, 12), 0,
         dt.datetime(2026, 3, 1, 12), 0.0, "720p", 0.0),
        (str(uuid.uuid4()), video_id, "u1", "s1", "pause", dt.datetime(2026, 3, 2, 8), 250,
         dt.datetime(2026, 3, 2, 8), 12.5, "720p", 0.0),
    ]
    client.execute(
        "INSERT INTO PlaybackEvents (event_id, video_id, user_id, session_id, event_type,"
        " event_time, event_ms, received_time, position, rendition, buffer_duration) VALUES",
        rows)
    found = client.execute(
        "SELECT event_type, _partition_id FROM PlaybackEvents WHERE video_id = %(v)s"
        " ORDER BY event_time", {"v": video_id})
    assert found == [("play", "20260301"), ("pause", "20260302")]


def test_http_through_varnish_reaches_the_gateway(stack: Settings) -> None:
    url = f"http://{stack.varnish_host}:{stack.varnish_port}/healthz"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read()
        assert response.status == 200
        assert response.headers["Via"] and "varnish" in response.headers["Via"].lower()
        assert response.headers["X-Varnish"]
    assert b'"service": "gateway"' in body


async def test_control_offers_health_and_reflection(stack: Settings) -> None:
    async with grpc.aio.insecure_channel(stack.control_grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        # types-grpcio-health-checking's HealthStub declares no RPC attributes.
        reply = await health.Check(  # type: ignore[attr-defined]
            health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        # types-grpcio-reflection types this stub for sync channels only, and its
        # ServerReflectionInfo as binascii.Incomplete (an exception class, by mistake).
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = [r async for r in stub.ServerReflectionInfo(  # type: ignore[operator]
            iter([request]), timeout=5)]
        names = {s.name for s in responses[0].list_services_response.service}
        assert "grpc.health.v1.Health" in names
