"""Metadata Service: videos on PostgreSQL behind gRPC and REST; starts Temporal workflows."""
