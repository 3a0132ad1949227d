"""expiration: Upload-Expires, 410 once expired, and the sweeper reclaims everything."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import requests

from tests.edge.conftest import (
    EdgeProcess,
    create,
    multipart_uploads,
    patch,
    stored_keys,
    stored_object,
    tus_headers,
)
from tests.edge.table import ANY, Row, check
from vora.config import Settings


def test_expired_upload_is_410_then_reclaimed(
    edge_factory: Callable[..., EdgeProcess], token: str, stack: Settings, s3: object,
) -> None:
    # The first sweep runs at start; the next, 6 s later, must find the upload expired.
    edge = edge_factory(VORA_EDGE_UPLOAD_EXPIRY_SECONDS="2",
                        VORA_EDGE_SWEEP_INTERVAL_SECONDS="6")
    done = create(edge, token, 3)
    check(patch(done, token, 0, b"abc"), Row("completed", status=204))
    url = create(edge, token, 20 * 1024 * 1024)
    response = patch(url, token, 0, os.urandom(6 * 1024 * 1024))  # one part and a tail
    check(response, Row("part", status=204, out={"Upload-Expires": ANY}))
    assert len(multipart_uploads(s3, stack, url)) == 1
    time.sleep(2.1)
    check(requests.head(url, headers=tus_headers(token), timeout=10),
          Row("expired head", status=410))
    check(patch(url, token, 6 * 1024 * 1024, b"x"),
          Row("expired patch", status=410, reason="expired"))
    deadline = time.monotonic() + 25
    while stored_keys(s3, stack, url) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert stored_keys(s3, stack, url) == []
    assert multipart_uploads(s3, stack, url) == []
    assert requests.head(url, headers=tus_headers(token), timeout=10).status_code == 404
    # A finished upload never expires: its object is what control will transcode.
    assert stored_object(s3, stack, done) == b"abc"
    assert requests.head(done, headers=tus_headers(token), timeout=10).status_code == 200
