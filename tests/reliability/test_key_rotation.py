"""Scenario 10, rotation: a playback token whose key was rotated out of its window is
refused by Varnish and by the gateway, also for bytes Varnish already holds, while a
token under the new key plays the same cached copy.

Rotation is done as an operator does it (docs/tokens.md): the key list grows at the end,
the gateway is restarted with it, and Varnish loads the re-rendered VCL with
``varnishadm vcl.load``/``vcl.use``, which keeps the cache (a varnishd restart would
empty it and prove nothing about cached content).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.http import Response, fetch
from tests.gateway.media import Ladder, make_ladder, ready_video, upload_ladder
from tests.gateway.servers import (
    ControlServer,
    FakeVideoService,
    Process,
    ensure_s3,
    free_port,
    start_varnish,
)
from tests.varnish.vcl import write_vcl
from vora import storage, tokens
from vora.config import Settings, TokenKey

OLD = TokenKey(kid="relA", secret="reliability-key-a-0000000")
MIDDLE = TokenKey(kid="relB", secret="reliability-key-b-1111111")
NEW = TokenKey(kid="relC", secret="reliability-key-c-2222222")
PATHS = ("master.m3u8", "480p/playlist.m3u8", "480p/seg_000.ts")


def _keys_env(keys: list[TokenKey]) -> str:
    return ",".join(f"{k.kid}:{k.secret}" for k in keys)


def _sign(keys: list[TokenKey], video_id: str) -> str:
    """A playback token as control signs it with this key list (the newest key)."""
    return tokens.sign_playback(tokens.Keyring(tuple(keys)), video_id, int(time.time()) + 3600)


def _start_gateway(control_port: int, port: int, keys: list[TokenKey], log: Path) -> Process:
    env = {**os.environ, "VORA_GATEWAY_HOST": "127.0.0.1", "VORA_GATEWAY_PORT": str(port),
           "VORA_CONTROL_HOST": "127.0.0.1", "VORA_CONTROL_GRPC_PORT": str(control_port),
           "VORA_LOG_LEVEL": "WARNING", "VORA_TOKEN_KEYS": _keys_env(keys)}
    process = Process([sys.executable, "-m", "gateway.main"], log, env)
    process.wait_ready(f"http://127.0.0.1:{port}/healthz")
    return process


def _varnishadm(workdir: Path, *args: str) -> None:
    result = subprocess.run(["/usr/bin/varnishadm", "-n", str(workdir / "varnish"), *args],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"varnishadm {args}: {result.stdout}{result.stderr}"


def _refusal(response: Response) -> str:
    assert response.status == 403, (response.status, response.body[:200])
    reason: str = json.loads(response.body)["error"]
    return reason


@pytest.fixture
def ladder(stack: Settings, tmp_path: Path) -> Iterator[tuple[str, Ladder]]:
    """A two-rung ladder published in the stack's S3 under a new video id."""
    ensure_s3(stack)
    made = make_ladder(tmp_path / "ladder", duration=2)
    video_id = storage.new_video_id()
    keys = upload_ladder(stack, made, video_id)
    yield video_id, made
    storage.s3_client(stack).delete_objects(
        Bucket=stack.bucket_processed, Delete={"Objects": [{"Key": k} for k in keys]})


def test_a_rotated_out_key_is_refused_even_for_cached_content(
        stack: Settings, ladder: tuple[str, Ladder], tmp_path: Path) -> None:
    """Pass: with keys [relA] a token signed under relA plays master, playlist and segment
    through Varnish, and a second fetch is a cache HIT. After rotating twice (keys
    [relA, relB, relC]: relC signs, relC and relB are accepted, relA is out of its
    window) the same relA URLs get 403 with a reason from Varnish ("unknown key id": the
    VCL holds only the two accepted keys) and from the gateway direct ("rotated out");
    a token under relC plays all three through Varnish as cache HITs with the same bytes,
    and direct from the gateway; a token under relB, the previous key, still plays."""
    video_id, made = ladder
    control = FakeVideoService(stack.service_token)  # type: ignore[abstract]  # partial fake
    control.videos[video_id] = ready_video(video_id, made)
    server = ControlServer(control)
    server.start()
    gateway_port = free_port()
    before, after = [OLD], [OLD, MIDDLE, NEW]
    started: list[Process] = []
    try:
        gateway = _start_gateway(server.port, gateway_port, before, tmp_path / "gateway-1.log")
        started.append(gateway)
        varnish, varnish_url = start_varnish(
            stack.model_copy(update={"token_keys": before}), gateway_port, tmp_path)
        started.append(varnish)
        gateway_url = f"http://127.0.0.1:{gateway_port}"

        old = _sign(before, video_id)
        assert old.startswith(f"{OLD.kid}.")
        cached = {}
        for rest in PATHS:
            first = fetch(varnish_url, f"/v1/play/{old}/{video_id}/{rest}")
            assert first.status == 200, (rest, first.body[:200])
            again = fetch(varnish_url, f"/v1/play/{old}/{video_id}/{rest}")
            assert again.status == 200 and again.header("X-Cache") == "HIT", rest
            cached[rest] = again.body

        # Rotation: restart the gateway with the new list, reload Varnish's VCL in place.
        gateway.stop()
        started.remove(gateway)
        started.append(_start_gateway(server.port, gateway_port, after,
                                      tmp_path / "gateway-2.log"))
        vcl = write_vcl(tmp_path / "rotated.vcl", stack.model_copy(update={
            "token_keys": after, "gateway_host": "127.0.0.1", "gateway_port": gateway_port}))
        _varnishadm(tmp_path, "vcl.load", "rotated", str(vcl))
        _varnishadm(tmp_path, "vcl.use", "rotated")

        for rest in PATHS:
            through_varnish = _refusal(fetch(varnish_url, f"/v1/play/{old}/{video_id}/{rest}"))
            assert "playback token refused: unknown key id" in through_varnish, through_varnish
            direct = _refusal(fetch(gateway_url, f"/v1/play/{old}/{video_id}/{rest}"))
            assert "rotated out" in direct and OLD.kid in direct, direct

        new, previous = _sign(after, video_id), _sign([OLD, MIDDLE], video_id)
        assert new.startswith(f"{NEW.kid}.") and previous.startswith(f"{MIDDLE.kid}.")
        for rest in PATHS:
            played = fetch(varnish_url, f"/v1/play/{new}/{video_id}/{rest}")
            assert played.status == 200 and played.header("X-Cache") == "HIT", rest
            assert played.body == cached[rest], rest
            assert fetch(gateway_url, f"/v1/play/{new}/{video_id}/{rest}").status == 200, rest
            assert fetch(varnish_url, f"/v1/play/{previous}/{video_id}/{rest}").status == 200
    finally:
        for process in reversed(started):
            process.stop()
        server.stop()
