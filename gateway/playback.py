"""Who may play what: the token check and the video lookup, free of HTTP."""

from __future__ import annotations

from dataclasses import dataclass

from gateway import metrics
from gateway.catalog import CatalogUnavailable, PlayableVideo, VideoCatalog
from vora import storage, tokens


class Refused(Exception):
    """Playback refused; ``status`` is the HTTP status, ``reason`` what the client can do."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _reason_class(exc: tokens.TokenError) -> str:
    text = exc.reason
    if isinstance(exc, tokens.TokenExpired):
        return "expired"
    for needle, label in (("malformed", "malformed"), ("unknown key", "unknown_kid"),
                          ("rotated out", "rotated_kid"), ("signature", "signature")):
        if needle in text:
            return label
    return "other"


@dataclass
class Playback:
    keyring: tokens.Keyring
    catalog: VideoCatalog

    def check_token(self, token: str, video_id: str) -> None:
        try:
            storage.validate_video_id(video_id)
        except storage.InvalidIdError as exc:
            raise Refused(404, f"no such video: {exc}") from None
        try:
            tokens.verify_playback(self.keyring, token, video_id)
        except tokens.TokenError as exc:
            metrics.TOKEN_REFUSALS.labels(reason=_reason_class(exc)).inc()
            raise Refused(403, f"playback token refused: {exc.reason}") from None

    async def authorize(self, token: str, video_id: str) -> PlayableVideo:
        """The READY video the token opens, or Refused (403 token, 404 not playable, 503)."""
        self.check_token(token, video_id)
        try:
            video = await self.catalog.get_video(video_id)
        except CatalogUnavailable as exc:
            raise Refused(503, f"video lookup unavailable, retry shortly ({exc})") from None
        if video is None:
            raise Refused(404, "no such video")
        if not video.ready:
            raise Refused(404, f"video is not ready to play (state: {video.state})")
        if not video.renditions:
            raise Refused(404, "video has no playable renditions")
        return video

    @staticmethod
    def rendition_of(video: PlayableVideo, name: str) -> str:
        if video.rendition(name) is None:
            raise Refused(404, f"video has no rendition {name[:16]!r}")
        return name
