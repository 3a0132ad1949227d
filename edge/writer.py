"""Streaming one request's bytes into an upload's S3 multipart upload.

Bytes collect in a buffer that starts with the upload's stored tail. Whenever the
buffer holds a full part it is uploaded, so memory stays below one part plus one
network chunk whatever the file size. Nothing is visible to other requests until
``commit`` writes the new .info: parts uploaded by a request that fails are simply
not listed there and are replaced or aborted later.

The IOLoop only queues bytes: the whole-object SHA-256 and the request's checksum are
computed on one hashing thread (hashlib releases the GIL on large updates, so this runs
beside the loop on another core), and a part is joined from the received chunks in one
copy.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from edge.info import UploadInfo, data_key, info_key, tail_key
from edge.objects import ObjectStorage, Part
from edge.protocol import Checksum, TusError

Hasher = Any  # hashlib's hash objects have no public type
# One thread for the process keeps every upload's updates in arrival order, and hashes far
# faster than uploads arrive (SHA-256 at 1.7 GB/s on the 2-core development VM).
_HASH_POOL = ThreadPoolExecutor(1, thread_name_prefix="edge-hash")


@dataclass
class Committed:
    info: UploadInfo
    etag: str
    hasher: Hasher | None  # the whole-object SHA-256 so far, None when it was lost


class UploadWriter:
    def __init__(self, objects: ObjectStorage, info: UploadInfo, etag: str, *,
                 part_bytes: int, hasher: Hasher | None,
                 checksum: Checksum | None = None, parts_in_flight: int = 1) -> None:
        self.objects = objects
        self.info = info
        self.etag = etag
        self.part_bytes = part_bytes
        self.hasher = hasher.copy() if hasher is not None else None
        self.checksum = checksum
        self.request_hash = hashlib.new(checksum.algorithm) if checksum else None
        self.hashing: asyncio.Future[None] | None = None  # the last update queued
        self.chunks: deque[bytes] = deque()  # received bytes not yet in a part, in order
        self.buffered = 0
        self.received = 0
        self.multipart_id = info.multipart_id
        # Part uploads run while the next part is received; waiting for the oldest once
        # ``parts_in_flight`` are pending bounds memory to (parts_in_flight + 1) parts.
        self.parts_in_flight = parts_in_flight
        self.pending: list[asyncio.Task[Part]] = []
        self.new_parts: list[Part] = []

    async def begin(self) -> None:
        """Load the stored tail (always smaller than one part) into the buffer."""
        if self.info.tail is None:
            return
        stored = await self.objects.get(self.info.tail)
        if stored is None or len(stored.body) != self.info.tail_size:
            raise TusError(500, "the upload's stored tail is missing; terminate and restart it")
        self.chunks.append(stored.body)
        self.buffered += len(stored.body)

    @property
    def offset(self) -> int:
        return self.info.offset + self.received

    async def write(self, chunk: bytes) -> None:
        if self.info.length is not None and self.offset + len(chunk) > self.info.length:
            raise TusError(413, f"the body runs past Upload-Length {self.info.length}")
        chunk = bytes(chunk)  # no copy for bytes; the hashing thread must see it unchanged
        self.chunks.append(chunk)
        self.buffered += len(chunk)
        self.received += len(chunk)
        if self.hasher is not None or self.request_hash is not None:
            self.hashing = asyncio.get_running_loop().run_in_executor(
                _HASH_POOL, self._hash, chunk)
        while self.buffered >= self.part_bytes:
            await self._upload_part(self._take(self.part_bytes))

    def _hash(self, chunk: bytes) -> None:
        """On the hashing thread."""
        if self.hasher is not None:
            self.hasher.update(chunk)
        if self.request_hash is not None:
            self.request_hash.update(chunk)

    async def _hashed(self) -> None:
        """Wait until every received byte is in the digests (the queue is in order)."""
        if self.hashing is not None:
            await self.hashing

    def _take(self, size: int) -> bytes:
        """The first ``size`` buffered bytes as one object, in one copy; the rest stays."""
        taken: list[bytes] = []
        count = 0
        while count < size:
            chunk = self.chunks.popleft()
            if count + len(chunk) > size:
                cut = size - count
                self.chunks.appendleft(chunk[cut:])
                chunk = chunk[:cut]
            taken.append(chunk)
            count += len(chunk)
        self.buffered -= size
        return taken[0] if len(taken) == 1 else b"".join(taken)

    async def _upload_part(self, body: bytes) -> None:
        key = data_key(self.info.id)
        if self.multipart_id is None:
            self.multipart_id = await self.objects.start_multipart(key)
        number = len(self.info.parts) + len(self.new_parts) + len(self.pending) + 1
        self.pending.append(asyncio.create_task(
            self.objects.upload_part(key, self.multipart_id, number, body)))
        while len(self.pending) >= self.parts_in_flight:
            await self._collect_oldest()

    async def _collect_oldest(self) -> None:
        task = self.pending.pop(0)
        self.new_parts.append(await task)

    async def _drain(self) -> None:
        while self.pending:
            await self._collect_oldest()

    async def discard(self) -> None:
        """Wait out part uploads of a request that will not commit (their parts are unused)."""
        pending, self.pending = self.pending, []
        await asyncio.gather(*pending, *([self.hashing] if self.hashing else []),
                             return_exceptions=True)

    def verify_checksum(self) -> None:
        """460 when the request's Upload-Checksum does not match: nothing is committed."""
        if self.checksum is None or self.request_hash is None:
            return
        if self.request_hash.digest() != self.checksum.digest:
            raise TusError(460, f"{self.checksum.algorithm} checksum mismatch; "
                                "the chunk was discarded, resend it")

    async def commit(self) -> Committed:
        """Make the received bytes durable and visible; return the new state."""
        await self._hashed()
        self.verify_checksum()
        await self._drain()
        if self.info.length is not None and self.offset == self.info.length:
            return await self._finish()
        new_tail = tail_key(self.info.id, self.offset) if self.buffered else None
        if new_tail is not None:
            await self.objects.put(new_tail, b"".join(self.chunks))
        info = self.info.with_(
            offset=self.offset, multipart_id=self.multipart_id,
            parts=(*self.info.parts, *self.new_parts), tail_size=self.buffered)
        etag = await self.objects.put(info_key(info.id), info.to_json(), if_match=self.etag)
        await self._drop_old_tail(keep=new_tail)
        return Committed(info, etag, self.hasher)

    async def _finish(self) -> Committed:
        if self.multipart_id is None:  # smaller than one part: one PUT, safe to repeat
            await self.objects.put(data_key(self.info.id), b"".join(self.chunks))
            done = await complete_upload(self.objects, self.info.with_(offset=self.offset),
                                         self.etag, self.hasher)
            await self._drop_old_tail(keep=None)
            return done
        info, etag = await self.mark_completing()
        return await complete_upload(self.objects, info, etag, self.hasher)

    async def mark_completing(self) -> tuple[UploadInfo, str]:
        """Store the last part and record every part before completing (see info.completing)."""
        if self.buffered:
            await self._upload_part(self._take(self.buffered))
        await self._drain()
        info = self.info.with_(offset=self.offset, multipart_id=self.multipart_id,
                               parts=(*self.info.parts, *self.new_parts), tail_size=0,
                               completing=True)
        etag = await self.objects.put(info_key(info.id), info.to_json(), if_match=self.etag)
        await self._drop_old_tail(keep=None)
        return info, etag

    async def _drop_old_tail(self, keep: str | None) -> None:
        old = self.info.tail
        if old is not None and old != keep:
            await self.objects.delete(old)


async def complete_upload(objects: ObjectStorage, info: UploadInfo, etag: str,
                          hasher: Hasher | None) -> Committed:
    """Make the object appear and record the upload as completed; safe to repeat."""
    key = data_key(info.id)
    if info.multipart_id is not None:
        await objects.complete_multipart(key, info.multipart_id, list(info.parts))
    sha256 = await _sha256(objects, key, hasher)
    # Partial uploads still expire: they exist only until concatenated.
    expires_at = info.expires_at if info.concat == "partial" else None
    done = info.with_(multipart_id=None, parts=(), tail_size=0, completing=False,
                      completed=True, sha256=sha256, expires_at=expires_at)
    new_etag = await objects.put(info_key(info.id), done.to_json(), if_match=etag)
    return Committed(done, new_etag, None)


async def _sha256(objects: ObjectStorage, key: str, hasher: Hasher | None) -> str:
    """The streamed digest; after a restart or a replica switch, re-read the object once."""
    if hasher is not None:
        return str(hasher.hexdigest())
    digest = hashlib.sha256()
    async for chunk in objects.read_chunks(key):
        digest.update(chunk)
    return digest.hexdigest()
