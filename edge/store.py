"""UploadStore: the TUS operations on uploads, independent of HTTP.

Handlers translate requests into these calls; the store talks to S3 only through
ObjectStorage, so it holds all upload rules (limits, ownership, expiry, completion).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge.info import PENDING_PREFIX, UploadInfo, data_key, info_key, pending_key
from edge.lease import Lease
from edge.objects import ObjectStorage, Precondition, StoredObject
from edge.protocol import Checksum, TusError
from edge.writer import Committed, Hasher, UploadWriter, complete_upload
from vora.logs import get_logger
from vora.storage import UPLOAD_ID_RE, new_upload_id, raw_prefix, validate_upload_id

log = get_logger(__name__)

OnComplete = Callable[[UploadInfo], Awaitable[None]]


@dataclass(frozen=True)
class StoreLimits:
    max_size: int
    part_bytes: int
    expiry_seconds: float
    lease_seconds: float
    parts_in_flight: int = 1


class UploadStore:
    def __init__(self, objects: ObjectStorage, limits: StoreLimits,
                 on_complete: OnComplete) -> None:
        self.objects = objects
        self.limits = limits
        self.on_complete = on_complete
        # Live SHA-256 state per upload in this process, valid only at the stored offset.
        self._hashers: dict[str, tuple[int, Hasher]] = {}

    # --- reading -----------------------------------------------------------------------
    async def load(self, upload_id: str, subject: str) -> tuple[UploadInfo, str]:
        """The upload's committed state and ETag: 404 unknown, 403 not yours, 410 expired."""
        try:
            validate_upload_id(upload_id)
        except ValueError:
            raise TusError(404, "no such upload") from None
        stored = await self.objects.get(info_key(upload_id))
        if stored is None:
            raise TusError(404, "no such upload")
        info = UploadInfo.from_json(stored.body)
        if info.subject != subject:
            raise TusError(403, "this upload belongs to another upload token's subject")
        if info.is_expired() and not info.completed:
            raise TusError(410, "this upload expired; start a new one")
        return info, stored.etag

    def check_length(self, length: int, token_max: int) -> None:
        if length > self.limits.max_size:
            raise TusError(413, f"Upload-Length exceeds the maximum of {self.limits.max_size}")
        if length > token_max:
            raise TusError(413, f"Upload-Length exceeds the upload token's maximum of {token_max}")

    # --- creation ----------------------------------------------------------------------
    async def create(self, subject: str, length: int | None, metadata: dict[str, str],
                     concat: str = "") -> tuple[UploadInfo, str]:
        upload_id = new_upload_id()
        info = UploadInfo(id=upload_id, subject=subject, length=length, metadata=metadata,
                          expires_at=time.time() + self.limits.expiry_seconds,
                          concat=concat)  # type: ignore[arg-type]
        await self.objects.put(pending_key(upload_id), b"")  # first: no state without a marker
        etag = await self.objects.put(info_key(upload_id), info.to_json(), if_absent=True)
        self._hashers[upload_id] = (0, hashlib.sha256())
        log.info("upload created", upload_id=upload_id, length=length, concat=concat or None)
        if length == 0:
            info, etag = await self._commit_empty(info, etag)
        return info, etag

    async def _commit_empty(self, info: UploadInfo, etag: str) -> tuple[UploadInfo, str]:
        writer = self.writer(info, etag)
        committed = await writer.commit()
        await self._after_commit(committed)
        return committed.info, committed.etag

    # --- writing -----------------------------------------------------------------------
    def lease(self, upload_id: str) -> Lease:
        return Lease(self.objects, upload_id, self.limits.lease_seconds)

    def writer(self, info: UploadInfo, etag: str, checksum: Checksum | None = None
               ) -> UploadWriter:
        offset, hasher = self._hashers.get(info.id, (-1, None))
        live = hasher if offset == info.offset else None
        return UploadWriter(self.objects, info, etag, part_bytes=self.limits.part_bytes,
                            hasher=live, checksum=checksum,
                            parts_in_flight=self.limits.parts_in_flight)

    async def set_length(self, info: UploadInfo, etag: str, length: int,
                         token_max: int) -> tuple[UploadInfo, str]:
        """Fix a deferred length (creation-defer-length), once."""
        if info.length is not None:
            if info.length != length:
                raise TusError(400, "Upload-Length is already set and cannot change")
            return info, etag
        self.check_length(length, token_max)
        if length < info.offset:
            raise TusError(400, f"Upload-Length {length} is below the offset {info.offset}")
        info = info.with_(length=length)
        return info, await self.objects.put(info_key(info.id), info.to_json(), if_match=etag)

    async def commit(self, writer: UploadWriter) -> UploadInfo:
        try:
            committed = await writer.commit()
        except Precondition:
            await writer.discard()
            raise TusError(409, "the upload changed while this request ran; HEAD and resume") \
                from None
        except BaseException:
            await writer.discard()  # no part upload outlives its request
            raise
        await self._after_commit(committed)
        return committed.info

    async def _after_commit(self, committed: Committed) -> None:
        info = committed.info
        if committed.hasher is not None and not info.completed:
            self._hashers[info.id] = (info.offset, committed.hasher)
        else:
            self._hashers.pop(info.id, None)
        if info.completed:
            log.info("upload completed", upload_id=info.id, size=info.offset, sha256=info.sha256)
            await self.on_complete(info)

    async def finish_completing(self, info: UploadInfo, etag: str) -> bool:
        """Complete an upload whose writer died between recording its last part and
        completing it; False when a request holds its lease (the next sweep retries)."""
        lease = self.lease(info.id)
        try:
            await lease.acquire()
        except TusError:
            return False
        try:
            committed = await complete_upload(self.objects, info, etag, None)
        except Precondition:
            return False
        finally:
            await lease.release()
        log.info("interrupted completion finished", upload_id=info.id)
        await self._after_commit(committed)
        return True

    async def mark_notified(self, upload_id: str) -> None:
        """Record control's acknowledgement; a lost race is retried, a deleted upload ignored."""
        for _ in range(5):
            stored = await self.objects.get(info_key(upload_id))
            if stored is None:
                return
            info = UploadInfo.from_json(stored.body).with_(notified=True)
            try:
                await self.objects.put(info_key(upload_id), info.to_json(), if_match=stored.etag)
                await self.objects.delete(pending_key(upload_id))  # nothing left to do
                return
            except Precondition:
                continue

    # --- concatenation -----------------------------------------------------------------
    async def concatenate(self, subject: str, part_ids: tuple[str, ...],
                          metadata: dict[str, str], token_max: int) -> UploadInfo:
        """Create a final upload from finished partial uploads, streaming them in order."""
        partials = [await self._finished_partial(part_id, subject) for part_id in part_ids]
        total = sum(part.offset for part in partials)
        self.check_length(total, token_max)
        info, etag = await self.create(subject, total, metadata, concat="final")
        if info.completed:
            return info
        info = info.with_(concat_parts=part_ids)
        etag = await self.objects.put(info_key(info.id), info.to_json(), if_match=etag)
        writer = self.writer(info, etag)
        for part in partials:
            async for chunk in self.objects.read_chunks(data_key(part.id)):
                await writer.write(chunk)
        return await self.commit(writer)

    async def _finished_partial(self, upload_id: str, subject: str) -> UploadInfo:
        info, _ = await self.load(upload_id, subject)
        if info.concat != "partial":
            raise TusError(400, f"upload {upload_id} is not a partial upload")
        if not info.completed:
            raise TusError(400, f"partial upload {upload_id} is not finished")
        return info

    # --- termination and expiry ---------------------------------------------------------
    async def terminate(self, info: UploadInfo) -> None:
        """Remove every object and multipart upload of the upload; safe to repeat."""
        prefix = raw_prefix(info.id)
        for key, multipart_id in await self.objects.list_multipart(prefix):
            await self.objects.abort_multipart(key, multipart_id)
        keys = await self.objects.list_keys(prefix)
        last = {info_key(info.id)}
        for key in [k for k in keys if k not in last]:
            await self.objects.delete(key)
        await self.objects.delete(info_key(info.id))
        await self.objects.delete(pending_key(info.id))
        self._hashers.pop(info.id, None)
        log.info("upload terminated", upload_id=info.id)

    def hashed_ids(self) -> set[str]:
        return set(self._hashers)

    def forget(self, upload_ids: set[str]) -> None:
        """Drop hash states of uploads that finished or vanished on another replica."""
        for upload_id in upload_ids:
            self._hashers.pop(upload_id, None)

    async def infos(self) -> list[tuple[UploadInfo, StoredObject]]:
        """The state of every upload with work left (the sweeper's view)."""
        found = []
        for key in await self.objects.list_keys(PENDING_PREFIX):
            upload_id = key.removeprefix(PENDING_PREFIX)
            if not UPLOAD_ID_RE.fullmatch(upload_id):
                continue
            stored = await self.objects.get(info_key(upload_id))
            if stored is None:  # being created or terminated right now: not ours to judge
                continue
            found.append((UploadInfo.from_json(stored.body), stored))
        return found
