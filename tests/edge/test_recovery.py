"""An edge that dies between recording the last part and completing the multipart
upload: the sweeper finishes the completion, and control still hears of it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from typing import Any

from edge.callback import CompletionNotifier
from edge.info import UploadInfo
from edge.objects import S3Objects
from edge.store import StoreLimits, UploadStore
from edge.sweeper import sweep_once
from tests.edge.conftest import PART, Control, multipart_uploads, sha256, stored_keys
from vora import storage
from vora.config import Settings


def test_an_interrupted_completion_is_finished_by_the_sweeper(
    stack: Settings, s3: object, control: Control,
) -> None:
    # Its own loop in its own thread: the session's Playwright (sync API) keeps a loop
    # marked running on the main thread once a browser test has run.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _interrupted_completion(stack, s3, control)).result(120)


async def _interrupted_completion(stack: Settings, s3: object, control: Control) -> None:
    objects = S3Objects(storage.s3_client(stack), stack.bucket_raw)
    completed: list[UploadInfo] = []
    notifiers: list[CompletionNotifier] = []

    async def on_complete(info: UploadInfo) -> None:  # wired as edge.main wires it
        completed.append(info)
        notifiers[0].notify(info)

    store = UploadStore(objects, StoreLimits(max_size=64 * PART, part_bytes=PART,
                                             expiry_seconds=600, lease_seconds=30), on_complete)
    data = os.urandom(PART + 1234)
    info, etag = await store.create("alice", len(data), {"filename": "a.mp4"})
    writer = store.writer(info, etag)
    await writer.begin()
    await writer.write(data)
    await writer.mark_completing()  # ... and the process dies here
    url = f"/files/{info.id}"
    assert storage.raw_original_key(info.id) not in stored_keys(s3, stack, url)
    assert len(multipart_uploads(s3, stack, url)) == 1

    # A new process: a fresh store (no hash state) and notifier, as after a restart.
    restarted = UploadStore(objects, store.limits, on_complete)
    notifier = CompletionNotifier(f"127.0.0.1:{control.port}", stack.service_token,
                                  on_ack=restarted.mark_notified)
    notifiers.append(notifier)
    marker = f".edge/pending/{info.id}"
    try:
        await sweep_once(restarted, notifier)
        for _ in range(100):  # until control acknowledged and the edge recorded it
            if marker not in _pending(s3, stack):
                break
            await asyncio.sleep(0.1)
    finally:
        await notifier.close()
    calls = [req for req, _ in control.calls if req.upload_id == info.id]
    body = s3.get_object(Bucket=stack.bucket_raw,  # type: ignore[attr-defined]
                         Key=storage.raw_original_key(info.id))["Body"].read()
    assert body == data
    assert multipart_uploads(s3, stack, url) == []
    assert [done.sha256 for done in completed] == [sha256(data)]
    assert calls and calls[0].sha256 == sha256(data)
    assert marker not in _pending(s3, stack), "acknowledged: nothing left to sweep"


def _pending(s3: Any, stack: Settings) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.bucket_raw, Prefix=".edge/pending/")
    return [item["Key"] for page in pages for item in page.get("Contents", [])]
