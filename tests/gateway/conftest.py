"""Fixtures: a real HLS ladder in the stack's S3, a fake-but-real control, the gateway
(subprocess, as the stack runs it) and a varnishd in front of it, all on free ports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.gateway.media import Ladder, make_ladder
from tests.gateway.servers import FakeVideoService, ensure_s3, running_delivery
from vora import tokens
from vora.config import Settings


@dataclass(frozen=True)
class Published:
    video_id: str
    token: str
    ladder: Ladder

    def path(self, rest: str, token: str | None = None) -> str:
        return f"/v1/play/{token or self.token}/{self.video_id}/{rest}"


@dataclass(frozen=True)
class Delivery:
    settings: Settings
    control: FakeVideoService
    gateway_url: str
    varnish_url: str
    keyring: tokens.Keyring
    video: Published

    def sign(self, video_id: str, ttl: int = 3600) -> str:
        return tokens.sign_playback(self.keyring, video_id, int(time.time()) + ttl)


@pytest.fixture(scope="package")
def delivery(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Delivery]:
    ensure_s3(settings)
    workdir = tmp_path_factory.mktemp("delivery")
    ladder = make_ladder(workdir / "ladder")
    with running_delivery(settings, ladder, workdir) as running:
        keyring = tokens.Keyring.from_settings(settings)
        token = tokens.sign_playback(keyring, running.video_id, int(time.time()) + 3600)
        yield Delivery(settings, running.control, running.gateway_url, running.varnish_url,
                       keyring, Published(running.video_id, token, ladder))
