"""The edge's fixtures (a real edge process, a recording control, real S3) reused as they
are, and a Temporal client of the stack for the farm fault tests."""

from __future__ import annotations

import pytest
from temporalio.client import Client

from tests.edge.conftest import control, edge_factory, s3, token
from vora.config import Settings

__all__ = ["client", "control", "edge_factory", "s3", "token"]


@pytest.fixture
async def client(stack: Settings) -> Client:
    return await Client.connect(stack.temporal_address, namespace=stack.temporal_namespace)

