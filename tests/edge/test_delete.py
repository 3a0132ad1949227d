"""termination: DELETE rows; storage, tail and multipart upload are reclaimed."""

from __future__ import annotations

import os

import pytest
import requests

from tests.edge.conftest import (
    EdgeProcess,
    create,
    make_token,
    multipart_uploads,
    patch,
    stored_keys,
    tus_headers,
)
from tests.edge.table import Row, check, merged
from vora.config import Settings

ROWS = [
    Row("terminate", {}, 204),
    Row("override from POST", {"X-HTTP-Method-Override": "DELETE"}, 204),
    Row("unsupported version", {"Tus-Resumable": "0.1"}, 412, {"Tus-Version": "1.0.0"}),
    Row("no token", {"Authorization": None}, 401),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_delete(edge: EdgeProcess, token: str, row: Row) -> None:
    url = create(edge, token, 10)
    method = "POST" if "X-HTTP-Method-Override" in row.headers else "DELETE"
    response = requests.request(method, url, headers=merged(tus_headers(token), row), timeout=10)
    check(response, row)
    after = requests.head(url, headers=tus_headers(token), timeout=10).status_code
    assert after == (404 if row.status == 204 else 200)


def test_termination_reclaims_parts_tail_and_multipart_upload(
    edge: EdgeProcess, token: str, stack: Settings, s3: object,
) -> None:
    url = create(edge, token, 20 * 1024 * 1024)
    check(patch(url, token, 0, os.urandom(7 * 1024 * 1024)), Row("part+tail", status=204))
    assert len(multipart_uploads(s3, stack, url)) == 1
    check(requests.delete(url, headers=tus_headers(token), timeout=10), Row("delete", status=204))
    assert multipart_uploads(s3, stack, url) == []
    assert stored_keys(s3, stack, url) == []
    check(patch(url, token, 7 * 1024 * 1024, b"x"), Row("patch after", status=404))
    check(requests.delete(url, headers=tus_headers(token), timeout=10), Row("again", status=404))


def test_terminating_a_completed_upload_removes_the_object(
    edge: EdgeProcess, token: str, stack: Settings, s3: object,
) -> None:
    url = create(edge, token, 3)
    check(patch(url, token, 0, b"abc"), Row("done", status=204))
    check(requests.delete(url, headers=tus_headers(token), timeout=10), Row("delete", status=204))
    assert stored_keys(s3, stack, url) == []


def test_another_subject_cannot_terminate(edge: EdgeProcess, token: str, stack: Settings) -> None:
    url = create(edge, token, 10)
    mallory = tus_headers(make_token(stack, subject="mallory"))
    check(requests.delete(url, headers=mallory, timeout=10), Row("other", status=403))
    assert requests.head(url, headers=tus_headers(token), timeout=10).status_code == 200
