"""Pure logic: the state machine's table and JWT checks for both algorithms."""

from __future__ import annotations

import itertools
import re
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from control.auth import Authenticator, mint_token
from control.errors import IllegalTransition, PermissionDenied, Unauthenticated
from control.states import TRANSITIONS, Event, VideoState, next_state
from vora.config import Settings

S = VideoState


def test_only_the_documented_transitions_exist() -> None:
    assert {(S.CREATED, S.PROCESSING), (S.PROCESSING, S.READY), (S.PROCESSING, S.FAILED),
            (S.FAILED, S.PROCESSING)} == TRANSITIONS
    allowed = {(state, event) for state, event in itertools.product(S, Event)
               if _allowed(state, event)}
    assert allowed == {(S.CREATED, Event.COMPLETE_UPLOAD), (S.FAILED, Event.RETRY),
                       (S.PROCESSING, Event.FINISH), (S.PROCESSING, Event.FAIL)}


def _allowed(state: VideoState, event: Event) -> bool:
    try:
        next_state(state, event)
    except IllegalTransition:
        return False
    return True


def test_a_refusal_names_both_states_and_the_rule() -> None:
    with pytest.raises(IllegalTransition) as caught:
        next_state(S.READY, Event.RETRY)
    assert caught.value.reason == ("the video is READY and cannot move to PROCESSING: "
                                   "only a FAILED video can be retried")


def test_hs256_round_trip_with_issuer(settings: Settings) -> None:
    issuing = settings.model_copy(update={"jwt_issuer": "https://id.example"})
    auth = Authenticator(issuing)
    assert auth.authenticate(f"Bearer {mint_token(issuing, 'alice')}", None).subject == "alice"
    with pytest.raises(Unauthenticated, match='"iss"'):
        auth.authenticate(f"Bearer {mint_token(settings, 'alice')}", None)
    other = settings.model_copy(update={"jwt_issuer": "https://evil.example"})
    with pytest.raises(Unauthenticated, match=re.escape("issuer must be 'https://id.example'")):
        auth.authenticate(f"Bearer {mint_token(other, 'alice')}", None)
    forged = jwt.encode({"sub": "alice", "aud": settings.jwt_audience,
                         "exp": int(time.time()) + 60}, "not-the-secret-but-long-enough-0123",
                        algorithm="HS256")
    with pytest.raises(Unauthenticated, match="not valid"):
        auth.authenticate(f"Bearer {forged}", None)


def test_rs256_accepts_the_key_pair_and_refuses_hs256_confusion(settings: Settings) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    rs = settings.model_copy(update={"jwt_algorithm": "RS256", "jwt_public_key": public})
    auth = Authenticator(rs)
    token = mint_token(rs, "bob", private_key=private)
    assert auth.authenticate(f"Bearer {token}", None).subject == "bob"
    # An HS256 token signed with the public key as secret must not pass (alg confusion).
    confused = jwt.encode({"sub": "bob", "aud": rs.jwt_audience, "exp": int(time.time()) + 60},
                          settings.jwt_secret, algorithm="HS256")
    with pytest.raises(Unauthenticated):
        auth.authenticate(f"Bearer {confused}", None)


def test_claims_and_schemes_are_checked(settings: Settings) -> None:
    auth = Authenticator(settings)
    no_exp = jwt.encode({"sub": "a", "aud": settings.jwt_audience}, settings.jwt_secret)
    bad_sub = mint_token(settings, "has space")
    for header in [None, "", "Basic abc", "Bearer ", f"Bearer {no_exp}", f"Bearer {bad_sub}"]:
        with pytest.raises(Unauthenticated):
            auth.authenticate(header, None)
    with pytest.raises(Unauthenticated, match="expired"):
        auth.authenticate(f"Bearer {mint_token(settings, 'a', ttl_seconds=-60)}", None)
    service = auth.authenticate(None, settings.service_token)
    assert service.is_service and service.owner_scope is None
    with pytest.raises(PermissionDenied):
        service.require_user()
