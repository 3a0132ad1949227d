"""S3 adapter: fetch the source, publish the output write-once, remove prefixes.

Write-once: every object is put with ``If-None-Match: *`` so S3 refuses to replace an
existing key. ``master.m3u8`` goes last and is the publish marker: a video whose master
exists is published and never touched again by a transcode; objects under a prefix
without a master belong to an attempt that never finished and are removed before a
new attempt uploads (see docs/farm.md).
"""

from __future__ import annotations

import mimetypes
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import ClientError

from vora import storage
from vora.config import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

UPLOAD_THREADS = 8
DELETE_BATCH = 1000  # the most keys one S3 DeleteObjects call takes
CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t",
                 ".jpg": "image/jpeg"}
# Published objects never change, so every cache may keep them for a year.
IMMUTABLE = "public, max-age=31536000, immutable"


class AlreadyExistsError(Exception):
    """A key this attempt meant to create exists: another attempt is publishing."""


@dataclass(frozen=True)
class Upload:
    path: Path
    key: str


class OutputStore(Protocol):
    """What the transcode activities need from object storage."""

    def download_source(self, upload_id: str, target: Path) -> None: ...
    def download_probe_window(self, upload_id: str, target: Path, head: int,
                              tail: int) -> int: ...
    def read_published_master(self, video_id: str) -> tuple[str, dict[str, str]] | None: ...
    def remove_unpublished(self, video_id: str) -> int: ...
    def put_new(self, uploads: Iterable[Upload],
                metadata: dict[str, str] | None = None) -> None: ...
    def remove_output(self, video_id: str) -> int: ...
    def remove_source(self, upload_id: str) -> int: ...


class S3OutputStore:
    """OutputStore on any S3 that honours conditional writes (SeaweedFS, MinIO, AWS)."""

    def __init__(self, settings: Settings, client: S3Client | None = None) -> None:
        self.raw = settings.bucket_raw
        self.processed = settings.bucket_processed
        self.client = client or storage.s3_client(settings)

    def download_source(self, upload_id: str, target: Path) -> None:
        self.client.download_file(self.raw, storage.raw_original_key(upload_id), str(target))

    def download_probe_window(self, upload_id: str, target: Path, head: int,
                              tail: int) -> int:
        """The first ``head`` and last ``tail`` bytes at their offsets in a sparse file of
        the source's size: enough for ffprobe (headers at the start, an MP4 moov or the
        last timestamps at the end) without fetching a multi-gigabyte upload. Returns the
        source's size."""
        key = storage.raw_original_key(upload_id)
        size = self.client.head_object(Bucket=self.raw, Key=key)["ContentLength"]
        if size <= head + tail:
            self.download_source(upload_id, target)
            return size
        with target.open("wb") as out:
            for start, end in ((0, head - 1), (size - tail, size - 1)):
                got = self.client.get_object(Bucket=self.raw, Key=key, Range=f"bytes={start}-{end}")
                out.seek(start)
                shutil.copyfileobj(got["Body"], out, 1024 * 1024)
            out.truncate(size)
        return size

    def read_published_master(self, video_id: str) -> tuple[str, dict[str, str]] | None:
        try:
            got = self.client.get_object(Bucket=self.processed, Key=storage.master_key(video_id))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise
        return got["Body"].read().decode(), dict(got.get("Metadata") or {})

    def remove_unpublished(self, video_id: str) -> int:
        """Delete leftovers of an attempt that never published; nothing at all once a
        master exists (a late attempt must never delete a published video)."""
        keys = self._keys(self.processed, storage.processed_prefix(video_id))
        if storage.master_key(video_id) in keys:
            return 0
        return self._delete_keys(self.processed, keys)

    def put_new(self, uploads: Iterable[Upload], metadata: dict[str, str] | None = None) -> None:
        items = list(uploads)
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            for future in [pool.submit(self._put_one, item, metadata) for item in items]:
                future.result()

    def _put_one(self, item: Upload, metadata: dict[str, str] | None) -> None:
        content_type = CONTENT_TYPES.get(item.path.suffix) or (
            mimetypes.guess_type(item.path.name)[0] or "application/octet-stream")
        try:
            with item.path.open("rb") as body:
                self.client.put_object(
                    Bucket=self.processed, Key=item.key, Body=body, IfNoneMatch="*",
                    ContentType=content_type, CacheControl=IMMUTABLE, Metadata=metadata or {})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"PreconditionFailed", "412"}:
                raise AlreadyExistsError(f"{item.key} already exists") from None
            raise

    def remove_output(self, video_id: str) -> int:
        """Unpublish first (master), then delete everything under the video's prefix."""
        self.client.delete_object(Bucket=self.processed, Key=storage.master_key(video_id))
        return self._delete_prefix(self.processed, storage.processed_prefix(video_id))

    def remove_source(self, upload_id: str) -> int:
        prefix = storage.raw_prefix(upload_id)
        uploads = self.client.list_multipart_uploads(Bucket=self.raw, Prefix=prefix)
        for upload in uploads.get("Uploads", []):
            self.client.abort_multipart_upload(Bucket=self.raw, Key=upload["Key"],
                                               UploadId=upload["UploadId"])
        return self._delete_prefix(self.raw, prefix)

    def _keys(self, bucket: str, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        return [item["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                for item in page.get("Contents", [])]

    def _delete_keys(self, bucket: str, keys: list[str]) -> int:
        for start in range(0, len(keys), DELETE_BATCH):
            batch: list[ObjectIdentifierTypeDef] = [
                {"Key": key} for key in keys[start:start + DELETE_BATCH]]
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def _delete_prefix(self, bucket: str, prefix: str) -> int:
        return self._delete_keys(bucket, self._keys(bucket, prefix))


def output_uploads(video_id: str, out_dir: Path, rendition_names: list[str]) -> tuple[
        list[Upload], list[Upload], Upload]:
    """(segments and thumbnail, playlists, master) in the order they must be published."""
    media = [Upload(out_dir / "thumbnail.jpg", storage.thumbnail_key(video_id))]
    playlists = []
    for name in rendition_names:
        folder = out_dir / name
        for segment in sorted(folder.glob("seg_*.ts")):
            index = int(segment.stem.removeprefix("seg_"))
            media.append(Upload(segment, storage.segment_key(video_id, name, index)))
        playlists.append(Upload(folder / "playlist.m3u8", storage.playlist_key(video_id, name)))
    return media, playlists, Upload(out_dir / "master.m3u8", storage.master_key(video_id))
