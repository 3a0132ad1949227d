"""Measure what was encoded: bandwidth from segment sizes, codecs from the stream itself,
and the master playlist that lists the renditions."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import m3u8

from farm import process
from farm.limits import ProcessLimits
from farm.pipeline import PLAYLIST
from vora import jobs, storage
from vora.config import Settings

AAC_LC = "mp4a.40.2"
_TOOL_LIMITS = ProcessLimits(memory_bytes=1024**3, cpu_seconds=60, file_bytes=0)


def bandwidths(rendition_dir: Path) -> tuple[int, int, float]:
    """(peak, average) bits per second over the playlist's segments, and total seconds.

    Peak is the largest segment's bit rate, as HLS defines BANDWIDTH."""
    playlist = m3u8.load(str(rendition_dir / PLAYLIST))
    peak, bits, seconds = 0.0, 0, 0.0
    for segment in playlist.segments:
        size = (rendition_dir / segment.uri).stat().st_size * 8
        duration = float(segment.duration or 0)
        bits += size
        seconds += duration
        if duration > 0:
            peak = max(peak, size / duration)
    average = bits / seconds if seconds else 0.0
    return round(peak), round(average), seconds


def sps_codec(annexb: bytes) -> str:
    """``avc1.PPCCLL`` from the first SPS NAL unit of an H.264 Annex B stream."""
    index = 0
    while (index := annexb.find(b"\x00\x00\x01", index)) != -1:
        header = annexb[index + 3: index + 7]
        if len(header) == 4 and header[0] & 0x1F == 7:
            return f"avc1.{header[1]:02x}{header[2]:02x}{header[3]:02x}"
        index += 3
    raise ValueError("no H.264 sequence parameter set in the encoded stream")


async def stream_facts(settings: Settings, segment: Path) -> dict[str, Any]:
    """ffprobe's view of one encoded segment: width, height, frame rate, audio profile."""
    out = await process.run(
        [settings.farm_ffprobe, "-v", "error", "-show_streams", "-of", "json", str(segment)],
        limits=_TOOL_LIMITS, timeout=30)
    data: dict[str, Any] = json.loads(out)
    return data


async def measure(settings: Settings, video_id: str, out_dir: Path,
                  rendition: jobs.RenditionPlan, has_audio: bool) -> jobs.RenditionResult:
    rendition_dir = out_dir / rendition.name
    peak, average, _ = bandwidths(rendition_dir)
    first_segment = rendition_dir / m3u8.load(str(rendition_dir / PLAYLIST)).segments[0].uri
    facts = await stream_facts(settings, first_segment)
    video = next(s for s in facts["streams"] if s["codec_type"] == "video")
    codecs = [sps_codec(await first_sps_bytes(settings, first_segment))]
    if has_audio:
        codecs.append(AAC_LC)
    return jobs.RenditionResult(
        name=rendition.name, width=int(video["width"]), height=int(video["height"]),
        bandwidth=peak, average_bandwidth=average, codecs=",".join(codecs),
        frame_rate=round(float(Fraction(video.get("r_frame_rate", "0/1"))), 3),
        playlist_key=storage.playlist_key(video_id, rendition.name),
    )


async def first_sps_bytes(settings: Settings, segment: Path) -> bytes:
    return await process.run_bytes(
        [settings.farm_ffmpeg, "-v", "error", "-i", str(segment), "-map", "0:v:0", "-c", "copy",
         "-frames:v", "1", "-f", "h264", "pipe:1"],
        limits=_TOOL_LIMITS, timeout=30)


def master_playlist(renditions: list[jobs.RenditionResult]) -> str:
    """The master playlist, highest bandwidth first, with relative rendition URIs."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for r in sorted(renditions, key=lambda r: r.bandwidth, reverse=True):
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={r.bandwidth},AVERAGE-BANDWIDTH={r.average_bandwidth},"
            f"RESOLUTION={r.width}x{r.height},FRAME-RATE={r.frame_rate:.3f},"
            f'CODECS="{r.codecs}"')
        lines.append(f"{r.name}/{PLAYLIST}")
    return "\n".join(lines) + "\n"


def renditions_from_master(video_id: str, text: str) -> list[jobs.RenditionResult]:
    """Read back a published master (a retry of a job that already published)."""
    results = []
    for playlist in m3u8.loads(text).playlists:
        info = playlist.stream_info
        name = storage.validate_rendition(playlist.uri.split("/")[0])
        width, height = info.resolution or (0, 0)
        results.append(jobs.RenditionResult(
            name=name, width=width, height=height, bandwidth=int(info.bandwidth or 0),
            average_bandwidth=int(info.average_bandwidth or 0), codecs=info.codecs or "",
            frame_rate=float(info.frame_rate or 0), playlist_key=storage.playlist_key(
                video_id, name)))
    return results
