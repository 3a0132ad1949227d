"""concatenation: partial uploads assembled into a final one; PATCH to a final is 403."""

from __future__ import annotations

import os

import requests

from tests.edge.conftest import (
    Control,
    EdgeProcess,
    create,
    make_token,
    multipart_uploads,
    patch,
    sha256,
    stored_object,
    tus_headers,
    upload_id,
)
from tests.edge.table import ANY, Row, check
from vora.config import Settings


def _partial(edge: EdgeProcess, token: str, data: bytes) -> str:
    url = create(edge, token, len(data), Upload_Concat="partial")
    check(patch(url, token, 0, data), Row("partial", status=204))
    return url


def _final(edge: EdgeProcess, token: str, *urls: str) -> requests.Response:
    headers = tus_headers(token, Upload_Concat="final;" + " ".join(urls))
    return requests.post(edge.url, headers=headers, timeout=30)


def test_final_upload_joins_partials_in_order(
    edge: EdgeProcess, token: str, stack: Settings, s3: object, control: Control,
) -> None:
    first, second = os.urandom(6 * 1024 * 1024), os.urandom(1234)
    a, b = _partial(edge, token, first), _partial(edge, token, second)
    # Partials are named by absolute URL or by path, as clients do both.
    response = _final(edge, token, a, "/files/" + upload_id(b))
    check(response, Row("final", status=201, out={"Location": ANY,
                                                   "Upload-Offset": str(len(first + second))}))
    final = response.headers["Location"]
    assert stored_object(s3, stack, final) == first + second
    assert multipart_uploads(s3, stack, final) == []
    head = requests.head(final, headers=tus_headers(token), timeout=10)
    check(head, Row("head", status=200, out={
        "Upload-Concat": f"final;{a} {b}", "Upload-Length": str(len(first + second))}))
    call = control.wait_for(upload_id(final))
    assert call.sha256 == sha256(first + second)
    assert all(req.upload_id not in (upload_id(a), upload_id(b)) for req, _ in control.calls), \
        "partial uploads are not files for control"
    check(patch(final, token, len(first + second), b"x"), Row("patch final", status=403))


def test_partial_reports_upload_concat(edge: EdgeProcess, token: str) -> None:
    url = create(edge, token, 3, Upload_Concat="partial")
    head = requests.head(url, headers=tus_headers(token), timeout=10)
    check(head, Row("partial head", status=200, out={"Upload-Concat": "partial"}))


def test_unfinished_partial_is_refused(edge: EdgeProcess, token: str) -> None:
    url = create(edge, token, 10, Upload_Concat="partial")
    check(_final(edge, token, url), Row("unfinished", status=400, reason="not finished"))


def test_a_regular_upload_is_not_a_partial(edge: EdgeProcess, token: str) -> None:
    url = create(edge, token, 1)
    check(patch(url, token, 0, b"x"), Row("done", status=204))
    check(_final(edge, token, url), Row("not partial", status=400, reason="not a partial"))


def test_unknown_and_foreign_partials(edge: EdgeProcess, token: str, stack: Settings) -> None:
    check(_final(edge, token, edge.url + "a" * 32), Row("unknown", status=404))
    check(_final(edge, token, "/files/not-an-id"), Row("bad id", status=400))
    theirs = _partial(edge, make_token(stack, subject="bob"), b"abc")
    check(_final(edge, token, theirs), Row("foreign", status=403))
