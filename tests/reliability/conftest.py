"""The edge's fixtures (a real edge process, a recording control, real S3) reused as they are."""

from tests.edge.conftest import control, edge_factory, s3, token

__all__ = ["control", "edge_factory", "s3", "token"]
