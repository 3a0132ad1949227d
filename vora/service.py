"""Start-up shared by every Vora process: settings, logging, a clear exit on bad config."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from vora.config import Settings, SettingsError, load_settings
from vora.logs import configure_logging, get_logger


def load(service: str) -> Settings:
    """The settings, or exit 2 with the reason when they are invalid."""
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"vora-{service}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run(service: str, body: Callable[[Settings], Coroutine[Any, Any, None]]) -> None:
    """Load settings (exit 2 with the reason when invalid), configure logs, run ``body``."""
    settings = load(service)
    configure_logging(settings, service)
    log = get_logger(service)
    log.info("starting", environment=settings.environment)
    asyncio.run(body(settings))
    log.info("exited cleanly")
    _exit_without_finalizing()


def _exit_without_finalizing() -> None:
    """Leave at once after a clean shutdown.

    Native threads of the Temporal SDK core and gRPC may still call into Python while the
    interpreter finalizes, which aborts the process (SIGABRT, "PyGILState_Release")
    instead of exiting 0. Everything worth keeping is flushed by now, so skip finalization.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
