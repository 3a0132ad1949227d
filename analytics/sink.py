"""The ClickHouse side of the writer, behind a small protocol so the logic stays plain."""

from __future__ import annotations

from typing import Protocol

from clickhouse_driver import Client

from analytics.events import COLUMNS, EventColumns
from vora.config import Settings

INSERT_SQL = f"INSERT INTO PlaybackEvents ({', '.join(COLUMNS)}) VALUES"


class EventSink(Protocol):
    """Blocking: called from one worker thread at a time, never from the IOLoop."""

    def insert(self, events: EventColumns) -> None:
        """Store every event or raise; a retry of the same events is harmless (event_id)."""

    def ping(self) -> None:
        """Return when the store answers, else raise with the reason."""

    def close(self) -> None: ...


class ClickHouseSink:
    """One connection to ClickHouse (clickhouse-driver)."""

    def __init__(self, settings: Settings) -> None:
        # Short timeouts: a slow ClickHouse must send batches to the spool, not pile them up.
        timeout = settings.analytics_insert_timeout_seconds
        self._client = Client(
            host=settings.clickhouse_host, port=settings.clickhouse_port,
            user=settings.clickhouse_user, password=settings.clickhouse_password,
            database=settings.clickhouse_database,
            connect_timeout=min(3.0, timeout), send_receive_timeout=timeout,
            sync_request_timeout=timeout,
        )

    def insert(self, events: EventColumns) -> None:
        # Columnar: the driver writes each column as it is, with no transposing of rows.
        self._client.execute(INSERT_SQL, events.columns, types_check=False, columnar=True)

    def ping(self) -> None:
        self._client.execute("SELECT 1")

    def close(self) -> None:
        self._client.disconnect()
