"""Upload and playback tokens: one HMAC-SHA256 scheme with rotating keys named by ``kid``.

Both token kinds are ``{kid}.{body}.{signature}`` where ``signature`` is the lowercase
hex HMAC-SHA256, under the key named ``kid``, of a message that starts with the
token's purpose, so a token of one kind is never accepted as the other.

* Playback: ``body`` is the expiry in Unix seconds and the message is
  ``play:{kid}:{expires}:{video_id}``. The video id comes from the URL, so Varnish
  can check the token with vmod-digest alone (docs/tokens.md).
* Upload: ``body`` is base64url JSON claims (subject, maximum size, expiry, nonce)
  and the message is ``upload:{kid}:{body}``.

Signing uses the newest key; verification accepts the newest and the one before it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from vora.config import Settings, TokenKey

_KID = r"[A-Za-z0-9_-]{1,32}"
_SIG = r"[0-9a-f]{64}"
PLAYBACK_TOKEN_RE = re.compile(rf"^(?P<kid>{_KID})\.(?P<exp>[0-9]{{1,12}})\.(?P<sig>{_SIG})$")
UPLOAD_TOKEN_RE = re.compile(
    rf"^(?P<kid>{_KID})\.(?P<body>[A-Za-z0-9_-]{{1,2048}})\.(?P<sig>{_SIG})$"
)


class TokenError(Exception):
    """A token was refused; ``reason`` says why in words a client can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenExpired(TokenError):
    pass


@dataclass(frozen=True)
class Keyring:
    """The configured keys, oldest first. Signs with the newest; accepts the newest two."""

    keys: tuple[TokenKey, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        return cls(tuple(settings.token_keys))

    @property
    def signing_key(self) -> TokenKey:
        return self.keys[-1]

    @property
    def accepted(self) -> Sequence[TokenKey]:
        return self.keys[-2:]

    def secret_for(self, kid: str) -> bytes:
        for key in self.accepted:
            if key.kid == kid:
                return key.secret.encode()
        if any(key.kid == kid for key in self.keys):
            raise TokenError(f"key {kid!r} has been rotated out; request a new token")
        raise TokenError(f"unknown key id {kid!r}")


def _mac(secret: bytes, message: str) -> str:
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def _check_signature(keyring: Keyring, kid: str, message: str, signature: str) -> None:
    expected = _mac(keyring.secret_for(kid), message)
    if not hmac.compare_digest(expected, signature):
        raise TokenError("bad signature")


def _check_expiry(expires_at: int, now: float | None) -> None:
    if expires_at <= (time.time() if now is None else now):
        raise TokenExpired("token expired; request a new one")


# --- playback ---------------------------------------------------------------------------


def playback_message(kid: str, expires_at: int, video_id: str) -> str:
    return f"play:{kid}:{expires_at}:{video_id}"


def sign_playback(keyring: Keyring, video_id: str, expires_at: int) -> str:
    key = keyring.signing_key
    signature = _mac(key.secret.encode(), playback_message(key.kid, expires_at, video_id))
    return f"{key.kid}.{expires_at}.{signature}"


def verify_playback(
    keyring: Keyring, token: str, video_id: str, now: float | None = None
) -> int:
    """Check ``token`` for ``video_id``; return its expiry or raise TokenError."""
    match = PLAYBACK_TOKEN_RE.match(token)
    if not match:
        raise TokenError("malformed playback token")
    kid, expires_at = match["kid"], int(match["exp"])
    _check_signature(keyring, kid, playback_message(kid, expires_at, video_id), match["sig"])
    _check_expiry(expires_at, now)
    return expires_at


# --- upload -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadClaims:
    """What an upload token allows: who uploads, how many bytes at most, until when."""

    subject: str
    max_size: int
    expires_at: int
    nonce: str = ""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_upload(keyring: Keyring, claims: UploadClaims) -> str:
    key = keyring.signing_key
    payload = {
        "sub": claims.subject,
        "max": claims.max_size,
        "exp": claims.expires_at,
        "n": claims.nonce or secrets.token_hex(8),
    }
    body = _b64encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{key.kid}.{body}.{_mac(key.secret.encode(), f'upload:{key.kid}:{body}')}"


def verify_upload(keyring: Keyring, token: str, now: float | None = None) -> UploadClaims:
    """Check an upload token and return its claims, or raise TokenError."""
    match = UPLOAD_TOKEN_RE.match(token)
    if not match:
        raise TokenError("malformed upload token")
    kid, body = match["kid"], match["body"]
    _check_signature(keyring, kid, f"upload:{kid}:{body}", match["sig"])
    try:
        payload = json.loads(_b64decode(body))
        claims = UploadClaims(
            subject=str(payload["sub"]), max_size=int(payload["max"]),
            expires_at=int(payload["exp"]), nonce=str(payload.get("n", "")),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise TokenError("upload token claims are unreadable") from None
    _check_expiry(claims.expires_at, now)
    return claims
