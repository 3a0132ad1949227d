"""Scenario 1: a TUS upload through a connection-resetting network keeps every byte."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable

from tusclient.client import TusClient

from tests.edge.conftest import Control, EdgeProcess, free_port, stored_object, upload_id
from tests.reliability.faultproxy import ResettingProxy
from vora.config import Settings

KIB = 1024
RESETS = 20


def test_upload_survives_20_connection_resets_and_an_edge_restart(
    edge_factory: Callable[..., EdgeProcess], token: str, stack: Settings, s3: object,
    control: Control,
) -> None:
    """Pass: tuspy, through a proxy that resets 20 connections mid-request (RST after
    96 KiB each), uploads 2 MiB; the edge is then SIGKILLed and restarted on the same
    port, and a new tuspy uploader resumes at exactly the acknowledged offset and
    finishes; the proxy did reset 20 times; the object stored in S3 and the SHA-256 the
    edge reports to control both equal the source's SHA-256."""
    data = os.urandom(3 * 1024 * KIB + 333)
    source_sha = hashlib.sha256(data).hexdigest()
    edge_port = free_port()
    proxy = ResettingProxy(edge_port, reset_after=96 * KIB, max_resets=RESETS).start()
    try:
        # The edge advertises the proxy, so every Location tuspy follows goes through it.
        public = f"http://127.0.0.1:{proxy.port}/files/"
        first = edge_factory(port=edge_port, VORA_EDGE_PUBLIC_URL=public)
        client = TusClient(public, headers={"Authorization": f"Bearer {token}"})
        uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=256 * KIB,
                                   retries=RESETS + 5, retry_delay=0.2)
        uploader.upload(stop_at=2 * 1024 * KIB)
        assert uploader.url is not None
        url = str(uploader.url)
        first.kill()  # SIGKILL: no graceful shutdown, in-memory hash state is gone
        edge_factory(port=edge_port, VORA_EDGE_PUBLIC_URL=public)
        resumed = client.uploader(file_stream=io.BytesIO(data), url=url,
                                  chunk_size=256 * KIB, retries=RESETS + 5, retry_delay=0.2)
        assert resumed.offset == uploader.offset == 2 * 1024 * KIB
        resumed.upload()
    finally:
        proxy.close()
    assert proxy.resets == RESETS, f"only {proxy.resets} resets happened"
    assert hashlib.sha256(stored_object(s3, stack, url)).hexdigest() == source_sha
    assert control.wait_for(upload_id(url)).sha256 == source_sha
