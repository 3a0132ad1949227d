"""`make demo` in its test mode: scripts/demo.sh with VORA_DEMO_EXIT=1 and a short
generated 1080p clip prints URLs that play; a file the farm cannot read fails the demo
with the farm's reason and where to look."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO, has_audio, rest, video_heights
from vora.client import mint_user_token
from vora.config import Settings

DEMO_TIMEOUT_SECONDS = 150


def run_demo(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "scripts" / "demo.sh")], capture_output=True, text=True,
        timeout=DEMO_TIMEOUT_SECONDS, check=False, cwd=REPO,
        env={**os.environ, "VORA_DEMO_EXIT": "1", "VORA_DEMO_SAMPLE_SECONDS": "2", **env})


def printed(output: str, label: str) -> str:
    match = re.search(rf"^  {label}\s+(\S+)$", output, re.MULTILINE)
    assert match, f"the demo did not print its {label}:\n{output}"
    return match.group(1)


def dashboard_answers(settings: Settings) -> bool:
    url = f"http://{settings.control_host}:{settings.control_http_port}/dashboard"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_make_demo_prints_urls_that_play(stack: Settings) -> None:
    demo = run_demo()
    assert demo.returncode == 0, demo.stdout + demo.stderr
    video_id = printed(demo.stdout, "video id")
    playback = printed(demo.stdout, "playback URL")
    assert playback.startswith(f"{stack.playback_public_url}/v1/play/")
    assert playback.endswith(f"/{video_id}/master.m3u8")
    assert video_heights(playback) == {1080, 720, 360}
    assert has_audio(playback)

    player = printed(demo.stdout, "player page")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(player).query)
    assert query == {"src": [playback], "video": [video_id]}
    with urllib.request.urlopen(player, timeout=10) as response:  # noqa: S310 (loopback)
        assert response.status == 200
        assert "hls.min.js" in response.read().decode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{player}&rendition=1080i", timeout=10)  # noqa: S310
    assert refused.value.code == 400
    refused.value.close()

    assert printed(demo.stdout, "Temporal UI").endswith(f":{stack.temporal_ui_port}")
    # The dashboard line appears exactly when control serves /dashboard.
    assert ("  dashboard " in demo.stdout) == dashboard_answers(stack)
    assert f"vora status {video_id}" in demo.stdout


def test_make_demo_says_why_transcoding_failed(stack: Settings, tmp_path: Path) -> None:
    not_a_video = tmp_path / "notes.txt"
    not_a_video.write_text("this is a text file, not a video\n" * 20)
    demo = run_demo(VIDEO=str(not_a_video))
    output = demo.stdout + demo.stderr
    assert demo.returncode == 1, output
    match = re.search(r"transcoding video (\S+) FAILED: (.+?)\. Look at", output)
    assert match, output
    video_id, reason = match.groups()
    status, body = rest(stack, "GET", f"/v1/videos/{video_id}",
                        mint_user_token(stack, "demo"))
    assert status == 200, body
    assert body["video"]["state"] == "FAILED"
    assert reason and body["video"]["failure_reason"].startswith(reason)
    assert str(stack.home / "logs" / "farm.log") in output
    assert f"transcode-{video_id}" in output
