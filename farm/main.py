"""Entry point of vora-farm. ``vora-farm --check`` prints what this node can do."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

import tornado.web

from vora import service, web
from vora.config import Settings, load_settings


def ffmpeg_version(settings: Settings) -> str:
    if not shutil.which(settings.farm_ffmpeg):
        return "not found"
    result = subprocess.run([settings.farm_ffmpeg, "-hide_banner", "-version"],
                            capture_output=True, text=True, check=False, timeout=10)
    return result.stdout.splitlines()[0] if result.stdout else "unknown"


def check(settings: Settings) -> int:
    print(f"ffmpeg: {ffmpeg_version(settings)}")
    print(f"cpu cores: {os.cpu_count()}; cpu slots: {settings.farm_cpu_slots}")
    print(f"pipeline setting: {settings.farm_pipeline}")
    return 0


def make_app(settings: Settings) -> tornado.web.Application:
    return tornado.web.Application(web.ops_routes("farm"))


async def serve(settings: Settings) -> None:
    server = web.listen(make_app(settings), settings.farm_host, settings.farm_metrics_port)
    await web.serve_until_stopped([server])


def main() -> None:
    parser = argparse.ArgumentParser(prog="vora-farm", description=__doc__)
    parser.add_argument("--check", action="store_true", help="print what this node can do")
    args = parser.parse_args()
    if args.check:
        raise SystemExit(check(load_settings()))
    service.run("farm", serve)


if __name__ == "__main__":
    main()
