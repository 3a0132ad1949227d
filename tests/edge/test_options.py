"""Core OPTIONS rows: discovery needs no token."""

from __future__ import annotations

import pytest
import requests

from tests.edge.conftest import EdgeProcess
from tests.edge.table import ABSENT, ANY, Row, check, merged

DISCOVERY = {
    "Tus-Version": "1.0.0",
    "Tus-Extension": "creation,creation-with-upload,creation-defer-length,termination,"
                     "expiration,checksum,concatenation",
    "Tus-Max-Size": str(64 * 1024 * 1024),
    "Tus-Checksum-Algorithm": "sha1,md5,sha256",
}
ROWS = [
    Row("discovery", {}, 204, DISCOVERY),
    Row("no version needed", {"Tus-Resumable": None}, 204, DISCOVERY),
    Row("cors preflight", {"Origin": "http://app.example", "Access-Control-Request-Method":
                           "PATCH"}, 204,
        {"Access-Control-Allow-Origin": "http://app.example",
         "Access-Control-Allow-Methods": "POST, HEAD, PATCH, DELETE, OPTIONS",
         "Access-Control-Allow-Headers": ANY, "Access-Control-Max-Age": "86400"}),
    Row("no cors without origin", {}, 204, {"Access-Control-Allow-Origin": ABSENT}),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_options(edge: EdgeProcess, row: Row) -> None:
    response = requests.options(edge.url, headers=merged({"Tus-Resumable": "1.0.0"}, row),
                                timeout=10)
    check(response, row)
    assert response.content == b""


def test_options_on_an_upload_url(edge: EdgeProcess) -> None:
    response = requests.options(edge.url + "0" * 32, timeout=10)
    check(response, Row("upload url", status=204, out=DISCOVERY))


def test_options_through_method_override(edge: EdgeProcess) -> None:
    response = requests.post(edge.url, headers={"X-HTTP-Method-Override": "OPTIONS"}, timeout=10)
    check(response, Row("override", status=204, out=DISCOVERY))


def test_preflight_allows_every_tus_header(edge: EdgeProcess) -> None:
    response = requests.options(edge.url, headers={"Origin": "http://app.example"}, timeout=10)
    header = response.headers["Access-Control-Allow-Headers"]
    allowed = {name.strip().lower() for name in header.split(",")}
    assert {"authorization", "upload-offset", "upload-length", "upload-metadata",
            "tus-resumable", "upload-checksum", "upload-concat", "content-type",
            "x-http-method-override"} <= allowed
