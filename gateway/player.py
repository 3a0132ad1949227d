"""A small demo player page (`make demo` prints its URL): hls.js playing a signed URL
and reporting playback events to analytics. Served by the gateway directly, never
through Varnish; the page itself is gateway/templates/player.html."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import tornado.web

from vora import storage
from vora.config import Settings

HLS_JS_DIR = Path(__file__).resolve().parent.parent / "node_modules" / "hls.js" / "dist"
TEMPLATES = Path(__file__).resolve().parent / "templates"
# ?rendition= pins playback: "top" (the highest level) or a height like "720p"; ABR otherwise.
RENDITION_HINT = re.compile(r"^(top|[1-9][0-9]{2,3}p)$")


class PlayerHandler(tornado.web.RequestHandler):
    def initialize(self, settings: Settings) -> None:
        self.vora = settings

    def get(self) -> None:
        src = self.get_query_argument("src", "")
        video_id = self.get_query_argument("video", "")
        rendition = self.get_query_argument("rendition", "")
        if rendition and not RENDITION_HINT.match(rendition):
            raise tornado.web.HTTPError(400, reason="rendition must be 'top' or like '720p'")
        if src and urlsplit(src).scheme not in ("http", "https"):
            raise tornado.web.HTTPError(400, reason="src must be an http(s) playback URL")
        if video_id:
            try:
                storage.validate_video_id(video_id)
            except storage.InvalidIdError as exc:
                raise tornado.web.HTTPError(400, reason=str(exc)) from None
        self.set_header("Cache-Control", "no-store")
        self.render("player.html", src=src, video_id=video_id, rendition=rendition,
                    hls_js_url="/player/hls.min.js",
                    analytics_url=self.vora.analytics_public_url)


def player_routes(settings: Settings) -> list[tuple[str, type[tornado.web.RequestHandler],
                                                     dict[str, object]]]:
    return [
        (r"/player", PlayerHandler, {"settings": settings}),
        (r"/player/(hls\.min\.js)", tornado.web.StaticFileHandler, {"path": str(HLS_JS_DIR)}),
    ]
