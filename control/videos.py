"""The video logic both APIs call: validation, ownership, tokens, and the store.

Transports (grpc_api, rest) only translate; every rule a caller can trip lives here
or in the store (state changes) and states (the state machine).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from control.auth import Caller
from control.errors import IllegalTransition, InvalidArgument, NotFound
from control.states import VideoState
from control.store import VideoRecord, VideoStore
from vora import storage, tokens
from vora.config import Settings

MAX_TITLE = 200
MAX_DESCRIPTION = 5000
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PLAYBACK_TTL_SECONDS = 7 * 24 * 3600
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CONTROL_CHARS_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Above the edge's own limits (32 pairs, 64-character keys, 1024-character values), so a
# report the edge accepted is never refused here (it would retry it forever).
_MAX_METADATA_ITEMS = 32
_MAX_METADATA_KEY = 128
_MAX_METADATA_VALUE = 4096


@dataclass(frozen=True)
class CreatedVideo:
    video: VideoRecord
    upload_url: str
    upload_token: str
    upload_token_expires_at: int


@dataclass(frozen=True)
class VideoPage:
    videos: list[VideoRecord]
    next_page_token: str


@dataclass(frozen=True)
class PlaybackUrl:
    url: str
    token: str
    expires_at: int


class VideoService:
    """Every VideoService and UploadCallbackService operation, transport-free."""

    def __init__(self, settings: Settings, store: VideoStore,
                 on_outbox: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.keyring = tokens.Keyring.from_settings(settings)
        self.on_outbox = on_outbox  # wakes the relay after a commit that wrote the outbox
        self.clock = clock

    async def create_video(self, caller: Caller, title: str, description: str,
                           size_bytes: int) -> CreatedVideo:
        owner = caller.require_user()
        title = _text("title", title, MAX_TITLE)
        description = _text("description", description, MAX_DESCRIPTION)
        max_size = self._upload_size(size_bytes)
        video = await self.store.create_video(storage.new_video_id(), owner, title,
                                              description)
        expires_at = int(self.clock()) + self.settings.upload_token_ttl_seconds
        token = tokens.sign_upload(self.keyring, tokens.UploadClaims(
            subject=owner, max_size=max_size, expires_at=expires_at))
        return CreatedVideo(video, self.settings.edge_public_url, token, expires_at)

    async def get_video(self, caller: Caller, video_id: str) -> VideoRecord:
        return await self.store.get_video(_video_id(video_id), caller.owner_scope)

    async def list_videos(self, caller: Caller, page_size: int, page_token: str) -> VideoPage:
        owner = caller.require_user()
        if not 0 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be between 0 and {MAX_PAGE_SIZE}")
        limit = page_size or DEFAULT_PAGE_SIZE
        after = _decode_cursor(page_token) if page_token else None
        videos = await self.store.list_videos(owner, limit + 1, after)
        if len(videos) <= limit:
            return VideoPage(videos, "")
        page = videos[:limit]
        return VideoPage(page, _encode_cursor(page[-1]))

    async def complete_upload(self, caller: Caller, video_id: str,
                              upload_id: str) -> VideoRecord:
        owner = caller.require_user()
        video = await self.store.complete_upload(_video_id(video_id), owner,
                                                 _upload_id(upload_id))
        self.on_outbox()
        return video

    async def retry_processing(self, caller: Caller, video_id: str) -> VideoRecord:
        video = await self.store.retry_processing(_video_id(video_id), caller.require_user())
        self.on_outbox()
        return video

    async def delete_video(self, caller: Caller, video_id: str) -> None:
        await self.store.delete_video(_video_id(video_id), caller.require_user())
        self.on_outbox()

    async def playback_url(self, caller: Caller, video_id: str, ttl_seconds: int) -> PlaybackUrl:
        if not 0 <= ttl_seconds <= MAX_PLAYBACK_TTL_SECONDS:
            raise InvalidArgument(
                f"ttl_seconds must be between 0 and {MAX_PLAYBACK_TTL_SECONDS} (0: default)")
        video = await self.store.get_video(_video_id(video_id), caller.require_user())
        if video.state is not VideoState.READY:
            raise _not_playable(video)
        ttl = ttl_seconds or self.settings.playback_token_ttl_seconds
        expires_at = int(self.clock()) + ttl
        token = tokens.sign_playback(self.keyring, video.id, expires_at)
        url = f"{self.settings.playback_public_url}/v1/play/{token}/{video.id}/master.m3u8"
        return PlaybackUrl(url, token, expires_at)

    async def upload_completed(self, caller: Caller, upload_id: str, size_bytes: int,
                               sha256: str, metadata: Mapping[str, str], subject: str) -> None:
        caller.require_service()
        if size_bytes < 0:
            raise InvalidArgument("size_bytes must not be negative")
        if not _SHA256_RE.fullmatch(sha256):
            raise InvalidArgument("sha256 must be 64 lowercase hex characters")
        if not subject or len(subject) > 255:
            raise InvalidArgument("subject (the upload token's owner) is required")
        await self.store.record_upload(_upload_id(upload_id), subject, size_bytes, sha256,
                                       _metadata(metadata))

    def _upload_size(self, size_bytes: int) -> int:
        limit = self.settings.edge_max_upload_bytes
        if not 0 <= size_bytes <= limit:
            raise InvalidArgument(f"size_bytes must be between 0 and {limit} (0: the maximum)")
        return size_bytes or limit


def _not_playable(video: VideoRecord) -> IllegalTransition:
    hint = {
        VideoState.CREATED: "upload the file and call CompleteUpload first",
        VideoState.PROCESSING: "processing is still running; try again when it is READY",
        VideoState.FAILED: f"processing failed ({video.failure_reason or 'no reason'}); "
                           "call RetryProcessing",
    }.get(video.state, "")
    return IllegalTransition(f"the video is {video.state.value} and has no playback URL: "
                             f"{hint}")


def _video_id(value: str) -> str:
    try:
        return storage.validate_video_id(value)
    except storage.InvalidIdError:
        # A malformed id names no video: the same answer as an unknown one.
        raise NotFound(f"video {value[:64]!r} not found") from None


def _upload_id(value: str) -> str:
    try:
        return storage.validate_upload_id(value)
    except storage.InvalidIdError as exc:
        raise InvalidArgument(f"upload_id: {exc}") from None


def _text(name: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidArgument(f"{name} must be at most {limit} characters")
    if _CONTROL_CHARS_RE.search(value):
        raise InvalidArgument(f"{name} must not contain control characters")
    return value


def _metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    if len(metadata) > _MAX_METADATA_ITEMS:
        raise InvalidArgument(f"metadata may hold at most {_MAX_METADATA_ITEMS} items")
    for key, value in metadata.items():
        too_long = len(key) > _MAX_METADATA_KEY or len(value) > _MAX_METADATA_VALUE
        if too_long or "\x00" in key + value:
            raise InvalidArgument(f"metadata item {key[:32]!r} is too long or has NUL bytes")
    return dict(metadata)


def _encode_cursor(last: VideoRecord) -> str:
    raw = json.dumps({"t": last.created_at.isoformat(), "i": last.id}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_cursor(token: str) -> tuple[datetime, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        created = datetime.fromisoformat(raw["t"])
        video_id = storage.validate_video_id(raw["i"])
    except (ValueError, KeyError, TypeError, binascii.Error, storage.InvalidIdError):
        raise InvalidArgument("page_token is not one this service issued") from None
    if created.tzinfo is None:
        raise InvalidArgument("page_token is not one this service issued")
    return created, video_id
