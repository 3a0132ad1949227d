"""Start-up shared by every Vora process: settings, logging, a clear exit on bad config."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from vora.config import Settings, SettingsError, load_settings
from vora.logs import configure_logging, get_logger


def run(service: str, body: Callable[[Settings], Coroutine[Any, Any, None]]) -> None:
    """Load settings (exit 2 with the reason when invalid), configure logs, run ``body``."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"vora-{service}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings, service)
    get_logger(service).info("starting", environment=settings.environment)
    asyncio.run(body(settings))
