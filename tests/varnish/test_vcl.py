"""varnishtest runs of the real VCL template (tests/varnish/*.vtc).

Each .vtc holds ``%VORA_VCL%`` where the rendered template goes, with its backend set to
the test's fake gateway (``server s1``) and test keys; tokens are signed here with
vora/tokens.py, the same code the gateway and control use, and passed as macros.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.varnish.vcl import render_vcl
from vora import tokens
from vora.config import Settings, TokenKey

HERE = Path(__file__).resolve().parent
VARNISHTEST = "/usr/bin/varnishtest"

# Oldest first: "old" is rotated out (the VCL holds only the newest two).
KEYS = [
    TokenKey(kid="old", secret="rotated-out-secret-0000"),
    TokenKey(kid="k2025", secret="previous-secret-1111111"),
    TokenKey(kid="k2026", secret="current-secret-22222222"),
]
FAKE_GATEWAY: dict[str, object] = {"backend_host": "${s1_addr}", "backend_port": "${s1_port}"}
CASES: dict[str, dict[str, object]] = {
    "token.vtc": FAKE_GATEWAY,
    "coalesce.vtc": FAKE_GATEWAY,
    "cache_key.vtc": FAKE_GATEWAY,
    "grace.vtc": {**FAKE_GATEWAY, "master_ttl": "1s"},
    "invalidate.vtc": FAKE_GATEWAY,
    # No fake gateway needed; the ACL leaves out the test client's 127.0.0.1.
    "acl.vtc": {"backend_host": "127.0.0.1", "backend_port": 9, "purge_acl": ["192.0.2.1"]},
}


def _keyring(*keys: TokenKey) -> tokens.Keyring:
    return tokens.Keyring(tuple(keys))


def _macros() -> dict[str, str]:
    video, other = str(uuid.uuid4()), str(uuid.uuid4())
    later = int(time.time()) + 3600
    current, previous = _keyring(*KEYS), _keyring(*KEYS[:2])
    good = tokens.sign_playback(current, video, later)
    forged = good[:-4] + ("0000" if not good.endswith("0000") else "1111")
    stranger = _keyring(TokenKey(kid="nobody", secret="not-a-key-varnish-knows"))
    return {
        "vid": video,
        "tok_ok": good,
        "tok_ok2": tokens.sign_playback(current, video, later + 60),
        "tok_prev": tokens.sign_playback(previous, video, later),
        "tok_expired": tokens.sign_playback(current, video, int(time.time()) - 5),
        "tok_forged": forged,
        "tok_other_video": tokens.sign_playback(current, other, later),
        "tok_unknown_kid": tokens.sign_playback(stranger, video, later),
        "tok_rotated": tokens.sign_playback(_keyring(KEYS[0]), video, later),
    }


@pytest.fixture(scope="module")
def vcl_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"token_keys": KEYS})


@pytest.mark.parametrize("case", sorted(CASES))
def test_vtc(case: str, vcl_settings: Settings, tmp_path: Path) -> None:
    vcl = render_vcl(vcl_settings, **CASES[case])
    script = tmp_path / case
    script.write_text((HERE / case).read_text().replace("%VORA_VCL%", vcl))
    macros = [f"-D{name}={value}" for name, value in _macros().items()]
    result = subprocess.run(
        [VARNISHTEST, "-t", "30", *macros, str(script)],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )
    failures = [line for line in result.stdout.splitlines() if line.startswith("---- ")]
    assert result.returncode == 0, (
        f"{case} failed: {failures}\n{result.stdout[-3000:]}{result.stderr}"
    )
