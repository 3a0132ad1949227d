"""TUS 1.0.0 header grammar: pure parsers that turn client headers into values or TusError.

Nothing here does I/O, so every rule of the protocol's headers is tested on its own
(tests/edge/test_parsers.py, with hypothesis).
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

from vora.storage import UPLOAD_ID_RE

TUS_VERSION = "1.0.0"
EXTENSIONS = (
    "creation", "creation-with-upload", "creation-defer-length", "termination",
    "expiration", "checksum", "concatenation",
)
CHECKSUM_ALGORITHMS = ("sha1", "md5", "sha256")
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"

MAX_METADATA_PAIRS = 32
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 1024
_DIGITS = re.compile(r"^[0-9]{1,19}$")  # no sign, no spaces, fits in int64
_METADATA_KEY = re.compile(rf"^[A-Za-z0-9_.-]{{1,{MAX_METADATA_KEY}}}$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_INT64_MAX = 2**63 - 1


class TusError(Exception):
    """A request the edge refuses: ``status`` for the response, ``reason`` for the body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_non_negative(name: str, value: str | None) -> int | None:
    """A header holding a non-negative integer (Upload-Offset, Upload-Length); None if absent."""
    if value is None:
        return None
    if not _DIGITS.fullmatch(value) or int(value) > _INT64_MAX:
        raise TusError(400, f"{name} must be a non-negative integer, got {value[:40]!r}")
    return int(value)


def parse_defer_length(value: str | None) -> bool:
    if value is None:
        return False
    if value != "1":
        raise TusError(400, "Upload-Defer-Length must be 1 when present")
    return True


def _sanitise_value(raw: bytes) -> str:
    """Decode UTF-8 (replacing what is invalid) and drop control characters."""
    text = raw.decode("utf-8", errors="replace")
    return "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()


def parse_metadata(value: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated ``key base64value`` pairs (value optional).

    Keys must be unique ASCII names; values are base64, decoded as UTF-8 and stripped
    of control characters, so a filename cannot smuggle newlines into logs or headers.
    """
    if value is None or not value.strip():
        return {}
    pairs = [item.strip() for item in value.split(",")]
    if len(pairs) > MAX_METADATA_PAIRS:
        raise TusError(400, f"Upload-Metadata holds at most {MAX_METADATA_PAIRS} pairs")
    result: dict[str, str] = {}
    for pair in pairs:
        key, _, encoded = pair.partition(" ")
        encoded = encoded.strip()
        if not _METADATA_KEY.fullmatch(key):
            raise TusError(
                400, f"Upload-Metadata key {key[:40]!r} must be 1-64 of A-Z a-z 0-9 _ . -")
        if key in result:
            raise TusError(400, f"Upload-Metadata key {key!r} appears twice")
        result[key] = _decode_metadata_value(key, encoded)
    return result


def _decode_metadata_value(key: str, encoded: str) -> str:
    if " " in encoded or not _BASE64.fullmatch(encoded) or len(encoded) % 4:
        raise TusError(400, f"Upload-Metadata value of {key!r} is not base64")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise TusError(400, f"Upload-Metadata value of {key!r} is not base64") from None
    if len(raw) > MAX_METADATA_VALUE:
        raise TusError(400, f"Upload-Metadata value of {key!r} exceeds {MAX_METADATA_VALUE} bytes")
    return _sanitise_value(raw)


def encode_metadata(metadata: dict[str, str]) -> str:
    """The inverse of parse_metadata, for HEAD responses."""
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" if value else key
        for key, value in metadata.items()
    )


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes


def parse_checksum(value: str | None) -> Checksum | None:
    """Upload-Checksum: ``algorithm base64digest``; an unknown algorithm is 400."""
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise TusError(
            400, f"checksum algorithm {algorithm[:20]!r} is not supported; "
            f"use one of {', '.join(CHECKSUM_ALGORITHMS)}")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise TusError(400, "Upload-Checksum digest is not base64") from None
    if not digest:
        raise TusError(400, "Upload-Checksum has no digest")
    return Checksum(algorithm, digest)


@dataclass(frozen=True)
class Concat:
    """Upload-Concat: ``partial``, or ``final;<url> <url> ...`` naming partial uploads."""

    partial: bool
    parts: tuple[str, ...] = ()


def upload_id_from_url(url: str) -> str:
    """The upload id that ends a URL or path (``/files/<id>``); 400 when it is not one."""
    path = urlsplit(url).path.rstrip("/")
    upload_id = path.rsplit("/", 1)[-1]
    if not UPLOAD_ID_RE.fullmatch(upload_id):
        raise TusError(400, f"{url[:80]!r} does not name an upload")
    return upload_id


def parse_concat(value: str | None) -> Concat | None:
    if value is None:
        return None
    value = value.strip()
    if value == "partial":
        return Concat(partial=True)
    if not value.startswith("final;"):
        raise TusError(400, "Upload-Concat must be 'partial' or 'final;<url> ...'")
    urls = value[len("final;"):].split()
    if not urls:
        raise TusError(400, "Upload-Concat final names no partial uploads")
    if len(urls) > 1000:
        raise TusError(400, "Upload-Concat final names more than 1000 partial uploads")
    return Concat(partial=False, parts=tuple(upload_id_from_url(url) for url in urls))


def parse_bearer(value: str | None) -> str:
    """The token in ``Authorization: Bearer <token>``; 401 names what is missing."""
    if not value:
        raise TusError(401, "missing Authorization: Bearer <upload token>")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TusError(401, "Authorization must be 'Bearer <upload token>'")
    return token.strip()
