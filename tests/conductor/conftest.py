"""Fixtures of the Conductor tests: the real Temporal dev server of the local stack."""

from __future__ import annotations

import pytest
from temporalio.client import Client

from vora import devstack
from vora.config import Settings


@pytest.fixture(scope="session")
def infra(settings: Settings) -> Settings:
    """PostgreSQL, S3, Temporal and ClickHouse of the local stack, healthy. The workflow
    tests need only these; Vora's own services are other engineers' and may be down."""
    devstack.up(settings, devstack.INFRA)
    return settings


@pytest.fixture
async def client(infra: Settings) -> Client:
    return await Client.connect(infra.temporal_address, namespace=infra.temporal_namespace)


@pytest.fixture
def fast_settings(infra: Settings) -> Settings:
    """Short heartbeat timeout, so a cancel reaches a stand-in activity within ~2 s."""
    return infra.model_copy(update={"farm_heartbeat_timeout_seconds": 2})

