"""hls.js in headless Chromium plays the stream through Varnish."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from tests.gateway.conftest import Delivery
from tests.gateway.http import fetch
from vora import devstack

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Browser

HLS_JS = devstack.REPO_ROOT / "node_modules" / "hls.js" / "dist" / "hls.min.js"

PLAY = """
(url) => new Promise((resolve) => {
  const video = document.createElement("video");
  video.muted = true;
  document.body.appendChild(video);
  const errors = [];
  const hls = new Hls({ enableWorker: true });
  hls.on(Hls.Events.ERROR, (_, data) => {
    errors.push(`${data.type}:${data.details}:${data.fatal}`);
    if (data.fatal) resolve({ fatal: true, errors, time: video.currentTime });
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
  hls.loadSource(url);
  hls.attachMedia(video);
  const started = performance.now();
  const tick = setInterval(() => {
    if (video.currentTime >= 3 || performance.now() - started > 20000) {
      clearInterval(tick);
      resolve({ fatal: false, errors, time: video.currentTime,
                levels: hls.levels.map((l) => l.height) });
    }
  }, 200);
})
"""


def test_hlsjs_plays_through_varnish(delivery: Delivery, browser: Browser,
                                     artifacts_dir: Path) -> None:
    page = browser.new_page()
    try:
        # An http origin (Varnish's own health page), as a player page would have.
        page.goto(f"{delivery.varnish_url}/varnish/healthz")
        page.add_script_tag(path=str(HLS_JS))
        assert page.evaluate("Hls.isSupported()"), "this Chromium has no MSE for H.264"
        url = delivery.varnish_url + delivery.video.path("master.m3u8")
        result = page.evaluate(PLAY, url)
        if result["fatal"] or result["time"] < 3:
            page.screenshot(path=str(artifacts_dir / "delivery-hlsjs.png"))
    finally:
        page.close()
    assert not result["fatal"], result["errors"]
    assert result["time"] >= 3, result
    assert sorted(result["levels"]) == [240, 480]


def test_demo_player_page_plays(delivery: Delivery, browser: Browser) -> None:
    src = delivery.varnish_url + delivery.video.path("master.m3u8")
    query = urlencode({"src": src, "video": delivery.video.video_id})
    page = browser.new_page()
    try:
        page.goto(f"{delivery.gateway_url}/player?{query}")
        page.wait_for_function("document.querySelector('video').currentTime > 1", timeout=20000)
        renditions = (page.text_content("#renditions") or "").split(", ")
        assert sorted(renditions) == ["240p", "480p"]
        assert page.text_content("#error") == ""
    finally:
        page.close()
    bad = fetch(delivery.gateway_url, "/player?src=javascript:alert(1)")
    assert bad.status == 400
