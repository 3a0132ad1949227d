"""The master (multivariant) playlist, built from a video's renditions.

Follows Apple's HLS authoring specification for multivariant playlists: every
variant carries BANDWIDTH (peak), AVERAGE-BANDWIDTH, CODECS, RESOLUTION and
FRAME-RATE; EXT-X-INDEPENDENT-SEGMENTS (every segment starts with an IDR frame);
variants ordered by bandwidth; relative URIs, so the token in the path reaches
every media playlist and segment and one cached copy serves every viewer.

Client hints narrow the variant set (ABR caps): ``max_height`` and
``max_bandwidth`` in the query, or the ``Save-Data: on`` header. Query hints win
over the header; the response names in Vary only the header it consulted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.catalog import Rendition

# With Save-Data, the player gets at most this height: enough for a phone, cheap on data.
SAVE_DATA_MAX_HEIGHT = 360
_MAX_HINT = 10**10


class HintError(ValueError):
    """A client hint is malformed; the message says which and what is expected."""


@dataclass(frozen=True)
class VariantHints:
    max_height: int | None = None
    max_bandwidth: int | None = None
    vary: tuple[str, ...] = ()  # request headers the choice depended on


def _positive_int(args: Mapping[str, str], name: str) -> int | None:
    raw = args.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or not 0 < int(raw) < _MAX_HINT:
        raise HintError(f"{name} must be a positive integer, got {raw[:20]!r}")
    return int(raw)


def parse_hints(args: Mapping[str, str], save_data: str | None) -> VariantHints:
    """Hints from the query (``max_height``, ``max_bandwidth``) or the Save-Data header."""
    max_height = _positive_int(args, "max_height")
    max_bandwidth = _positive_int(args, "max_bandwidth")
    if max_height is not None or max_bandwidth is not None:
        return VariantHints(max_height=max_height, max_bandwidth=max_bandwidth)
    if (save_data or "").strip().lower() == "on":
        return VariantHints(max_height=SAVE_DATA_MAX_HEIGHT, vary=("Save-Data",))
    return VariantHints(vary=("Save-Data",))


def select_variants(renditions: Sequence[Rendition], hints: VariantHints) -> list[Rendition]:
    """The renditions within the hints, by bandwidth; never empty (the lowest stays)."""
    ordered = sorted(renditions, key=lambda r: (r.bandwidth, r.height))
    chosen = [
        r for r in ordered
        if (hints.max_height is None or r.height <= hints.max_height)
        and (hints.max_bandwidth is None or r.bandwidth <= hints.max_bandwidth)
    ]
    return chosen or ordered[:1]


def _variant(r: Rendition) -> str:
    attributes = [
        f"BANDWIDTH={r.bandwidth}",
        f"AVERAGE-BANDWIDTH={r.average_bandwidth or r.bandwidth}",
        f'CODECS="{r.codecs}"',
        f"RESOLUTION={r.width}x{r.height}",
        f"FRAME-RATE={r.frame_rate:.3f}",
    ]
    return f"#EXT-X-STREAM-INF:{','.join(attributes)}\n{r.name}/playlist.m3u8\n"


def render_master(renditions: Sequence[Rendition]) -> str:
    lines = ["#EXTM3U\n", "#EXT-X-VERSION:3\n", "#EXT-X-INDEPENDENT-SEGMENTS\n"]
    lines.extend(_variant(r) for r in renditions)
    return "".join(lines)
