"""creation, creation-with-upload, creation-defer-length: POST rows."""

from __future__ import annotations

import pytest
import requests

from tests.edge.conftest import (
    EdgeProcess,
    b64,
    make_token,
    multipart_uploads,
    stored_object,
    tus_headers,
)
from tests.edge.table import ABSENT, ANY, Row, check, merged
from vora.config import Settings

ROWS = [
    Row("length", {"Upload-Length": "100"}, 201, {"Location": ANY, "Upload-Expires": ANY}),
    Row("defer length", {"Upload-Defer-Length": "1"}, 201, {"Location": ANY}),
    Row("metadata", {"Upload-Length": "1", "Upload-Metadata": f"filename {b64(b'a.mp4')},x"},
        201, {"Location": ANY}),
    Row("length and defer", {"Upload-Length": "1", "Upload-Defer-Length": "1"}, 400,
        {"Location": ABSENT}, reason="exactly one"),
    Row("neither length nor defer", {}, 400, reason="exactly one"),
    Row("defer not 1", {"Upload-Defer-Length": "2"}, 400, reason="Upload-Defer-Length"),
    Row("negative length", {"Upload-Length": "-1"}, 400, reason="non-negative"),
    Row("length not a number", {"Upload-Length": "1e3"}, 400, reason="non-negative"),
    Row("over the edge maximum", {"Upload-Length": str(64 * 1024 * 1024 + 1)}, 413,
        reason="maximum"),
    Row("metadata not base64", {"Upload-Length": "1", "Upload-Metadata": "name ***"}, 400,
        reason="base64"),
    Row("metadata key repeated", {"Upload-Length": "1", "Upload-Metadata": "a,a"}, 400,
        reason="twice"),
    Row("unsupported version", {"Upload-Length": "1", "Tus-Resumable": "0.2.2"}, 412,
        {"Tus-Version": "1.0.0"}),
    Row("no version", {"Upload-Length": "1", "Tus-Resumable": None}, 412,
        {"Tus-Version": "1.0.0"}),
    Row("no token", {"Upload-Length": "1", "Authorization": None}, 401, reason="Bearer"),
    Row("forged token", {"Upload-Length": "1", "Authorization": "Bearer dev1.e30.%s" % ("0" * 64)},
        401, reason="signature"),
    Row("not bearer", {"Upload-Length": "1", "Authorization": "Basic dTpw"}, 401,
        reason="Bearer"),
    Row("concat partial", {"Upload-Length": "5", "Upload-Concat": "partial"}, 201,
        {"Location": ANY}),
    Row("concat garbage", {"Upload-Length": "5", "Upload-Concat": "half"}, 400),
    Row("method override", {"Upload-Length": "5", "X-HTTP-Method-Override": "POST"}, 201),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_post(edge: EdgeProcess, token: str, row: Row) -> None:
    response = requests.post(edge.url, headers=merged(tus_headers(token), row), timeout=10)
    check(response, row)
    if row.status == 201:
        assert response.headers["Location"].startswith(edge.url)


def test_token_max_size_bounds_upload_length(edge: EdgeProcess, stack: Settings) -> None:
    small = make_token(stack, max_size=1000)
    response = requests.post(edge.url, headers=tus_headers(small, Upload_Length="1001"),
                             timeout=10)
    check(response, Row("over token max", status=413, reason="token"))


def test_expired_token_is_refused(edge: EdgeProcess, stack: Settings) -> None:
    expired = make_token(stack, ttl=-5)
    response = requests.post(edge.url, headers=tus_headers(expired, Upload_Length="1"),
                             timeout=10)
    check(response, Row("expired token", status=401, reason="expired"))


def test_post_to_an_upload_url_is_refused(edge: EdgeProcess, token: str) -> None:
    response = requests.post(edge.url + "0" * 32, headers=tus_headers(token, Upload_Length="1"),
                             timeout=10)
    check(response, Row("post to upload", status=405))


def test_creation_with_upload_stores_the_first_chunk(edge: EdgeProcess, token: str) -> None:
    headers = tus_headers(token, Upload_Length="10",
                          Content_Type="application/offset+octet-stream")
    response = requests.post(edge.url, headers=headers, data=b"hello", timeout=10)
    check(response, Row("with upload", status=201, out={"Upload-Offset": "5", "Location": ANY}))
    head = requests.head(response.headers["Location"], headers=tus_headers(token), timeout=10)
    assert head.headers["Upload-Offset"] == "5"


def test_metadata_is_sanitised(edge: EdgeProcess, token: str) -> None:
    hostile = b64(b"evil\r\nSet-Cookie: x\x00.mp4")
    headers = tus_headers(token, Upload_Length="3", Upload_Metadata=f"filename {hostile},flag")
    location = requests.post(edge.url, headers=headers, timeout=10).headers["Location"]
    head = requests.head(location, headers=tus_headers(token), timeout=10)
    assert head.headers["Upload-Metadata"] == f"filename {b64(b'evilSet-Cookie: x.mp4')},flag"


def test_zero_length_upload_completes_at_creation(
    edge: EdgeProcess, token: str, stack: Settings, s3: object, control: object,
) -> None:
    location = requests.post(edge.url, headers=tus_headers(token, Upload_Length="0"),
                             timeout=10).headers["Location"]
    assert stored_object(s3, stack, location) == b""
    assert multipart_uploads(s3, stack, location) == []
