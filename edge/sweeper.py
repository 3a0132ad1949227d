"""Periodic housekeeping every replica may run (each step is idempotent).

It reclaims expired unfinished uploads (objects, tail and the S3 multipart upload) and
re-sends UploadCompleted for finished uploads control has not acknowledged.
"""

from __future__ import annotations

import asyncio

from edge import metrics
from edge.callback import CompletionNotifier
from edge.info import UploadInfo
from edge.objects import StorageUnavailable
from edge.protocol import TusError
from edge.store import UploadStore
from vora.logs import get_logger

log = get_logger(__name__)


async def sweep_once(store: UploadStore, notifier: CompletionNotifier) -> int:
    """One pass; returns how many uploads were reclaimed."""
    reclaimed = 0
    hashed = store.hashed_ids()  # taken before listing, so uploads created meanwhile stay
    infos = await store.infos()
    store.forget(hashed - {info.id for info, _ in infos if not info.completed})
    for info, stored in infos:
        if info.completing and not info.completed:
            await store.finish_completing(info, stored.etag)
        elif info.completed and info.concat != "partial":
            notifier.notify(info)
        elif info.is_expired() and await _reclaim(store, info):
            reclaimed += 1
    return reclaimed


async def _reclaim(store: UploadStore, info: UploadInfo) -> bool:
    """Terminate an expired upload unless a request still holds its lease (next pass then)."""
    try:
        await store.lease(info.id).acquire()
    except TusError:
        return False
    await store.terminate(info)  # removes the lease object with everything else
    metrics.UPLOADS_EXPIRED.inc()
    log.info("expired upload reclaimed", upload_id=info.id)
    return True


async def run_sweeper(store: UploadStore, notifier: CompletionNotifier,
                      interval: float) -> None:
    while True:
        try:
            await sweep_once(store, notifier)
        except StorageUnavailable as exc:
            log.warning("sweep skipped: object storage unavailable", reason=str(exc))
        except Exception:
            log.exception("sweep failed")
        await asyncio.sleep(interval)
