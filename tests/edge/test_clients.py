"""Real TUS clients against a real edge: tuspy (cut connections, restarts) and tus-js-client."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from tusclient.client import TusClient
from tusclient.uploader.uploader import Uploader

from tests.edge.conftest import (
    ROOT,
    Control,
    EdgeProcess,
    free_port,
    multipart_uploads,
    open_patch,
    sha256,
    stored_object,
    tus_headers,
    upload_id,
    wait_for_lease,
    wait_offset,
)
from vora.config import Settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser

MIB = 1024 * 1024


def _client(edge: EdgeProcess, token: str) -> TusClient:
    return TusClient(edge.url, headers={"Authorization": f"Bearer {token}"})


def _url(uploader: Uploader) -> str:
    assert uploader.url is not None, "tuspy created no upload"
    return str(uploader.url)


def _offset(url: str, token: str) -> int:
    return int(requests.head(url, headers=tus_headers(token), timeout=10).headers["Upload-Offset"])


def test_tuspy_uploads_in_chunks_with_checksums(
    edge: EdgeProcess, token: str, stack: Settings, s3: object, control: Control,
) -> None:
    data = os.urandom(11 * MIB + 5)
    uploader = _client(edge, token).uploader(
        file_stream=io.BytesIO(data), chunk_size=3 * MIB, metadata={"filename": "a.mp4"},
        upload_checksum=True)
    uploader.upload()
    assert stored_object(s3, stack, _url(uploader)) == data
    assert control.wait_for(upload_id(_url(uploader))).sha256 == sha256(data)


def test_tuspy_resumes_after_the_connection_is_cut_mid_patch(
    edge: EdgeProcess, token: str, stack: Settings, s3: object, control: Control,
) -> None:
    data = os.urandom(8 * MIB + 77)
    uploader = _client(edge, token).uploader(file_stream=io.BytesIO(data), chunk_size=2 * MIB)
    uploader.upload_chunk()  # type: ignore[no-untyped-call]
    url = _url(uploader)
    # The connection drops 1.5 MiB into a 6 MiB PATCH: the edge keeps what arrived.
    sock = open_patch(url, token, 2 * MIB, data[2 * MIB: 2 * MIB + 3 * MIB // 2], 6 * MIB)
    wait_for_lease(s3, stack, url)
    sock.close()
    kept = wait_offset(url, token, 2 * MIB + 1)
    assert 2 * MIB < kept <= 2 * MIB + 3 * MIB // 2
    resumed = _client(edge, token).uploader(
        file_stream=io.BytesIO(data), url=url, chunk_size=2 * MIB, retries=3, retry_delay=1)
    assert resumed.offset == kept
    resumed.upload()
    assert stored_object(s3, stack, url) == data
    assert multipart_uploads(s3, stack, url) == []
    assert control.wait_for(upload_id(url)).sha256 == sha256(data)


def test_restart_mid_upload_then_resume(
    edge_factory: Callable[..., EdgeProcess], token: str, stack: Settings, s3: object,
    control: Control,
) -> None:
    """A crashed edge loses nothing acknowledged; the SHA-256 is recomputed from S3."""
    data = os.urandom(13 * MIB + 3)
    port = free_port()
    first = edge_factory(port=port)
    uploader = _client(first, token).uploader(file_stream=io.BytesIO(data), chunk_size=7 * MIB)
    uploader.upload_chunk()  # type: ignore[no-untyped-call]
    url = _url(uploader)
    first.kill()  # SIGKILL: no graceful shutdown, the in-memory hash state is gone
    second = edge_factory(port=port)
    resumed = _client(second, token).uploader(
        file_stream=io.BytesIO(data), url=url, chunk_size=7 * MIB)
    assert resumed.offset == 7 * MIB
    resumed.upload()
    assert hashlib.sha256(stored_object(s3, stack, url)).hexdigest() == sha256(data)
    assert control.wait_for(upload_id(url)).sha256 == sha256(data)
    assert multipart_uploads(s3, stack, url) == []


def test_callback_is_retried_until_control_acknowledges(
    edge: EdgeProcess, token: str, control: Control, s3: object, stack: Settings,
) -> None:
    control.fail_first = 2
    uploader = _client(edge, token).uploader(file_stream=io.BytesIO(b"abc"))
    uploader.upload()
    call = control.wait_for(upload_id(_url(uploader)))
    assert control.fail_first == 0
    assert call.size_bytes == 3
    info_key = f"{upload_id(_url(uploader))}/.info"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        body = s3.get_object(Bucket=stack.bucket_raw, Key=info_key)["Body"].read()  # type: ignore[attr-defined]
        if b'"notified":true' in body:
            return
        time.sleep(0.1)
    raise AssertionError("the acknowledgement was never recorded")


def test_the_last_patch_answers_after_control_acknowledged(
    edge: EdgeProcess, token: str, control: Control,
) -> None:
    """An app calls CompleteUpload the moment tus says done: control must know by then."""
    uploader = _client(edge, token).uploader(file_stream=io.BytesIO(b"x" * 1000))
    uploader.upload()
    known = {request.upload_id for request, _ in control.calls}
    assert upload_id(_url(uploader)) in known


def test_a_failing_control_holds_the_last_patch_only_until_the_bound(
    edge_factory: Callable[..., EdgeProcess], token: str, control: Control,
) -> None:
    """Control refusing: the client is answered at VORA_EDGE_CALLBACK_WAIT_SECONDS, and the
    report is still delivered once control accepts."""
    edge = edge_factory(VORA_EDGE_CALLBACK_WAIT_SECONDS="1")
    control.fail_first = 4  # refusals at ~0, 0.5, 1.5, 3.5 s; accepted at ~7.5 s
    uploader = _client(edge, token).uploader(file_stream=io.BytesIO(b"y" * 1000))
    started = time.monotonic()
    uploader.upload()
    answered = time.monotonic() - started
    assert 0.9 < answered < 4, f"the last PATCH took {answered:.1f} s with a 1 s bound"
    assert upload_id(_url(uploader)) not in {request.upload_id for request, _ in control.calls}
    assert control.wait_for(upload_id(_url(uploader)), timeout=20).size_bytes == 1000
    assert "edge_callback_wait_timeouts_total 1.0" in requests.get(
        f"{edge.base}/metrics", timeout=5).text


# --- browser ---------------------------------------------------------------------------------

PAGE = """<!doctype html><meta charset="utf-8"><script src="/tus.min.js"></script>
<script>
window.runUpload = (endpoint, token, size) => new Promise((resolve, reject) => {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = i % 251;
  const upload = new tus.Upload(new Blob([bytes]), {
    endpoint, chunkSize: 2 * 1024 * 1024, retryDelays: [0, 500, 1000],
    headers: {Authorization: "Bearer " + token},
    metadata: {filename: "browser.mp4", filetype: "video/mp4"},
    onError: (err) => reject(String(err)),
    onSuccess: () => resolve(upload.url),
  });
  upload.start();
});
</script>"""


@pytest.fixture
def page_origin(tmp_path: Path) -> Iterator[str]:
    """The app's page on another origin than the edge, so the browser enforces CORS."""
    (tmp_path / "index.html").write_text(PAGE)
    script = ROOT / "node_modules" / "tus-js-client" / "dist" / "tus.min.js"
    (tmp_path / "tus.min.js").write_bytes(script.read_bytes())

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_tus_js_client_uploads_from_a_browser_page(
    browser: Browser, page_origin: str, edge: EdgeProcess, token: str, stack: Settings,
    s3: object, control: Control,
) -> None:
    size = 5 * MIB + 321
    page = browser.new_page()
    try:
        page.goto(f"{page_origin}/index.html")
        url = page.evaluate("([e, t, s]) => window.runUpload(e, t, s)", [edge.url, token, size])
    finally:
        page.close()
    expected = bytes(i % 251 for i in range(size))
    assert stored_object(s3, stack, url) == expected
    call = control.wait_for(upload_id(url))
    assert call.sha256 == sha256(expected)
    assert dict(call.metadata) == {"filename": "browser.mp4", "filetype": "video/mp4"}
