from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from vora.config import TokenKey
from vora.tokens import (
    Keyring,
    TokenError,
    TokenExpired,
    UploadClaims,
    sign_playback,
    sign_upload,
    verify_playback,
    verify_upload,
)

VIDEO = "3f2b8c1e-7a44-4d0b-9a3e-0c5d2f1b6a77"
OTHER = "9b1c2d3e-4f50-4a6b-8c7d-8e9f0a1b2c3d"
K1 = TokenKey(kid="k1", secret="first-secret-0123456789")
K2 = TokenKey(kid="k2", secret="second-secret-0123456789")
K3 = TokenKey(kid="k3", secret="third-secret-0123456789")


def future(seconds: int = 600) -> int:
    return int(time.time()) + seconds


def test_playback_round_trip_and_format() -> None:
    ring = Keyring((K1,))
    expires = future()
    token = sign_playback(ring, VIDEO, expires)
    kid, exp, sig = token.split(".")
    assert (kid, int(exp)) == ("k1", expires)
    # The signature is what vmod-digest computes from the URL: hex HMAC-SHA256.
    message = f"play:k1:{expires}:{VIDEO}".encode()
    assert sig == hmac.new(K1.secret.encode(), message, hashlib.sha256).hexdigest()
    assert verify_playback(ring, token, VIDEO) == expires


def test_playback_expired() -> None:
    ring = Keyring((K1,))
    token = sign_playback(ring, VIDEO, int(time.time()) - 1)
    with pytest.raises(TokenExpired):
        verify_playback(ring, token, VIDEO)


def test_playback_bound_to_its_video() -> None:
    ring = Keyring((K1,))
    with pytest.raises(TokenError, match="bad signature"):
        verify_playback(ring, sign_playback(ring, VIDEO, future()), OTHER)


@pytest.mark.parametrize("position", [0, 3, -1])
def test_playback_tampered(position: int) -> None:
    ring = Keyring((K1,))
    token = sign_playback(ring, VIDEO, future())
    kid, exp, sig = token.split(".")
    flipped = list(sig)
    flipped[position] = "0" if flipped[position] != "0" else "1"
    with pytest.raises(TokenError):
        verify_playback(ring, f"{kid}.{exp}.{''.join(flipped)}", VIDEO)
    with pytest.raises(TokenError):  # a later expiry with the old signature
        verify_playback(ring, f"{kid}.{int(exp) + 1}.{sig}", VIDEO)


@pytest.mark.parametrize(
    "token", ["", "k1", "k1.123", "k1.abc.00", "../etc.1.2", "k1.1." + "g" * 64])
def test_playback_malformed(token: str) -> None:
    with pytest.raises(TokenError, match="malformed"):
        verify_playback(Keyring((K1,)), token, VIDEO)


def test_rotation_signs_with_newest_and_accepts_previous() -> None:
    old = Keyring((K1,))
    rotated = Keyring((K1, K2))
    token_old = sign_playback(old, VIDEO, future())
    token_new = sign_playback(rotated, VIDEO, future())
    assert token_new.startswith("k2.")
    assert verify_playback(rotated, token_old, VIDEO)
    assert verify_playback(rotated, token_new, VIDEO)
    twice = Keyring((K1, K2, K3))
    with pytest.raises(TokenError, match="rotated out"):
        verify_playback(twice, token_old, VIDEO)
    assert verify_playback(twice, token_new, VIDEO)


def test_unknown_kid() -> None:
    foreign = Keyring((TokenKey(kid="zz", secret="some-other-secret-123"),))
    with pytest.raises(TokenError, match="unknown key id"):
        verify_playback(Keyring((K1,)), sign_playback(foreign, VIDEO, future()), VIDEO)


def test_upload_round_trip() -> None:
    ring = Keyring((K1, K2))
    claims = UploadClaims(subject="alice", max_size=10_000, expires_at=future())
    verified = verify_upload(ring, sign_upload(ring, claims))
    assert (verified.subject, verified.max_size, verified.expires_at) == (
        "alice", 10_000, claims.expires_at)
    assert verified.nonce  # every token is distinct


def test_upload_expired_and_tampered() -> None:
    ring = Keyring((K1,))
    expired = sign_upload(ring, UploadClaims("alice", 1, int(time.time()) - 5))
    with pytest.raises(TokenExpired):
        verify_upload(ring, expired)
    token = sign_upload(ring, UploadClaims("alice", 1, future()))
    kid, _, sig = token.split(".")
    forged = sign_upload(ring, UploadClaims("alice", 10**12, future())).split(".")[1]
    with pytest.raises(TokenError, match="bad signature"):
        verify_upload(ring, f"{kid}.{forged}.{sig}")


def test_token_kinds_are_not_interchangeable() -> None:
    ring = Keyring((K1,))
    playback = sign_playback(ring, VIDEO, future())
    with pytest.raises(TokenError):
        verify_upload(ring, playback)
    upload = sign_upload(ring, UploadClaims("alice", 1, future()))
    with pytest.raises(TokenError):
        verify_playback(ring, upload, VIDEO)
