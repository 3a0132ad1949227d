"""Versioned schema migrations for PostgreSQL and ClickHouse, applied idempotently.

Files are ``vora/migrations/{postgres,clickhouse}/NNNN_name.sql``. Each applied file is
recorded with its checksum; a recorded migration whose file has since changed is an
error (write a new migration instead of editing an applied one).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from clickhouse_driver import Client as ClickHouseClient

from vora.config import Settings
from vora.logs import get_logger

log = get_logger(__name__)
_NAME_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_PG_LOCK_ID = 0x766F7261  # "vora": one migrator at a time


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(kind: str) -> list[Migration]:
    folder = resources.files("vora.migrations").joinpath(kind)
    found = []
    for entry in folder.iterdir():
        match = _NAME_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two {kind} migrations share a version: {versions}")
    return found


def _check_recorded(kind: str, migration: Migration, checksum: str) -> None:
    if checksum != migration.checksum:
        raise MigrationError(
            f"{kind} migration {migration.name} changed after it was applied; "
            "add a new migration instead of editing an applied one"
        )


def migrate_postgres(settings: Settings) -> list[str]:
    """Apply pending PostgreSQL migrations, each in its own transaction. Returns their names."""
    applied: list[str] = []
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_PG_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
            recorded: dict[int, str] = dict(rows)
            for migration in load_migrations("postgres"):
                if migration.version in recorded:
                    _check_recorded("postgres", migration, recorded[migration.version])
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                log.info("migration applied", database="postgres", migration=migration.name)
                applied.append(migration.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_PG_LOCK_ID,))
    return applied


def clickhouse_client(settings: Settings, database: str | None = None) -> ClickHouseClient:
    return ClickHouseClient(
        host=settings.clickhouse_host,
        port=settings.clickhouse_port,
        user=settings.clickhouse_user,
        password=settings.clickhouse_password,
        database=database or settings.clickhouse_database,
        connect_timeout=3,
        send_receive_timeout=30,
    )


def _statements(sql: str) -> list[str]:
    without_comments = "\n".join(
        line for line in sql.splitlines() if not line.lstrip().startswith("--")
    )
    return [stmt.strip() for stmt in without_comments.split(";") if stmt.strip()]


def migrate_clickhouse(settings: Settings) -> list[str]:
    """Create the database and apply pending ClickHouse migrations. Returns their names."""
    admin = clickhouse_client(settings, database="default")
    try:
        admin.execute(f"CREATE DATABASE IF NOT EXISTS {settings.clickhouse_database}")
    finally:
        admin.disconnect()
    client = clickhouse_client(settings)
    try:
        return _apply_clickhouse(client)
    finally:
        client.disconnect()


def _apply_clickhouse(client: ClickHouseClient) -> list[str]:
    client.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String,"
        " checksum String, applied_at DateTime DEFAULT now())"
        " ENGINE = MergeTree() ORDER BY version"
    )
    rows = client.execute("SELECT version, checksum FROM schema_migrations")
    recorded: dict[int, str] = dict(rows)
    applied: list[str] = []
    for migration in load_migrations("clickhouse"):
        if migration.version in recorded:
            _check_recorded("clickhouse", migration, recorded[migration.version])
            continue
        for statement in _statements(migration.sql):
            client.execute(statement)
        client.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES",
            [(migration.version, migration.name, migration.checksum)],
        )
        log.info("migration applied", database="clickhouse", migration=migration.name)
        applied.append(migration.name)
    return applied
