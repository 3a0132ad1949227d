"""The app path in headless Chromium: a page on another origin uploads with
tus-js-client, control's REST API creates and completes the video, the gateway's player
page plays it with hls.js pinned to the top rendition, and the page's playback events
land in ClickHouse."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_driver import Client as ClickHouseClient
from playwright.sync_api import Browser, Page

from analytics.queries import QueryClient, TimeRange, rendition_mix, video_summary
from tests.e2e.helpers import REPO, make_clip, rest, wait_until_done
from vora.client import mint_user_token
from vora.config import Settings
from vora.migrate import clickhouse_client

TUS_JS = REPO / "node_modules" / "tus-js-client" / "dist" / "tus.min.js"
EVENTS_TIMEOUT_SECONDS = 30.0


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def app_origin(tmp_path: Path) -> Iterator[str]:
    """The app's web server: the upload page and tus-js-client, on its own port."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(Path(__file__).with_name("upload_page.html"), site / "index.html")
    shutil.copy(TUS_JS, site / "tus.min.js")
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def upload_in_browser(page: Page, origin: str, clip: Path, upload_url: str,
                      upload_token: str) -> str:
    """Returns the TUS upload URL tus-js-client created."""
    page.goto(f"{origin}/index.html")
    page.set_input_files("#file", str(clip))
    location: str = page.evaluate("([url, token]) => window.uploadFile(url, token)",
                                  [upload_url, upload_token])
    size = clip.stat().st_size
    assert page.text_content("#progress") == f"{size} / {size}"
    return location


def play_top_rendition(page: Page, player_url: str) -> dict[str, Any]:
    page.goto(player_url)
    page.wait_for_function("document.getElementById('state').textContent === 'ended'",
                           timeout=45_000)
    shown: dict[str, Any] = page.evaluate("""() => ({
        rendition: document.getElementById('rendition').textContent,
        renditions: document.getElementById('renditions').textContent,
        level: window.voraHls.currentLevel, levels: window.voraHls.levels.length,
        height: document.querySelector('video').videoHeight,
        position: document.querySelector('video').currentTime,
        error: document.getElementById('error').textContent})""")
    return shown


@pytest.fixture
def clickhouse(stack: Settings) -> Iterator[ClickHouseClient]:
    client = clickhouse_client(stack)
    yield client
    client.disconnect()


def events_in_clickhouse(client: QueryClient, video_id: str,
                         since: datetime) -> dict[str, int]:
    """Event types stored for the video, once play, rendition_change and ended are in."""
    deadline = time.monotonic() + EVENTS_TIMEOUT_SECONDS
    while True:
        rows = client.execute(
            "SELECT event_type, count() FROM PlaybackEvents "
            "WHERE video_id = %(video_id)s AND event_time >= %(since)s GROUP BY event_type",
            {"video_id": video_id, "since": since})
        counts = {str(kind): int(count) for kind, count in rows}
        if {"play", "rendition_change", "ended"} <= counts.keys():
            return counts
        assert time.monotonic() < deadline, f"events in ClickHouse: {counts}"
        time.sleep(0.5)


def test_browser_upload_play_top_rendition_and_analytics(
        stack: Settings, browser: Browser, app_origin: str, clickhouse: QueryClient,
        tmp_path: Path, artifacts_dir: Path) -> None:
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=5)
    clip = make_clip(tmp_path / "browser-720p.mp4", 1280, 720, 4)
    token = mint_user_token(stack, f"e2e-browser-{uuid.uuid4().hex[:8]}")
    status, created = rest(stack, "POST", "/v1/videos", token,
                           {"title": "browser e2e", "size_bytes": clip.stat().st_size})
    assert status == 201, created
    video_id = created["video"]["id"]

    page = browser.new_page(viewport={"width": 1100, "height": 900})
    location = upload_in_browser(page, app_origin, clip, created["upload_url"],
                                 created["upload_token"])
    assert location.startswith(stack.edge_public_url)
    status, body = rest(stack, "POST", f"/v1/videos/{video_id}/complete-upload", token,
                        {"upload_id": location.rstrip("/").rsplit("/", 1)[-1]})
    assert status == 200, body
    video = wait_until_done(stack, token, video_id)
    assert video["state"] == "READY", video["failure_reason"]

    status, body = rest(stack, "GET", f"/v1/videos/{video_id}/playback-url", token)
    assert status == 200, body
    query = urllib.parse.urlencode({"src": body["url"], "video": video_id,
                                    "rendition": "top"})
    player = f"http://{stack.gateway_host}:{stack.gateway_port}/player?{query}"
    try:
        shown = play_top_rendition(page, player)
    finally:
        page.screenshot(path=str(artifacts_dir / "e2e-player.png"), full_page=True)
    assert shown["error"] == ""
    assert shown["renditions"] == "360p, 720p"
    assert (shown["level"], shown["height"]) == (shown["levels"] - 1, 720)
    assert shown["rendition"].startswith("720p (")
    assert shown["position"] >= 3.5, "the page did not play the clip through"

    counts = events_in_clickhouse(clickhouse, video_id, since)
    until = datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=1)
    window = TimeRange(since, until)
    summary = video_summary(clickhouse, video_id, window)
    assert summary.views == 1 and summary.events == sum(counts.values())
    assert summary.watch_seconds > 2
    assert rendition_mix(clickhouse, video_id, window).keys() == {"720p"}
    page.close()
