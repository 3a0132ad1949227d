"""Soak variants of scenario 1 (``-m soak``, minutes on 2 cores; not part of make test):
a long reset storm on one larger upload, and many uploads at once through one faulty
network. Each upload must arrive bit for bit."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from tests.edge.conftest import Control, EdgeProcess, free_port, stored_object, upload_id
from tests.reliability.faultproxy import ResettingProxy
from vora.config import Settings

KIB = 1024
MIB = 1024 * KIB
# tuspy retries a failed chunk recursively (two frames a retry), so a long storm is met
# the way an app meets it: a bounded uploader, and a new one resuming from the server's
# offset when it gives up.
RETRIES_PER_UPLOADER = 25


def upload_until_done(client: TusClient, data: bytes, deadline: float) -> tuple[str, int]:
    """Upload ``data``, resuming with a fresh uploader whenever one gives up; returns the
    upload URL and how many times it had to resume."""
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=256 * KIB,
                               retries=RETRIES_PER_UPLOADER, retry_delay=0.05)
    url = str(uploader.create_url())
    uploader.set_url(url)
    resumes = 0
    while True:
        try:
            uploader.upload()
            return url, resumes
        except (TusCommunicationError, TusUploadFailed):
            assert time.monotonic() < deadline, f"{url}: not done after {resumes} resumes"
            resumes += 1
            uploader = client.uploader(file_stream=io.BytesIO(data), url=url,
                                       chunk_size=256 * KIB, retries=RETRIES_PER_UPLOADER,
                                       retry_delay=0.05)


@contextmanager
def edge_behind(proxy_resets: int, reset_after: int, edge_factory: Callable[..., EdgeProcess],
                token: str) -> Iterator[tuple[TusClient, ResettingProxy]]:
    """An edge whose public URL is a proxy that resets ``proxy_resets`` connections after
    ``reset_after`` bytes each, and a TUS client of that URL; the proxy closes after."""
    edge_port = free_port()
    proxy = ResettingProxy(edge_port, reset_after=reset_after, max_resets=proxy_resets).start()
    try:
        public = f"http://127.0.0.1:{proxy.port}/files/"
        edge_factory(port=edge_port, VORA_EDGE_PUBLIC_URL=public)
        yield TusClient(public, headers={"Authorization": f"Bearer {token}"}), proxy
    finally:
        proxy.close()


@pytest.mark.soak
def test_a_32_mib_upload_survives_300_connection_resets(
    edge_factory: Callable[..., EdgeProcess], token: str, stack: Settings, s3: object,
    control: Control,
) -> None:
    """Pass: 32 MiB through a proxy that resets 300 connections mid-request (RST after
    96 KiB each) arrives whole within 10 minutes: the proxy did reset 300 times, and the
    S3 object's SHA-256 and the one the edge reports to control equal the source's."""
    data = os.urandom(32 * MIB + 4321)
    with edge_behind(300, 96 * KIB, edge_factory, token) as (client, proxy):
        url, resumes = upload_until_done(client, data, time.monotonic() + 600)
    assert proxy.resets == 300, f"only {proxy.resets} resets happened"
    digest = hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(stored_object(s3, stack, url)).hexdigest() == digest
    assert control.wait_for(upload_id(url)).sha256 == digest
    print(f"300 resets, {resumes} uploader restarts")


@pytest.mark.soak
def test_16_concurrent_uploads_through_a_resetting_network(
    edge_factory: Callable[..., EdgeProcess], token: str, stack: Settings, s3: object,
    control: Control,
) -> None:
    """Pass: 16 uploads of 3-5 MiB run at once (one thread each) through one proxy that
    resets 160 of their connections after 64 KiB; within 10 minutes each arrives whole:
    every S3 object's SHA-256 and the SHA-256 the edge reports for it equal its source's,
    and the proxy did reset 160 times."""
    sources = [os.urandom(3 * MIB + i * 131 * KIB + i) for i in range(16)]
    with edge_behind(160, 64 * KIB, edge_factory, token) as (client, proxy):
        deadline = time.monotonic() + 600
        with ThreadPoolExecutor(len(sources)) as pool:
            done = list(pool.map(lambda data: upload_until_done(client, data, deadline),
                                 sources))
    assert proxy.resets == 160, f"only {proxy.resets} resets happened"
    for data, (url, _) in zip(sources, done, strict=True):
        digest = hashlib.sha256(data).hexdigest()
        assert hashlib.sha256(stored_object(s3, stack, url)).hexdigest() == digest, url
        assert control.wait_for(upload_id(url)).sha256 == digest, url
    print(f"160 resets over 16 uploads, {sum(r for _, r in done)} uploader restarts")
