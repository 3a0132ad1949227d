"""The edge's fixtures (a real edge process, a recording control, real S3) reused as they
are, and a Temporal client of the stack for the farm fault tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from tests.edge.conftest import control, edge_factory, s3, token
from vora.config import Settings

__all__ = ["client", "control", "edge_factory", "s3", "token"]


@pytest.fixture
async def client(stack: Settings) -> Client:
    return await Client.connect(stack.temporal_address, namespace=stack.temporal_namespace)


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak tests of this folder run only when asked for (``-m soak``), as the marker says."""
    if "soak" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="soak test (long outages, reset storms, many concurrent "
                                   "uploads: minutes); run with -m soak")
    for item in items:
        if "soak" in item.keywords and HERE in Path(str(item.path)).parents:
            item.add_marker(skip)
