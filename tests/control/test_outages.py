"""Outages of the stack's real PostgreSQL and Temporal (stopped and started again with
``vora dev stop/start``): the APIs answer 503/UNAVAILABLE without PostgreSQL, and keep
committing without Temporal while the relay catches up once it is back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from control.main import Control
from control.relay import CircuitBreaker
from tests.control.conftest import User, described, report_upload
from tests.control.test_rest import call
from vora import devstack, jobs
from vora.config import Settings
from vora.v1 import upload_pb2_grpc, video_pb2, video_pb2_grpc

Metadata = tuple[tuple[str, str], ...]


@asynccontextmanager
async def stopped(settings: Settings, component: str) -> AsyncIterator[None]:
    """Stop one component of this checkout's stack; start it again and wait until healthy,
    whatever the test did. (In a thread: control keeps serving in this event loop.)"""
    await asyncio.to_thread(devstack.stop, settings, [component])
    try:
        yield
    finally:
        await asyncio.to_thread(devstack.start, settings, [component])
        await asyncio.to_thread(devstack.wait_healthy, settings, [component], 90)


async def test_postgres_down_is_503_and_unavailable(
        control: Control, infra: Settings, alice: User,
        videos_stub: video_pb2_grpc.VideoServiceAsyncStub) -> None:
    video = json.loads((await call(control, "POST", "/v1/videos", body={},
                                   headers=alice.headers)).body)["video"]
    async with stopped(infra, "postgres"):
        rest = await call(control, "GET", f"/v1/videos/{video['id']}", headers=alice.headers)
        assert rest.code == 503
        assert rest.headers["Retry-After"].isdigit()
        body = json.loads(rest.body)
        assert "database is unreachable" in body["error"]["message"]
        assert "Traceback" not in rest.body.decode()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await videos_stub.GetVideo(video_pb2.GetVideoRequest(video_id=video["id"]),
                                       metadata=alice.metadata)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "database is unreachable" in (caught.value.details() or "")
        health = await call(control, "GET", "/healthz")
        assert health.code == 503
        assert json.loads(health.body)["checks"]["postgres"].startswith("failing")
    deadline = time.monotonic() + 30
    while (response := await call(control, "GET", f"/v1/videos/{video['id']}",
                                  headers=alice.headers)).code != 200:
        assert time.monotonic() < deadline, response.body
        await asyncio.sleep(0.5)


async def test_temporal_down_commits_and_starts_when_back(
        control: Control, infra: Settings, alice: User,
        videos_stub: video_pb2_grpc.VideoServiceAsyncStub,
        uploads_stub: upload_pb2_grpc.UploadCallbackServiceAsyncStub,
        service_metadata: Metadata) -> None:
    control.relay.breaker = CircuitBreaker(threshold=2, cooldown=0.5, max_cooldown=2.0)
    video = (await videos_stub.CreateVideo(video_pb2.CreateVideoRequest(title="t"),
                                           metadata=alice.metadata)).video
    upload_id = await report_upload(uploads_stub, service_metadata, alice.subject)
    workflow_id = jobs.transcode_workflow_id(video.id)
    async with stopped(infra, "temporal"):
        started = time.monotonic()
        done = await videos_stub.CompleteUpload(video_pb2.CompleteUploadRequest(
            video_id=video.id, upload_id=upload_id), metadata=alice.metadata)
        assert time.monotonic() - started < 4.0  # never waits for Temporal (RPCs time out at 5 s)
        assert done.video.state == video_pb2.Video.STATE_PROCESSING
        deadline = time.monotonic() + 20
        while not control.relay.breaker.is_open:
            assert time.monotonic() < deadline, "the relay never noticed Temporal is down"
            await asyncio.sleep(0.2)
        health = json.loads((await call(control, "GET", "/healthz")).body)
        assert health["status"] == "ok"
        assert health["info"]["temporal"].startswith("unreachable")
        assert health["info"]["outbox_depth"] >= 1
    client = await Client.connect(infra.temporal_address,
                                  namespace=control.settings.temporal_namespace)
    description = await described(client, workflow_id, wait_seconds=30)
    assert description.status == WorkflowExecutionStatus.RUNNING
