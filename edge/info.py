"""The TUS state of one upload, stored as ``{upload_id}/.info`` JSON beside its data.

Keeping it in S3 (not PostgreSQL) follows the architecture's rule that the edge never
touches the database, and puts state and bytes in one failure domain: every replica
sees both, and an upload is never half in one store and half in another.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from edge.objects import Part
from vora.storage import raw_original_key, raw_prefix, validate_upload_id

ConcatKind = Literal["", "partial", "final"]


def info_key(upload_id: str) -> str:
    return f"{raw_prefix(upload_id)}.info"


def lock_key(upload_id: str) -> str:
    return f"{raw_prefix(upload_id)}.lock"


def tail_key(upload_id: str, end_offset: int) -> str:
    """Each commit writes its tail under a new name, so the old .info never points at new bytes."""
    return f"{raw_prefix(upload_id)}.tail-{end_offset}"


PENDING_PREFIX = ".edge/pending/"


def pending_key(upload_id: str) -> str:
    """A marker per upload with work left (bytes to come, control to tell, expiry to
    enforce), so the sweeper lists only those instead of the whole bucket."""
    return f"{PENDING_PREFIX}{validate_upload_id(upload_id)}"


def data_key(upload_id: str) -> str:
    return raw_original_key(upload_id)


@dataclass(frozen=True)
class UploadInfo:
    """Committed state. Invariant: offset == sum(part sizes) + tail_size."""

    id: str
    subject: str
    length: int | None  # None while the length is deferred
    offset: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    expires_at: float | None = None  # None once a non-partial upload completed
    multipart_id: str | None = None
    parts: tuple[Part, ...] = ()
    tail_size: int = 0
    concat: ConcatKind = ""
    concat_parts: tuple[str, ...] = ()
    # All bytes and parts are recorded; CompleteMultipartUpload may not have run yet.
    # Written before completing, so a crash in between is finished by the sweeper.
    completing: bool = False
    completed: bool = False
    sha256: str = ""
    notified: bool = False  # control acknowledged UploadCompleted

    @property
    def tail(self) -> str | None:
        return tail_key(self.id, self.offset) if self.tail_size else None

    def is_expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or time.time())

    def with_(self, **changes: Any) -> UploadInfo:
        return replace(self, **changes)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> UploadInfo:
        data = json.loads(raw)
        data["parts"] = tuple(Part(**part) for part in data["parts"])
        data["concat_parts"] = tuple(data["concat_parts"])
        return cls(**data)
