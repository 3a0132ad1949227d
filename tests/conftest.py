"""Shared fixtures: the settings every test uses and the real local stack.

The stack is the one `make test` (or `vora dev up`) starts; when pytest runs alone,
the `stack` fixture brings it up the same way, and it is left running afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vora import devstack
from vora.config import Settings, load_settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak tests run only when asked for (``-m soak``), as the marker says."""
    if "soak" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="soak test (outages, reset storms, heartbeat timeouts with "
                                   "the real farm: tens of seconds to minutes); run with -m soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """The whole local stack, healthy. Fails (never skips) when it cannot start."""
    devstack.up(settings)
    return settings


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Headless Debian chromium driven by Playwright (no browser download).

    Function-scoped on purpose: Playwright's sync API marks an event loop as running in
    this thread while it is active, which would break every later async test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
        )
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep screenshots and other artifacts (test-artifacts/, not committed)."""
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
