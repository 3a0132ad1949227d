"""Scenario 11 (path traversal): every id in a REST path, hostile, is refused with a 4xx,
never a 5xx, and never answers with another owner's object."""

from __future__ import annotations

import http.client
import io
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from tusclient.client import TusClient

from tests.e2e.helpers import rest
from tests.edge.conftest import make_token
from vora import storage
from vora.client import mint_user_token
from vora.config import Settings
from vora.tokens import Keyring, sign_playback


def _payloads(victim: str) -> list[str]:
    """Raw path segments: dot segments, encoded and double-encoded separators, NUL, and
    traversals that aim at ``victim`` (another owner's id)."""
    return [
        "..", ".", "%2e%2e", "%2E%2E", "..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "..%5c..%5cetc%5cpasswd", "%252e%252e%252f", "..%00", f"{victim}%00",
        f"..%2f{victim}", f"%2e%2e%2f{victim}", f"{victim}%2f..%2f{victim}",
        f"{victim}%2f", f"x%2f..%2f..%2f{victim}", f"{victim}..", f"{victim.upper()}",
        f"%20{victim}", f"{victim}%20", "~root", "%c0%ae%c0%ae%c0%af",
    ]


def _send(base: str, method: str, path: str,
          headers: dict[str, str] | None = None) -> tuple[int, str]:
    """One request with the path sent byte for byte (no client-side normalisation)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                            timeout=15)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
        return response.status, body + str(response.getheaders())
    finally:
        connection.close()


def _refused(status: int, what: str) -> None:
    assert 400 <= status < 500, f"{what} answered {status}"


@pytest.fixture
def marker() -> str:
    return f"victim-marker-{uuid.uuid4().hex}"


def test_control_rest_video_ids(stack: Settings, marker: str) -> None:
    """Pass: as alice, every hostile {id} on GET/DELETE /v1/videos/{id} and POST/GET of its
    sub-resources (complete-upload, retry, playback-url) answers 4xx, and no answer
    contains bob's video title (bob's video is the traversal target)."""
    bob = mint_user_token(stack, f"bob-{uuid.uuid4().hex[:8]}")
    status, created = rest(stack, "POST", "/v1/videos", bob, {"title": marker})
    assert status == 201, created
    victim = str(created["video"]["id"])
    alice = {"Authorization": f"Bearer {mint_user_token(stack, f'alice-{uuid.uuid4().hex[:8]}')}",
             "Content-Type": "application/json"}
    base = f"http://{stack.control_host}:{stack.control_http_port}"
    for payload in _payloads(victim):
        for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/complete-upload"),
                               ("POST", "/retry"), ("GET", "/playback-url")):
            path = f"/v1/videos/{payload}{suffix}"
            status, text = _send(base, method, path, alice)
            _refused(status, f"control {method} {path}")
            assert marker not in text, f"control {method} {path} leaked bob's video"
    # bob's video is untouched by all of that (alice's DELETEs did not reach it).
    status, body = rest(stack, "GET", f"/v1/videos/{victim}", bob)
    assert status == 200 and body["video"]["title"] == marker


@pytest.fixture
def processed_victim(stack: Settings, marker: str) -> Iterator[str]:
    """A video's processed objects in S3, each holding ``marker``."""
    s3: Any = storage.s3_client(stack)
    victim = str(uuid.uuid4())
    keys = [storage.master_key(victim), storage.playlist_key(victim, "360p"),
            storage.segment_key(victim, "360p", 0), storage.thumbnail_key(victim)]
    for key in keys:
        s3.put_object(Bucket=stack.bucket_processed, Key=key, Body=marker.encode())
    yield victim
    for key in keys:
        s3.delete_object(Bucket=stack.bucket_processed, Key=key)


def test_gateway_and_varnish_play_paths(stack: Settings, processed_victim: str,
                                        marker: str) -> None:
    """Pass: for every hostile video id (with a playback token validly signed for exactly
    that string) and every hostile rendition (with a valid token for a real video id),
    master/playlist/segment/thumbnail requests to the gateway and through Varnish answer
    4xx, and no answer contains the bytes stored under another video's prefix."""
    keyring = Keyring.from_settings(stack)
    expires = int(time.time()) + 600
    attacker = str(uuid.uuid4())
    attacker_token = sign_playback(keyring, attacker, expires)
    paths: list[str] = []
    for payload in _payloads(processed_victim):
        token = sign_playback(keyring, unquote(payload), expires)
        paths += [f"/v1/play/{token}/{payload}/master.m3u8",
                  f"/v1/play/{token}/{payload}/360p/playlist.m3u8",
                  f"/v1/play/{token}/{payload}/360p/seg_000.ts",
                  f"/v1/play/{token}/{payload}/thumbnail.jpg",
                  f"/v1/play/{attacker_token}/{attacker}/{payload}/playlist.m3u8",
                  f"/v1/play/{attacker_token}/{attacker}/{payload}/seg_000.ts"]
    paths += [f"/v1/play/{attacker_token}/{attacker}/..%2f..%2f{processed_victim}%2f360p"
              "/playlist.m3u8",
              f"/v1/play/{attacker_token}/{attacker}%2f..%2f{processed_victim}/master.m3u8"]
    gateway = f"http://{stack.gateway_host}:{stack.gateway_port}"
    for base in (gateway, stack.playback_public_url):
        for path in paths:
            status, text = _send(base, "GET", path)
            _refused(status, f"{base}{path}")
            assert marker not in text, f"{base}{path} served another video's object"


def test_edge_upload_ids(stack: Settings, marker: str) -> None:
    """Pass: with alice's valid upload token, HEAD, PATCH and DELETE on /files/{id} for
    every hostile id answer 4xx, none exposes bob's upload metadata, and bob's upload
    is still there afterwards."""
    bob_token = make_token(stack, subject=f"bob-{uuid.uuid4().hex[:8]}")
    client = TusClient(stack.edge_public_url, headers={"Authorization": f"Bearer {bob_token}"})
    uploader = client.uploader(file_stream=io.BytesIO(b"bob's bytes"),
                               metadata={"filename": marker})
    uploader.upload()
    assert uploader.url is not None
    victim = str(uploader.url).rstrip("/").rsplit("/", 1)[-1]
    alice_token = make_token(stack, subject=f"alice-{uuid.uuid4().hex[:8]}")
    headers = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {alice_token}"}
    patch_headers = {**headers, "Content-Type": "application/offset+octet-stream",
                     "Upload-Offset": "0", "Content-Length": "0"}
    collection = urlsplit(stack.edge_public_url).path.rstrip("/")
    for payload in _payloads(victim):
        path = f"{collection}/{payload}"
        for method, sent in (("HEAD", headers), ("PATCH", patch_headers),
                             ("DELETE", headers)):
            status, text = _send(stack.edge_public_url, method, path, sent)
            _refused(status, f"edge {method} {path}")
            assert marker not in text, (
                f"edge {method} {path} exposed bob's upload")
    bob = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {bob_token}"}
    status, text = _send(stack.edge_public_url, "HEAD", f"{collection}/{victim}", bob)
    assert status == 200, f"bob's upload is gone: {status} {text}"
