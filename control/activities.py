"""Bookkeeping activities: how the transcode and delete workflows write control's database.

Interface (registered by the control worker, ``python -m control.worker``)::

    from control.activities import BookkeepingActivities, create_bookkeeping

    bookkeeping = await create_bookkeeping(settings)   # opens a PostgreSQL pool
    worker = Worker(client, task_queue=jobs.CONTROL_TASK_QUEUE,
                    workflows=[...], activities=bookkeeping.activities())
    ...
    await bookkeeping.close()                           # closes the pool

    # or, with a pool you own:
    BookkeepingActivities(pool: psycopg_pool.AsyncConnectionPool)

Activities (names from vora.jobs; each takes one dataclass and returns None):

* ``jobs.RECORD_PROGRESS`` (``ProgressUpdate``): phase and percent of a PROCESSING
  video; percent never goes back. Ignored when the video is not PROCESSING or is deleted.
* ``jobs.MARK_READY`` (``MarkReadyInput``): PROCESSING -> READY with renditions,
  duration, manifest key (stored as videos.manifest_url) and thumbnail key.
* ``jobs.MARK_FAILED`` (``MarkFailedInput``): PROCESSING -> FAILED with the reason.
* ``jobs.MARK_DELETED`` (``MarkDeletedInput``): removes a deleted video's row for good.

Each is one transaction and idempotent: repeating it changes nothing and succeeds.
A video that was deleted (or is gone) is a no-op. A transition the state machine
forbids (e.g. MARK_READY on a FAILED video) raises a non-retryable
``ApplicationError`` of type ``ILLEGAL_TRANSITION_ERROR`` with the reason; a
database outage raises a retryable error, so Temporal retries it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from control.errors import IllegalTransition
from control.store import Pool, VideoStore, create_pool
from vora import jobs
from vora.config import Settings
from vora.logs import get_logger

ILLEGAL_TRANSITION_ERROR = "IllegalTransition"
_MAX_REASON = 2000

log = get_logger(__name__)


class BookkeepingActivities:
    """The four control activities, bound to one PostgreSQL pool."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.store = VideoStore(pool)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.record_progress, self.mark_ready, self.mark_failed, self.mark_deleted]

    async def close(self) -> None:
        await self.pool.close()

    @activity.defn(name=jobs.RECORD_PROGRESS)
    async def record_progress(self, update: jobs.ProgressUpdate) -> None:
        percent = min(100.0, max(0.0, float(update.percent)))
        await self.store.record_progress(update.video_id, update.phase[:32], percent)

    @activity.defn(name=jobs.MARK_READY)
    async def mark_ready(self, ready: jobs.MarkReadyInput) -> None:
        fields = {
            "renditions": [dataclasses.asdict(r) for r in ready.renditions],
            "duration_seconds": ready.duration_seconds,
            "manifest_url": ready.manifest_key,
            "thumbnail_key": ready.thumbnail_key,
            "progress_phase": "done",
            "progress_percent": 100.0,
        }
        with _illegal_is_final():
            changed = await self.store.mark_ready(ready.video_id, fields)
        log.info("video ready", video_id=ready.video_id, changed=changed)

    @activity.defn(name=jobs.MARK_FAILED)
    async def mark_failed(self, failed: jobs.MarkFailedInput) -> None:
        with _illegal_is_final():
            changed = await self.store.mark_failed(failed.video_id, failed.reason[:_MAX_REASON])
        log.info("video failed", video_id=failed.video_id, changed=changed,
                 reason=failed.reason[:200])

    @activity.defn(name=jobs.MARK_DELETED)
    async def mark_deleted(self, deleted: jobs.MarkDeletedInput) -> None:
        removed = await self.store.purge_video(deleted.video_id)
        log.info("video row removed", video_id=deleted.video_id, removed=removed)


@contextmanager
def _illegal_is_final() -> Iterator[None]:
    """Turn an illegal state transition into a non-retryable activity failure."""
    try:
        yield
    except IllegalTransition as exc:
        raise ApplicationError(exc.reason, type=ILLEGAL_TRANSITION_ERROR,
                               non_retryable=True) from exc


async def create_bookkeeping(settings: Settings) -> BookkeepingActivities:
    """Open a PostgreSQL pool from ``settings`` (without waiting for the database, so
    the worker starts during an outage) and return the activities bound to it."""
    pool = create_pool(settings)
    await pool.open(wait=False)
    return BookkeepingActivities(pool)
