"""S3 goes down mid-upload: the client gets 503 with a reason, and once S3 is back it
resumes from the last acknowledged offset and nothing acknowledged is lost."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import requests

from tests.edge.conftest import (
    EdgeProcess,
    create,
    multipart_uploads,
    open_patch,
    patch,
    stored_object,
    tus_headers,
    wait_for_lease,
    wait_offset,
)
from tests.edge.table import ANY, Row, check
from vora import devstack
from vora.config import Settings

MIB = 1024 * 1024


@pytest.fixture
def s3_outage(stack: Settings) -> Iterator[None]:
    """Stops the stack's S3 inside the test; it is always started again."""
    yield
    devstack.start(stack, ["s3"])
    devstack.wait_healthy(stack, ["s3"], timeout=60)


def _read_response(sock: object) -> str:
    chunks = []
    while data := sock.recv(65536):  # type: ignore[attr-defined]
        chunks.append(data)
        if b"\r\n\r\n" in b"".join(chunks):
            break
    return b"".join(chunks).decode(errors="replace")


def test_s3_outage_mid_patch(
    edge: EdgeProcess, token: str, stack: Settings, s3: object, s3_outage: None,
) -> None:
    data = os.urandom(12 * MIB)
    url = create(edge, token, len(data))
    check(patch(url, token, 0, data[: 6 * MIB]), Row("acknowledged", status=204))
    # The next PATCH starts while S3 is up, then S3 stops before its first part is stored.
    with open_patch(url, token, 6 * MIB, data[6 * MIB: 7 * MIB], declared=5 * MIB) as sock:
        wait_for_lease(s3, stack, url)
        devstack.stop(stack, ["s3"])
        sock.sendall(data[7 * MIB: 11 * MIB])
        head = _read_response(sock)
    assert head.startswith("HTTP/1.1 503"), head[:200]
    assert "object storage" in head and "Retry-After" in head
    check(requests.post(edge.url, headers=tus_headers(token, Upload_Length="1"), timeout=30),
          Row("create while down", status=503, out={"Retry-After": ANY}))
    devstack.start(stack, ["s3"])
    devstack.wait_healthy(stack, ["s3"], timeout=60)
    offset = wait_offset(url, token, 6 * MIB, timeout=30)
    assert offset == 6 * MIB, "the acknowledged bytes, and only those, are kept"
    deadline = time.monotonic() + 30
    while (response := patch(url, token, offset, data[offset:])).status_code == 423:
        assert time.monotonic() < deadline, "the failed request's lease was never released"
        time.sleep(0.5)
    check(response, Row("resumed", status=204, out={"Upload-Offset": str(len(data))}))
    assert stored_object(s3, stack, url) == data
    assert multipart_uploads(s3, stack, url) == []
