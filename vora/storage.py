"""S3 access, bucket names and the object key layout.

Keys are built only from ids the server generated, and every builder validates its
arguments, so a client string can never address another key.

    bucket-raw/{upload_id}/original.mp4
    bucket-processed/{video_id}/master.m3u8
    bucket-processed/{video_id}/{rendition}/playlist.m3u8, seg_NNN.ts
    bucket-processed/{video_id}/thumbnail.jpg
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from vora.config import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
VIDEO_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RENDITION_RE = re.compile(r"^[0-9]{3,4}p$")
MAX_SEGMENTS = 100_000


class InvalidIdError(ValueError):
    """An id is not one the server could have generated."""


@dataclass(frozen=True)
class Buckets:
    raw: str
    processed: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Buckets:
        return cls(raw=settings.bucket_raw, processed=settings.bucket_processed)


def new_upload_id() -> str:
    return uuid.uuid4().hex


def new_video_id() -> str:
    return str(uuid.uuid4())


def validate_upload_id(upload_id: str) -> str:
    if not UPLOAD_ID_RE.fullmatch(upload_id):
        raise InvalidIdError("upload id must be 32 lowercase hex characters")
    return upload_id


def validate_video_id(video_id: str) -> str:
    if not VIDEO_ID_RE.fullmatch(video_id):
        raise InvalidIdError("video id must be a lowercase UUID version 4")
    return video_id


def validate_rendition(name: str) -> str:
    if not RENDITION_RE.fullmatch(name):
        raise InvalidIdError("rendition must look like 720p")
    return name


# --- bucket-raw -------------------------------------------------------------------------


def raw_prefix(upload_id: str) -> str:
    return f"{validate_upload_id(upload_id)}/"


def raw_original_key(upload_id: str) -> str:
    return f"{raw_prefix(upload_id)}original.mp4"


# --- bucket-processed ---------------------------------------------------------------------


def processed_prefix(video_id: str) -> str:
    return f"{validate_video_id(video_id)}/"


def master_key(video_id: str) -> str:
    return f"{processed_prefix(video_id)}master.m3u8"


def thumbnail_key(video_id: str) -> str:
    return f"{processed_prefix(video_id)}thumbnail.jpg"


def rendition_prefix(video_id: str, rendition: str) -> str:
    return f"{processed_prefix(video_id)}{validate_rendition(rendition)}/"


def playlist_key(video_id: str, rendition: str) -> str:
    return f"{rendition_prefix(video_id, rendition)}playlist.m3u8"


def segment_name(index: int) -> str:
    if not 0 <= index < MAX_SEGMENTS:
        raise InvalidIdError(f"segment index must be in [0, {MAX_SEGMENTS})")
    return f"seg_{index:03d}.ts"


def segment_key(video_id: str, rendition: str, index: int) -> str:
    return f"{rendition_prefix(video_id, rendition)}{segment_name(index)}"


# --- client -------------------------------------------------------------------------------


def s3_client(settings: Settings, *, connect_timeout: float = 5, read_timeout: float = 60,
              max_attempts: int = 3) -> S3Client:
    """A boto3 S3 client for the configured endpoint (path-style, adaptive retries)."""
    config = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        max_pool_connections=32,
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        region_name=settings.s3_region,
        config=config,
    )
