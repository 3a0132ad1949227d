"""Core HEAD rows: the offset to resume from, never cached."""

from __future__ import annotations

import pytest
import requests

from tests.edge.conftest import EdgeProcess, b64, create, make_token, tus_headers
from tests.edge.table import ABSENT, ANY, Row, check, merged
from vora.config import Settings

ROWS = [
    Row("known length", {}, 200, {"Upload-Offset": "0", "Upload-Length": "42",
                                 "Cache-Control": "no-store", "Upload-Expires": ANY,
                                 "Upload-Metadata": f"filename {b64(b'clip.mp4')}",
                                 "Upload-Defer-Length": ABSENT}),
    Row("unsupported version", {"Tus-Resumable": "2.0.0"}, 412, {"Tus-Version": "1.0.0"}),
    Row("no token", {"Authorization": None}, 401, {"Upload-Offset": ABSENT}),
    Row("override from POST", {"X-HTTP-Method-Override": "HEAD"}, 200, {"Upload-Offset": "0"}),
]


@pytest.fixture
def upload(edge: EdgeProcess, token: str) -> str:
    return create(edge, token, 42, Upload_Metadata=f"filename {b64(b'clip.mp4')}")


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_head(upload: str, token: str, row: Row) -> None:
    method = "POST" if "X-HTTP-Method-Override" in row.headers else "HEAD"
    response = requests.request(method, upload, headers=merged(tus_headers(token), row),
                                timeout=10)
    check(response, row)


def test_deferred_length(edge: EdgeProcess, token: str) -> None:
    url = create(edge, token, None)
    response = requests.head(url, headers=tus_headers(token), timeout=10)
    check(response, Row("deferred", status=200, out={
        "Upload-Defer-Length": "1", "Upload-Length": ABSENT, "Upload-Offset": "0"}))


@pytest.mark.parametrize("suffix", ["0" * 32, "..%2F..%2Fetc%2Fpasswd", "ABCDEF" * 6, "x" * 300])
def test_unknown_or_malformed_ids_are_404(edge: EdgeProcess, token: str, suffix: str) -> None:
    response = requests.head(edge.url + suffix, headers=tus_headers(token), timeout=10)
    assert response.status_code == 404
    assert response.headers["Tus-Resumable"] == "1.0.0"


def test_another_subject_is_forbidden(upload: str, stack: Settings) -> None:
    mallory = make_token(stack, subject="mallory")
    response = requests.head(upload, headers=tus_headers(mallory), timeout=10)
    check(response, Row("other subject", status=403, out={"Upload-Offset": ABSENT}))
