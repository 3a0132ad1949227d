"""The REST facade over real HTTP: status codes, JSON errors, mass assignment, BOLA,
ops endpoints, and schemathesis against /openapi.json."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from control.activities import BookkeepingActivities
from control.main import Control
from tests.control.conftest import User, report_upload
from vora import jobs
from vora.config import Settings
from vora.grpcio import SERVICE_TOKEN_METADATA
from vora.v1 import upload_pb2_grpc

Metadata = tuple[tuple[str, str], ...]


async def call(control: Control, method: str, path: str, *, body: Any = None,
               headers: dict[str, str] | None = None, raw: bytes | None = None) -> HTTPResponse:
    url = f"http://{control.settings.control_host}:{control.settings.control_http_port}{path}"
    payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if payload is None and method in ("POST", "PUT", "PATCH"):
        payload = b""
    return await AsyncHTTPClient().fetch(url, method=method, body=payload,
                                         headers=headers or {}, raise_error=False)


def error_of(response: HTTPResponse) -> str:
    body = json.loads(response.body)
    assert body["error"]["status"] == response.code
    message: str = body["error"]["message"]
    assert message
    return message


async def create(control: Control, user: User, **body: Any) -> dict[str, Any]:
    response = await call(control, "POST", "/v1/videos", body=body or {"title": "t"},
                          headers=user.headers)
    assert response.code == 201, response.body
    video: dict[str, Any] = json.loads(response.body)["video"]
    assert response.headers["Location"] == f"/v1/videos/{video['id']}"
    return video


async def test_lifecycle_over_rest(control: Control, alice: User,
                                   uploads_stub: upload_pb2_grpc.UploadCallbackServiceAsyncStub,
                                   service_metadata: Metadata,
                                   bookkeeping: BookkeepingActivities) -> None:
    video = await create(control, alice, title="Trip", description="d", size_bytes=10)
    assert video["state"] == "CREATED"
    path = f"/v1/videos/{video['id']}"
    not_yet = await call(control, "POST", f"{path}/complete-upload",
                         body={"upload_id": "f" * 32}, headers=alice.headers)
    assert not_yet.code == 412 and "not complete" in error_of(not_yet)
    upload_id = await report_upload(uploads_stub, service_metadata, alice.subject)
    for _ in range(2):
        done = await call(control, "POST", f"{path}/complete-upload",
                          body={"upload_id": upload_id}, headers=alice.headers)
        assert done.code == 200 and json.loads(done.body)["video"]["state"] == "PROCESSING"
    early = await call(control, "GET", f"{path}/playback-url", headers=alice.headers)
    assert early.code == 409 and "PROCESSING" in error_of(early)
    await bookkeeping.mark_ready(jobs.MarkReadyInput(video_id=video["id"]))
    url = await call(control, "GET", f"{path}/playback-url?ttl_seconds=60",
                     headers=alice.headers)
    assert url.code == 200
    assert json.loads(url.body)["url"].endswith(f"/{video['id']}/master.m3u8")
    again = await call(control, "POST", f"{path}/retry", headers=alice.headers)
    assert again.code == 409 and "only a FAILED video" in error_of(again)
    gone = await call(control, "DELETE", path, headers=alice.headers)
    assert gone.code == 204 and gone.body == b""
    assert (await call(control, "GET", path, headers=alice.headers)).code == 404


@pytest.mark.parametrize(("body", "reason"), [
    ({"title": "t", "state": "READY"}, "read-only fields cannot be set: state"),
    ({"owner": "someone-else"}, "read-only fields cannot be set: owner"),
    ({"id": "00000000-0000-4000-8000-000000000000"}, "read-only fields cannot be set: id"),
    ({"title": "t", "is_admin": True}, "unknown fields: is_admin"),
    ({"title": 5}, "title must be a string"),
    ({"size_bytes": "10"}, "size_bytes must be an integer"),
    ({"size_bytes": True}, "size_bytes must be an integer"),
    (["title"], "the body must be a JSON object"),
])
async def test_mass_assignment_and_bad_bodies_are_400(control: Control, alice: User,
                                                      body: Any, reason: str) -> None:
    response = await call(control, "POST", "/v1/videos", body=body, headers=alice.headers)
    assert response.code == 400
    assert reason in error_of(response)


async def test_status_codes_and_error_bodies(control: Control, alice: User,
                                             test_settings: Settings) -> None:
    assert (await call(control, "POST", "/v1/videos", raw=b"{not json",
                       headers=alice.headers)).code == 400
    unauthenticated = await call(control, "GET", "/v1/videos")
    assert unauthenticated.code == 401
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Bearer")
    forbidden = await call(control, "POST", "/v1/videos", body={},
                           headers={SERVICE_TOKEN_METADATA: test_settings.service_token})
    assert forbidden.code == 403 and "user" in error_of(forbidden)
    missing = await call(control, "GET", "/v1/videos/00000000-0000-4000-8000-000000000000",
                         headers=alice.headers)
    assert missing.code == 404
    assert (await call(control, "GET", "/v1/videos?page_size=1000",
                       headers=alice.headers)).code == 400
    assert (await call(control, "GET", "/v1/videos?page_size=-1",
                       headers=alice.headers)).code == 400
    assert (await call(control, "PUT", "/v1/videos", body={},
                       headers=alice.headers)).code == 405
    assert (await call(control, "GET", "/nowhere")).code == 404


async def test_bola_over_rest(control: Control, alice: User, bob: User) -> None:
    video = await create(control, alice)
    path = f"/v1/videos/{video['id']}"
    for method, suffix, body in [("GET", "", None), ("DELETE", "", None),
                                 ("GET", "/playback-url", None), ("POST", "/retry", {}),
                                 ("POST", "/complete-upload", {"upload_id": "a" * 32})]:
        response = await call(control, method, path + suffix, body=body, headers=bob.headers)
        assert response.code == 404, (method, suffix, response.code)
    listed = json.loads((await call(control, "GET", "/v1/videos", headers=bob.headers)).body)
    assert video["id"] not in {v["id"] for v in listed["videos"]}
    assert (await call(control, "GET", path, headers=alice.headers)).code == 200


async def test_ops_endpoints(control: Control, alice: User) -> None:
    await create(control, alice)
    health = await call(control, "GET", "/healthz")
    report = json.loads(health.body)
    assert health.code == 200 and report["checks"] == {"postgres": "ok"}
    assert report["info"]["temporal"] == "reachable"
    metrics = (await call(control, "GET", "/metrics")).body.decode()
    assert 'control_requests_total{api="rest",code="201",method="POST /v1/videos"}' in metrics
    assert "control_outbox_depth" in metrics and "control_relay_errors_total" in metrics
    assert "control_request_seconds_bucket" in metrics
    spec = json.loads((await call(control, "GET", "/openapi.json")).body)
    assert spec["openapi"].startswith("3.1")


async def test_schemathesis_finds_no_server_errors_or_schema_violations(
        control: Control, alice: User, tmp_path: Path) -> None:
    base = f"http://{control.settings.control_host}:{control.settings.control_http_port}"
    await create(control, alice)  # something to list and fetch
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{base}/openapi.json",
        "--header", f"Authorization: Bearer {alice.token}",
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                    "response_schema_conformance,response_headers_conformance,"
                    "negative_data_rejection",
        "--max-examples", "15", "--seed", "4", "--generation-deterministic",
        "--request-timeout", "10", "--report-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=150)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
