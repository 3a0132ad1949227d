"""Delivery: the gateway on a Varnish miss, Varnish on a hit, against nginx serving the
same files from disk, measured alternately with wrk; latency as viewers grow (10, 100,
1000 concurrent connections on Varnish hits, against nginx at the same concurrency); and
the hit ratio of a playback mix.

    python -m bench.gateway [--rounds 3] [--seconds 8] [--viewers 10 100 1000]

Needs the stack's S3 (it uploads a 30 s two-rung ladder under a new video id and removes
it at the end). The control peer is the tests' real grpc.aio VideoService, so the
figures hold the gateway's own cost; video lookups are cached in-process as in production.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import m3u8

from bench.harness import Report, figure, save, show
from tests.gateway.http import fetch
from tests.gateway.media import Ladder, make_ladder
from tests.gateway.servers import Process, ensure_s3, free_port, running_delivery
from vora import tokens
from vora.config import Settings, load_settings

DURATION = 30
SECONDS = 8  # per wrk run
VIEWERS = 300
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
local i = math.random(#paths)
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d, "non2xx": %d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""
NGINX_CONF = """
daemon off;
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; image/jpeg jpg; }}
  server {{
    listen 127.0.0.1:{port};
    location ~ ^/v1/play/[^/]+/[^/]+/(.*)$ {{ alias {root}/$1; }}
  }}
}}
"""


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    failures: int


def wrk(base_url: str, paths: list[str], workdir: Path, connections: int,
        threads: int = 2, seconds: int = SECONDS) -> WrkResult:
    script, listing = workdir / "paths.lua", workdir / f"paths-{random.random()}.txt"
    script.write_text(WRK_SCRIPT)
    listing.write_text("\n".join(paths) + "\n")
    result = subprocess.run(
        ["wrk", "-t", str(min(threads, connections)), "-c", str(connections),
         "-d", f"{seconds}s", "--latency", "-s", str(script), base_url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
        env={**os.environ, "WRK_PATHS": str(listing)},
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("WRK_JSON "))
    data = json.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        rps=data["requests"] / (data["duration_us"] / 1e6), p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000, failures=data["errors"] + data["non2xx"],
    )


def start_nginx(root: Path, workdir: Path) -> tuple[Process, str]:
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=workdir, port=port, root=root))
    process = Process(["nginx", "-e", str(workdir / "nginx-error.log"), "-p", str(workdir),
                       "-c", str(conf)], workdir / "nginx.log")
    url = f"http://127.0.0.1:{port}"
    process.wait_ready(f"{url}/v1/play/t/v/240p/playlist.m3u8")
    return process, url


def segment_paths(ladder: Ladder, prefix: str) -> list[str]:
    paths = []
    for rendition in ladder.renditions:
        playlist = m3u8.load(str(ladder.root / rendition.name / "playlist.m3u8"))
        paths += [f"{prefix}/{rendition.name}/{s.uri}" for s in playlist.segments]
    return paths


def _viewer(varnish_url: str, keyring: tokens.Keyring, video_id: str, index: int,
            segments: dict[str, list[str]]) -> list[str]:
    """One viewer: master, a playlist, every segment in order (some switch down midway)."""
    rng = random.Random(index)
    token = tokens.sign_playback(keyring, video_id, int(time.time()) + 3600 + index)
    base = f"/v1/play/{token}/{video_id}"
    save_data = rng.random() < 0.2
    outcomes = [fetch(varnish_url, f"{base}/master.m3u8",
                      {"Save-Data": "on"} if save_data else {}).header("X-Cache") or "?"]
    rendition = "240p" if save_data else "480p"
    switch_at = rng.randrange(len(segments[rendition])) if rng.random() < 0.25 else -1
    for number, segment in enumerate(segments[rendition]):
        if number in (0, switch_at):
            rendition = "240p" if number == switch_at else rendition
            outcomes.append(fetch(varnish_url, f"{base}/{rendition}/playlist.m3u8")
                            .header("X-Cache") or "?")
        outcomes.append(fetch(varnish_url, f"{base}/{rendition}/{segment}")
                        .header("X-Cache") or "?")
    return outcomes


def playback_mix(varnish_url: str, keyring: tokens.Keyring, video_id: str,
                 ladder: Ladder) -> tuple[float, float]:
    """(measured hit ratio, best possible: every object fetched from the gateway once)."""
    fetch(varnish_url, f"/v1/videos/{video_id}", method="BAN")
    segments = {r.name: [s.uri for s in m3u8.load(
        str(ladder.root / r.name / "playlist.m3u8")).segments] for r in ladder.renditions}
    with ThreadPoolExecutor(16) as pool:
        runs = list(pool.map(lambda i: _viewer(varnish_url, keyring, video_id, i, segments),
                             range(VIEWERS)))
    outcomes = [o for run in runs for o in run]
    distinct = 2 + sum(1 + len(s) for s in segments.values())  # 2 masters (Save-Data or not)
    return outcomes.count("HIT") / len(outcomes), 1 - distinct / len(outcomes)


def _pair(rounds: int, vora: Callable[[], WrkResult], ref: Callable[[], WrkResult],
          ) -> tuple[list[WrkResult], list[WrkResult]]:
    ours: list[WrkResult] = []
    theirs: list[WrkResult] = []
    for index in range(rounds):
        if index % 2 == 0:
            ours.append(vora())
            theirs.append(ref())
        else:
            theirs.append(ref())
            ours.append(vora())
    return ours, theirs


def measure(settings: Settings, ladder: Ladder, video_id: str, urls: dict[str, str],
            workdir: Path, rounds: int, seconds: int = SECONDS,
            viewers: tuple[int, ...] = (10, 100, 1000)) -> Report:
    keyring = tokens.Keyring.from_settings(settings)
    token = tokens.sign_playback(keyring, video_id, int(time.time()) + 3600)
    prefix = f"/v1/play/{token}/{video_id}"
    segments = segment_paths(ladder, prefix)
    (ladder.root / "master.m3u8").write_bytes(
        fetch(urls["gateway"], f"{prefix}/master.m3u8").body)
    for path in segments:  # warm Varnish: the hit runs measure hits only
        fetch(urls["varnish"], path)

    def run(name: str, paths: list[str], connections: int) -> WrkResult:
        return wrk(urls[name], paths, workdir, connections, seconds=seconds)

    # Misses reach the gateway one per object (Varnish coalesces them), so concurrency
    # there is low: one connection is the common case, four a burst of new videos.
    miss_one = _pair(rounds, lambda: run("gateway", segments, 1),
                     lambda: run("nginx", segments, 1))
    miss_seg = _pair(rounds, lambda: run("gateway", segments, 4),
                     lambda: run("nginx", segments, 4))
    miss_master = _pair(rounds, lambda: run("gateway", [f"{prefix}/master.m3u8"], 4),
                        lambda: run("nginx", [f"{prefix}/master.m3u8"], 4))
    hit = _pair(rounds, lambda: run("varnish", segments, 64), lambda: run("nginx", segments, 64))
    crowd = {count: _pair(rounds, lambda c=count: run("varnish", segments, c),  # type: ignore[misc]
                          lambda c=count: run("nginx", segments, c))  # type: ignore[misc]
             for count in viewers}
    hit_ratio, best = playback_mix(urls["varnish"], keyring, video_id, ladder)

    def lat(pair: tuple[list[WrkResult], list[WrkResult]], attr: str) -> tuple[list[float],
                                                                                 list[float]]:
        return [getattr(r, attr) for r in pair[0]], [getattr(r, attr) for r in pair[1]]

    figures = [
        figure("segment p50, gateway on a Varnish miss (1 conn)", "ms",
               *lat(miss_one, "p50_ms"), "nginx from disk", higher_is_better=False),
        figure("segment p99, gateway on a Varnish miss (1 conn)", "ms",
               *lat(miss_one, "p99_ms"), "nginx from disk", higher_is_better=False,
               goal="Vora < 50 ms"),
        figure("segment p50, gateway on a Varnish miss (4 conns)", "ms",
               *lat(miss_seg, "p50_ms"), "nginx from disk", higher_is_better=False),
        figure("segment p99, gateway on a Varnish miss (4 conns)", "ms",
               *lat(miss_seg, "p99_ms"), "nginx from disk", higher_is_better=False,
               goal="Vora < 50 ms"),
        figure("master p99, gateway on a Varnish miss (4 conns)", "ms",
               *lat(miss_master, "p99_ms"), "nginx static copy", higher_is_better=False,
               goal="Vora < 50 ms"),
        figure("segment requests/s, Varnish hit (64 conns)", "req/s", *lat(hit, "rps"),
               "nginx from disk", goal=">= 0.8x"),
        figure("segment p99, Varnish hit (64 conns)", "ms", *lat(hit, "p99_ms"),
               "nginx from disk", higher_is_better=False),
        *[figure(f"segment {stat} at {count} concurrent viewers, Varnish hit", unit,
                 *lat(pair, attr), f"nginx from disk, {count} conns",
                 higher_is_better=attr == "rps")
          for count, pair in crowd.items()
          for stat, attr, unit in (("p50", "p50_ms", "ms"), ("p99", "p99_ms", "ms"),
                                   ("requests/s", "rps", "req/s"))],
        figure(f"hit ratio, {VIEWERS} viewers' playback mix", "ratio", [hit_ratio], [best],
               "best possible (each object fetched once)", goal="Vora >= 0.99"),
    ]
    failures = sum(r.failures for pair in (miss_one, miss_seg, miss_master, hit, *crowd.values())
                   for side in pair for r in side)
    notes = [
        f"{DURATION} s ladder, 2 rungs, 2 s segments ({len(segments)} segments); wrk "
        f"{seconds} s per run, {rounds} rounds alternating; non-2xx or socket errors: {failures}",
        "viewers = wrk connections (2 threads), each requesting segments back to back with "
        "keep-alive: a crowd far busier than real players, which fetch one segment per "
        "segment duration",
        "gateway miss = requests straight to the gateway (what Varnish sends on a miss), "
        "video lookup cached in-process, S3 = the stack's SeaweedFS on loopback",
        "one 2-core machine runs wrk, Varnish/the gateway and nginx together, and during "
        f"this run its 1-minute load average was {os.getloadavg()[0]:.1f} (wrk's "
        "connections, Varnish's and nginx's threads count in it, and so does any other work)",
    ]
    return Report("gateway", figures, notes)


def run(rounds: int = 3, seconds: int = SECONDS,
        viewers: tuple[int, ...] = (10, 100, 1000)) -> Report:
    settings = load_settings()
    ensure_s3(settings)
    workdir = Path(tempfile.mkdtemp(prefix="vora-bench-gateway-"))
    workdir.chmod(0o755)  # nginx workers run unprivileged and read the ladder from here
    try:
        ladder = make_ladder(workdir / "ladder", duration=DURATION)
        with running_delivery(settings, ladder, workdir) as running:
            nginx, nginx_url = start_nginx(ladder.root, workdir)
            try:
                urls = {"gateway": running.gateway_url, "varnish": running.varnish_url,
                        "nginx": nginx_url}
                return measure(settings, ladder, running.video_id, urls, workdir, rounds,
                               seconds, viewers)
            finally:
                nginx.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=SECONDS, help="per wrk run")
    parser.add_argument("--viewers", type=int, nargs="*", default=[10, 100, 1000],
                        help="concurrent connections for the crowd figures")
    args = parser.parse_args()
    report = run(args.rounds, args.seconds, tuple(args.viewers))
    show(report)
    print(f"  written: {save(report)}")


if __name__ == "__main__":
    main()
