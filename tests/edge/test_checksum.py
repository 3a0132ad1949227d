"""checksum extension: sha1, md5, sha256 verified per PATCH; a mismatch is 460."""

from __future__ import annotations

import hashlib

import pytest
import requests

from tests.edge.conftest import EdgeProcess, b64, create, patch, tus_headers
from tests.edge.table import ABSENT, Row, check

BODY = b"hello tus"


def digest(algorithm: str, body: bytes = BODY) -> str:
    """The Upload-Checksum value for ``body`` (tus mandates sha1; it checks integrity only)."""
    return f"{algorithm} {b64(hashlib.new(algorithm, body).digest())}"


ROWS = [
    Row("sha1", {"Upload-Checksum": digest("sha1")}, 204,
        {"Upload-Offset": str(len(BODY))}),
    Row("md5", {"Upload-Checksum": digest("md5")}, 204),
    Row("sha256", {"Upload-Checksum": digest("sha256")}, 204),
    Row("mismatch", {"Upload-Checksum": digest("sha1", b"other")}, 460,
        {"Upload-Offset": ABSENT}, reason="mismatch"),
    Row("unsupported algorithm", {"Upload-Checksum": "crc32 AAAAAA=="}, 400,
        reason="not supported"),
    Row("digest not base64", {"Upload-Checksum": "sha1 !!!"}, 400, reason="base64"),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_checksum(edge: EdgeProcess, token: str, row: Row) -> None:
    url = create(edge, token, 100)
    response = patch(url, token, 0, BODY, **{k.replace("-", "_"): v for k, v in
                                             row.headers.items() if v is not None})
    check(response, row)
    head = requests.head(url, headers=tus_headers(token), timeout=10)
    assert head.headers["Upload-Offset"] == (str(len(BODY)) if row.status == 204 else "0")


def test_a_discarded_chunk_can_be_resent(edge: EdgeProcess, token: str) -> None:
    url = create(edge, token, 9)
    good = digest("sha1")
    check(patch(url, token, 0, b"hellO tus", Upload_Checksum=good), Row("bad", status=460))
    check(patch(url, token, 0, BODY, Upload_Checksum=good),
          Row("resent", status=204, out={"Upload-Offset": "9"}))
