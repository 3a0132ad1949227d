"""The S3 adapter: the few object operations the upload store needs, made async.

boto3 is blocking, so every call runs in a worker thread. Failures are translated
into two exceptions the store understands: ``Precondition`` (a conditional write lost
a race) and ``StorageUnavailable`` (S3 cannot be reached or refused; the client should
back off and resume).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")
READ_CHUNK = 1024 * 1024


class StorageUnavailable(Exception):
    """S3 failed; the reason is safe to show a client."""


class Precondition(Exception):
    """A conditional write (If-Match / If-None-Match) found another writer's object."""


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    etag: str


@dataclass(frozen=True)
class Part:
    number: int
    etag: str
    size: int


class ObjectStorage(Protocol):
    """What the upload store needs from S3. Keys are built by the caller from validated ids."""

    async def get(self, key: str) -> StoredObject | None:
        """The object and its ETag, or None when it does not exist."""

    async def put(self, key: str, body: bytes, *, if_match: str | None = None,
                  if_absent: bool = False) -> str:
        """Write an object; return its ETag. Raise Precondition when the condition fails."""

    async def delete(self, key: str) -> None:
        """Remove an object; removing a missing one succeeds."""

    def read_chunks(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks of about 1 MiB."""

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``."""

    async def start_multipart(self, key: str) -> str:
        """Create a multipart upload for ``key``; return its upload id."""

    async def upload_part(self, key: str, multipart_id: str, number: int, body: bytes) -> Part:
        """Store one part; uploading the same number again replaces it."""

    async def complete_multipart(self, key: str, multipart_id: str, parts: list[Part]) -> None:
        """Assemble ``parts`` into ``key``; the object appears only now. Completing one that
        was already completed into ``key`` succeeds, so a retry after a crash is safe."""

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        """Discard a multipart upload and its parts; a missing one is not an error."""

    async def list_multipart(self, prefix: str) -> list[tuple[str, str]]:
        """(key, upload id) of every unfinished multipart upload under ``prefix``."""


class S3Objects:
    """ObjectStorage over one bucket of a boto3 client."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    async def _call(self, fn: Callable[..., T], **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                raise Precondition(code) from None
            raise StorageUnavailable(f"object storage refused {fn.__name__}: {code}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"object storage unreachable: {type(exc).__name__}") from exc

    async def get(self, key: str) -> StoredObject | None:
        try:
            response = await self._call(self.client.get_object, Key=key)
        except StorageUnavailable as exc:
            if _is_missing(exc):
                return None
            raise
        body = await asyncio.to_thread(response["Body"].read)
        return StoredObject(body=body, etag=response["ETag"])

    async def put(self, key: str, body: bytes, *, if_match: str | None = None,
                  if_absent: bool = False) -> str:
        kwargs: dict[str, Any] = {"Key": key, "Body": body}
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        response = await self._call(self.client.put_object, **kwargs)
        return response["ETag"]

    async def delete(self, key: str) -> None:
        await self._call(self.client.delete_object, Key=key)

    async def read_chunks(self, key: str) -> AsyncIterator[bytes]:
        response = await self._call(self.client.get_object, Key=key)
        stream = response["Body"]
        try:
            while chunk := await asyncio.to_thread(stream.read, READ_CHUNK):
                yield chunk
        finally:
            stream.close()

    async def list_keys(self, prefix: str) -> list[str]:
        def collect(Bucket: str) -> list[str]:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=Bucket, Prefix=prefix)
            return [item["Key"] for page in pages for item in page.get("Contents", [])]

        return await self._call(collect)

    async def start_multipart(self, key: str) -> str:
        response = await self._call(self.client.create_multipart_upload, Key=key)
        return response["UploadId"]

    async def upload_part(self, key: str, multipart_id: str, number: int, body: bytes) -> Part:
        response = await self._call(self.client.upload_part, Key=key, UploadId=multipart_id,
                                    PartNumber=number, Body=body)
        return Part(number=number, etag=response["ETag"], size=len(body))

    async def complete_multipart(self, key: str, multipart_id: str, parts: list[Part]) -> None:
        try:
            await self._call(
                self.client.complete_multipart_upload, Key=key, UploadId=multipart_id,
                MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag}
                                           for p in parts]})
        except StorageUnavailable as exc:
            if not (_is_missing(exc) and await self._exists(key)):
                raise

    async def _exists(self, key: str) -> bool:
        try:
            await self._call(self.client.head_object, Key=key)
        except StorageUnavailable as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        try:
            await self._call(self.client.abort_multipart_upload, Key=key, UploadId=multipart_id)
        except StorageUnavailable as exc:
            if not _is_missing(exc):
                raise

    async def list_multipart(self, prefix: str) -> list[tuple[str, str]]:
        response = await self._call(self.client.list_multipart_uploads, Prefix=prefix)
        return [(item["Key"], item["UploadId"]) for item in response.get("Uploads", [])]


def _is_missing(exc: StorageUnavailable) -> bool:
    cause = exc.__cause__
    if not isinstance(cause, ClientError):
        return False
    code = cause.response.get("Error", {}).get("Code", "")
    return code in ("NoSuchKey", "NoSuchUpload", "404")
