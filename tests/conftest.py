"""Shared fixtures: the settings every test uses and the real local stack.

The stack is the one `make test` (or `vora dev up`) starts; when pytest runs alone,
the `stack` fixture brings it up the same way, and it is left running afterwards.
"""

from __future__ import annotations

import pytest

from vora import devstack
from vora.config import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """The whole local stack, healthy. Fails (never skips) when it cannot start."""
    devstack.up(settings)
    return settings
