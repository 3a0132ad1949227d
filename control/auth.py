"""Who is calling: a user with a bearer JWT (``sub`` = owner) or a Vora service with the
shared service token (edge, farm, gateway). Both APIs authenticate through here.

``mint_token(settings, subject, ttl_seconds=3600)`` makes a user JWT for tests and the CLI.
"""

from __future__ import annotations

import functools
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

import jwt

from control.errors import PermissionDenied, Unauthenticated
from vora.config import Settings

_SUBJECT_RE = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
_LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class Caller:
    """An authenticated caller. ``subject`` is the owner for users, the empty string
    for services (which act on any video, but never own one)."""

    subject: str
    is_service: bool = False

    @property
    def owner_scope(self) -> str | None:
        """The owner to scope reads to; None for services (they see every video)."""
        return None if self.is_service else self.subject

    def require_user(self) -> str:
        if self.is_service:
            raise PermissionDenied("this call acts for a user: send the user's bearer JWT, "
                                   "not the service token")
        return self.subject

    def require_service(self) -> None:
        if not self.is_service:
            raise PermissionDenied("this call is for Vora services only "
                                   "(x-vora-service-token)")


class Authenticator:
    """Checks bearer JWTs (HS256 or RS256 per settings) and the service token."""

    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        self.key = settings.jwt_secret if self.algorithm == "HS256" else settings.jwt_public_key
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer or None
        self.service_token = settings.service_token.encode()
        # Apps reuse a token for many calls: remember verified ones (their expiry is still
        # checked on every use), so a call costs no signature check.
        self._verified = functools.lru_cache(maxsize=4096)(self._verify)

    def authenticate(self, authorization: str | None, service_token: str | None) -> Caller:
        if service_token is not None:
            if not hmac.compare_digest(service_token.encode(), self.service_token):
                raise Unauthenticated("the service token is not valid")
            return Caller(subject="", is_service=True)
        if not authorization:
            raise Unauthenticated("missing credentials: send 'Authorization: Bearer <jwt>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <jwt>'")
        return Caller(subject=self._subject(token.strip()))

    def _subject(self, token: str) -> str:
        subject, expires_at = self._verified(token)
        if time.time() > expires_at + _LEEWAY_SECONDS:
            raise Unauthenticated("the bearer token has expired; get a new one")
        return subject

    def _verify(self, token: str) -> tuple[str, float]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.key, algorithms=[self.algorithm], audience=self.audience,
                issuer=self.issuer, leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the bearer token has expired; get a new one") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"the bearer token's audience must be "
                                  f"{self.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(f"the bearer token's issuer must be {self.issuer!r}") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the bearer token is not valid: {exc}") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not _SUBJECT_RE.fullmatch(subject):
            raise Unauthenticated("the bearer token's 'sub' must be 1 to 255 printable "
                                  "characters without spaces")
        return subject, float(claims["exp"])


def mint_token(settings: Settings, subject: str, ttl_seconds: int = 3600, *,
               private_key: str | None = None, **claims: Any) -> str:
    """A user JWT that control accepts: ``sub`` = subject, audience and issuer from
    settings, expiring after ``ttl_seconds``. HS256 signs with settings.jwt_secret; RS256
    needs ``private_key`` (PEM) matching settings.jwt_public_key."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": subject, "aud": settings.jwt_audience, "iat": now,
                               "exp": now + ttl_seconds, **claims}
    if settings.jwt_issuer:
        payload["iss"] = settings.jwt_issuer
    if settings.jwt_algorithm == "RS256":
        if not private_key:
            raise ValueError("RS256 needs the private key matching VORA_JWT_PUBLIC_KEY")
        return jwt.encode(payload, private_key, algorithm="RS256")
    return jwt.encode(payload, settings.jwt_secret, algorithm="HS256")


def main(argv: list[str] | None = None) -> None:
    """``python -m control.auth SUBJECT [--ttl SECONDS]``: print a user JWT (dev and tests)."""
    import argparse

    from vora.config import load_settings

    parser = argparse.ArgumentParser(prog="python -m control.auth",
                                     description="Mint a bearer JWT control accepts.")
    parser.add_argument("subject", help="the user (JWT sub, the videos' owner)")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    args = parser.parse_args(argv)
    print(mint_token(load_settings(), args.subject, args.ttl))


if __name__ == "__main__":
    main()
