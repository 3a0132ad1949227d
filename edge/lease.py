"""A per-upload write lease shared by every replica: ``{upload_id}/.lock`` in S3.

The lease is created with ``If-None-Match: *``, so exactly one request across all
replicas wins; the others get 423 Locked and retry (tus clients do). A holder that
dies leaves a lease that expires; the next writer replaces it with ``If-Match`` on
the stale ETag, so two writers cannot both take over. While bytes flow the holder
renews it, also with ``If-Match``: losing the lease aborts the write before commit.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time

from edge.info import lock_key
from edge.objects import ObjectStorage, Precondition, StorageUnavailable
from edge.protocol import TusError


class Lease:
    def __init__(self, objects: ObjectStorage, upload_id: str, seconds: float) -> None:
        self.objects = objects
        self.key = lock_key(upload_id)
        self.seconds = seconds
        self.owner = secrets.token_hex(8)
        self.etag: str | None = None
        self.renewed_at = 0.0

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires_at": time.time() + self.seconds}).encode()

    async def acquire(self) -> None:
        """Take the lease or raise 423 naming why."""
        try:
            self.etag = await self.objects.put(self.key, self._body(), if_absent=True)
        except Precondition:
            await self._take_over_stale()
        self.renewed_at = time.monotonic()

    async def _take_over_stale(self) -> None:
        current = await self.objects.get(self.key)
        if current is not None:
            expires_at = float(json.loads(current.body).get("expires_at", 0))
            if expires_at > time.time():
                raise TusError(423, "another request is writing to this upload; retry shortly")
        try:
            if current is None:
                self.etag = await self.objects.put(self.key, self._body(), if_absent=True)
            else:
                self.etag = await self.objects.put(self.key, self._body(), if_match=current.etag)
        except Precondition:
            raise TusError(423, "another request took this upload's lease; retry shortly") from None

    async def renew_if_due(self) -> None:
        """Extend the lease once a third of it has passed; 423 if another writer took it."""
        if time.monotonic() - self.renewed_at < self.seconds / 3 or self.etag is None:
            return
        try:
            self.etag = await self.objects.put(self.key, self._body(), if_match=self.etag)
        except Precondition:
            self.etag = None
            raise TusError(423, "this upload's lease was lost; resume from HEAD") from None
        self.renewed_at = time.monotonic()

    async def release(self) -> None:
        if self.etag is None:
            return
        current = await self.objects.get(self.key)
        if current is not None and current.etag == self.etag:
            await self.objects.delete(self.key)
        self.etag = None

    async def release_eventually(self, first_delay: float = 0.5) -> None:
        """Retry release with backoff until it succeeds or the lease has expired anyway."""
        deadline = time.monotonic() + self.seconds
        delay = first_delay
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            try:
                await self.release()
                return
            except StorageUnavailable:
                delay = min(delay * 2, 10.0)
