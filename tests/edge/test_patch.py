"""Core PATCH rows, plus completion: parts, tail, final object, callback, no leftovers."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.edge.conftest import (
    Control,
    EdgeProcess,
    create,
    multipart_uploads,
    open_patch,
    patch,
    sha256,
    stored_keys,
    stored_object,
    tus_headers,
    upload_id,
    wait_for_lease,
    wait_offset,
)
from tests.edge.table import ABSENT, ANY, Row, check, merged
from vora import storage
from vora.config import Settings

OCTETS = "application/offset+octet-stream"
ROWS = [
    Row("append", {}, 204, {"Upload-Offset": "5", "Upload-Expires": ANY}, body=b"hello"),
    Row("empty body", {}, 204, {"Upload-Offset": "0"}),
    Row("no content type", {"Content-Type": None}, 415, {"Upload-Offset": ABSENT}, b"hello"),
    Row("wrong content type", {"Content-Type": "application/octet-stream"}, 415, body=b"x"),
    Row("offset ahead", {"Upload-Offset": "3"}, 409, {"Upload-Offset": ABSENT}, b"hello"),
    Row("no offset", {"Upload-Offset": None}, 400, body=b"hello"),
    Row("negative offset", {"Upload-Offset": "-1"}, 400, body=b"hello"),
    Row("past the length", {}, 413, body=b"x" * 11),
    Row("unsupported version", {"Tus-Resumable": "1.0"}, 412, {"Tus-Version": "1.0.0"}),
    Row("no token", {"Authorization": None}, 401, body=b"hello"),
    Row("override from POST", {"X-HTTP-Method-Override": "PATCH"}, 204, {"Upload-Offset": "5"},
        body=b"hello"),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_patch(edge: EdgeProcess, token: str, row: Row) -> None:
    url = create(edge, token, 10)
    defaults = tus_headers(token, Content_Type=OCTETS, Upload_Offset="0")
    method = "POST" if "X-HTTP-Method-Override" in row.headers else "PATCH"
    response = requests.request(method, url, headers=merged(defaults, row), data=row.body,
                                timeout=10)
    check(response, row)
    head = requests.head(url, headers=tus_headers(token), timeout=10)
    expected = len(row.body) if row.status == 204 else 0
    assert head.headers["Upload-Offset"] == str(expected), "a refused PATCH changes nothing"


def test_unknown_upload_is_404(edge: EdgeProcess, token: str) -> None:
    response = patch(edge.url + "f" * 32, token, 0, b"x")
    check(response, Row("unknown", status=404))


def test_a_chunked_body_without_length(edge: EdgeProcess, token: str) -> None:
    url = create(edge, token, 6)

    def body() -> Iterator[bytes]:
        yield b"abc"
        yield b"def"

    response = patch(url, token, 0, body())  # type: ignore[arg-type]
    check(response, Row("chunked", status=204, out={"Upload-Offset": "6"}))


def test_complete_upload_in_parts_with_tails(
    edge: EdgeProcess, token: str, stack: Settings, s3: object, control: Control,
) -> None:
    """12 MiB in uneven chunks: two 5 MiB parts through the tail, a 2 MiB last part."""
    data = os.urandom(12 * 1024 * 1024)
    url = create(edge, token, len(data), Upload_Metadata="filename Y2xpcC5tcDQ=")
    cuts = [0, 3 * 1024 * 1024, 3 * 1024 * 1024 + 7, 9 * 1024 * 1024, len(data)]
    for start, end in itertools.pairwise(cuts):
        response = patch(url, token, start, data[start:end])
        check(response, Row("chunk", status=204, out={"Upload-Offset": str(end)}))
        if end < len(data):
            key = storage.raw_original_key(upload_id(url))
            assert key not in stored_keys(s3, stack, url), "the object appears only when complete"
    assert stored_object(s3, stack, url) == data
    assert multipart_uploads(s3, stack, url) == []
    assert sorted(stored_keys(s3, stack, url)) == sorted(
        [storage.raw_original_key(upload_id(url)), f"{upload_id(url)}/.info"])
    call = control.wait_for(upload_id(url))
    assert call.size_bytes == len(data)
    assert call.sha256 == sha256(data)
    assert call.subject == "alice"
    assert dict(call.metadata) == {"filename": "clip.mp4"}
    head = requests.head(url, headers=tus_headers(token), timeout=10)
    check(head, Row("done", status=200, out={"Upload-Offset": str(len(data)),
                                            "Upload-Expires": ABSENT}))


def test_deferred_length_is_set_by_a_patch(
    edge: EdgeProcess, token: str, stack: Settings, s3: object,
) -> None:
    url = create(edge, token, None)
    check(patch(url, token, 0, b"abc"), Row("first", status=204, out={"Upload-Offset": "3"}))
    check(patch(url, token, 3, b"def", Upload_Length="6"),
          Row("last", status=204, out={"Upload-Offset": "6"}))
    assert stored_object(s3, stack, url) == b"abcdef"
    head = requests.head(url, headers=tus_headers(token), timeout=10)
    check(head, Row("known", status=200, out={"Upload-Length": "6",
                                             "Upload-Defer-Length": ABSENT}))


def test_a_lease_held_by_another_replica_is_423(
    edge: EdgeProcess, token: str, stack: Settings, s3: object,
) -> None:
    url = create(edge, token, 10)
    key = f"{upload_id(url)}/.lock"
    s3.put_object(Bucket=stack.bucket_raw, Key=key,  # type: ignore[attr-defined]
                  Body=b'{"owner": "replica-b", "expires_at": %d}' % (time.time() + 60))
    check(patch(url, token, 0, b"hello"), Row("locked", status=423, reason="another request"))
    # A holder that died leaves an expired lease: the next writer takes it over.
    s3.put_object(Bucket=stack.bucket_raw, Key=key,  # type: ignore[attr-defined]
                  Body=b'{"owner": "replica-b", "expires_at": %d}' % (time.time() - 1))
    check(patch(url, token, 0, b"hello"), Row("stale", status=204, out={"Upload-Offset": "5"}))
    assert key not in stored_keys(s3, stack, url), "the lease is released after the PATCH"


def test_concurrent_patches_are_serialised(edge: EdgeProcess, token: str,
                                           stack: Settings, s3: object) -> None:
    """A slow PATCH holds the lease; a second one at the same offset is refused, not mixed."""
    url = create(edge, token, 2 * 1024 * 1024)
    started = threading.Event()
    result: dict[str, requests.Response] = {}

    def slow_body() -> Iterator[bytes]:
        yield b"a" * 1024 * 1024
        started.set()
        time.sleep(3)
        yield b"a" * 1024 * 1024

    thread = threading.Thread(target=lambda: result.setdefault(
        "slow", patch(url, token, 0, slow_body())))  # type: ignore[arg-type]
    thread.start()
    assert started.wait(10)
    wait_for_lease(s3, stack, url)
    second = patch(url, token, 0, b"b" * 2 * 1024 * 1024)
    thread.join(20)
    assert second.status_code == 423, second.text
    check(result["slow"], Row("slow", status=204, out={"Upload-Offset": str(2 * 1024 * 1024)}))
    assert stored_object(s3, stack, url) == b"a" * 2 * 1024 * 1024


def test_s3_unreachable_is_503_with_a_reason(edge_factory: object, token: str) -> None:
    dead = edge_factory(healthy=False, VORA_S3_ENDPOINT="http://127.0.0.1:9")  # type: ignore[operator]
    response = requests.post(dead.url, headers=tus_headers(token, Upload_Length="5"), timeout=30)
    check(response, Row("s3 down", status=503, out={"Retry-After": ANY},
                        reason="object storage unreachable"))
    health = requests.get(dead.base + "/healthz", timeout=10)
    assert health.status_code == 503
    assert "s3" in health.json()["checks"]


def test_an_idle_body_is_cut_and_its_bytes_kept(
    edge_factory: Callable[..., EdgeProcess], token: str,
) -> None:
    edge = edge_factory(VORA_EDGE_IDLE_TIMEOUT_SECONDS="1")
    url = create(edge, token, 100)
    with open_patch(url, token, 0, b"x" * 40, declared=100) as sock:
        started = time.monotonic()
        assert sock.recv(1024) == b"", "the edge closes a connection whose body stalls"
        assert time.monotonic() - started < 5
    assert wait_offset(url, token, 40) == 40


def test_the_concurrent_upload_limit_answers_503(
    edge_factory: Callable[..., EdgeProcess], token: str, stack: Settings, s3: object,
) -> None:
    edge = edge_factory(VORA_EDGE_MAX_CONCURRENT_UPLOADS="1")
    first, second = create(edge, token, 100), create(edge, token, 100)
    with open_patch(first, token, 0, b"x" * 10, declared=100):
        wait_for_lease(s3, stack, first)
        check(patch(second, token, 0, b"y"), Row("over limit", status=503,
                                                 out={"Retry-After": ANY}, reason="limit"))
    wait_offset(first, token, 10)
    check(patch(second, token, 0, b"y"), Row("after", status=204, out={"Upload-Offset": "1"}))


def test_metrics_count_uploads(edge: EdgeProcess, token: str) -> None:
    url = create(edge, token, 4)
    check(patch(url, token, 0, b"abcd"), Row("done", status=204))
    text = requests.get(edge.base + "/metrics", timeout=10).text
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
               if line and not line.startswith("#")}
    assert samples["edge_bytes_received_total"] >= 4
    assert samples["edge_uploads_started_total"] >= 1
    assert samples["edge_uploads_completed_total"] >= 1
    assert samples["edge_patch_seconds_count"] >= 1
    assert "edge_uploads_active" in samples
