"""PostgreSQL adapter: every read and write of control's tables, each write in one transaction.

The logic layer calls these functions; nothing else in control writes SQL. State changes
go through ``_transition``, which asks ``states.next_state`` first, so the state
machine is enforced in one place. Connection failures surface as ``errors.Unavailable``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from control.errors import Conflict, NotFound, PreconditionFailed, Unavailable
from control.states import Event, VideoState, next_state, target_of
from vora.config import Settings

Row = dict[str, Any]
Pool = psycopg_pool.AsyncConnectionPool

_UNREACHABLE = "the metadata database is unreachable; retry in a few seconds"

# Outbox kinds: what the relay starts for a row.
OUTBOX_TRANSCODE = "transcode"
OUTBOX_DELETE = "delete"

# Every query that builds SQL from Python strings uses only these constants and column
# names from code (never client input), hence the S608 waivers below.
_VIDEO_COLUMNS = (
    "id::text AS id, owner, title, description, state, failure_reason, progress_phase,"
    " progress_percent, renditions, duration_seconds, manifest_url, thumbnail_key,"
    " coalesce(upload_id, '') AS upload_id, created_at, updated_at, deleted_at"
)


@dataclass(frozen=True)
class VideoRecord:
    id: str
    owner: str
    title: str
    description: str
    state: VideoState
    failure_reason: str
    progress_phase: str
    progress_percent: float
    renditions: list[dict[str, Any]]
    duration_seconds: float
    manifest_key: str
    thumbnail_key: str
    upload_id: str
    created_at: datetime
    updated_at: datetime
    deleted: bool = False

    @classmethod
    def from_row(cls, row: Row) -> VideoRecord:
        return cls(
            id=row["id"], owner=row["owner"], title=row["title"],
            description=row["description"], state=VideoState(row["state"]),
            failure_reason=row["failure_reason"], progress_phase=row["progress_phase"],
            progress_percent=row["progress_percent"], renditions=list(row["renditions"]),
            duration_seconds=row["duration_seconds"], manifest_key=row["manifest_url"],
            thumbnail_key=row["thumbnail_key"], upload_id=row["upload_id"],
            created_at=row["created_at"], updated_at=row["updated_at"],
            deleted=row["deleted_at"] is not None,
        )


@dataclass(frozen=True)
class OutboxRow:
    id: int
    kind: str
    video_id: str
    payload: dict[str, Any]
    attempts: int
    # The video was deleted (or is gone) since the row was written: a transcode for it
    # is pointless and is skipped.
    video_deleted: bool = False


@dataclass(frozen=True)
class NodeRecord:
    node_id: str
    hostname: str
    version: str
    ffmpeg_version: str
    gpus: list[dict[str, Any]]
    cpu_slots_total: int
    cpu_slots_busy: int
    running_jobs: list[dict[str, Any]]
    draining: bool
    jobs_completed: int
    output_seconds: float
    registered_at: datetime
    last_seen_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


def create_pool(settings: Settings) -> Pool:
    """A pool of autocommit connections. A connection the server dropped is discarded
    when it fails (reads retry once on a fresh one, see VideoStore._read).

    Not opened yet: call ``await pool.open(wait=False)`` so start-up never blocks on
    the database (requests answer 503 until it is reachable).
    """
    return psycopg_pool.AsyncConnectionPool(
        settings.pg_conninfo,
        min_size=settings.pg_pool_min,
        max_size=settings.pg_pool_max,
        timeout=settings.pg_connect_timeout_seconds,
        # Autocommit: a read is one statement and one round trip; writes open an explicit
        # transaction (VideoStore._tx).
        kwargs={"autocommit": True},
        open=False,
        name="control",
    )


class VideoStore:
    """Control's tables behind typed methods. One method, one transaction."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """One transaction; a database outage becomes Unavailable (503 / UNAVAILABLE)."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                yield conn
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise Unavailable(_UNREACHABLE) from exc

    async def _read(self, query: str, params: Sequence[Any]) -> list[Row]:
        """One read-only statement outside a transaction. A pooled connection the server
        closed (e.g. after a restart) fails once; the read is retried on a fresh one."""
        for attempt in range(2):
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                async with self.pool.connection() as conn:
                    return await _all(conn, query, params)
            except psycopg.OperationalError as exc:
                stale = conn is not None and conn.closed
                if attempt or not stale:
                    raise Unavailable(_UNREACHABLE) from exc
            except psycopg_pool.PoolTimeout as exc:
                raise Unavailable(_UNREACHABLE) from exc
        raise AssertionError("unreachable")

    # --- videos -----------------------------------------------------------------------------

    async def create_video(self, video_id: str, owner: str, title: str,
                           description: str) -> VideoRecord:
        async with self._tx() as conn:
            row = await _one(conn, f"INSERT INTO videos (id, owner, title, description, state)"  # noqa: S608
                                   f" VALUES (%s, %s, %s, %s, 'CREATED')"
                                   f" RETURNING {_VIDEO_COLUMNS}",
                             (video_id, owner, title, description))
        assert row is not None
        return VideoRecord.from_row(row)

    async def get_video(self, video_id: str, owner: str | None) -> VideoRecord:
        """The visible video, scoped to ``owner`` unless None (service callers)."""
        query, params = _visible_video_query(video_id, owner, lock=False)
        rows = await self._read(query, params)
        if not rows:
            raise NotFound(f"video {video_id} not found")
        return VideoRecord.from_row(rows[0])

    async def list_videos(self, owner: str, limit: int,
                          after: tuple[datetime, str] | None) -> list[VideoRecord]:
        query = f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE owner = %s AND deleted_at IS NULL"  # noqa: S608
        params: list[Any] = [owner]
        if after is not None:
            query += " AND (created_at, id) < (%s, %s::uuid)"
            params += [after[0], after[1]]
        query += " ORDER BY created_at DESC, id DESC LIMIT %s"
        params.append(limit)
        return [VideoRecord.from_row(row) for row in await self._read(query, params)]

    async def complete_upload(self, video_id: str, owner: str, upload_id: str) -> VideoRecord:
        """Bind a finished upload to the video, move it to PROCESSING and queue the
        transcode, all in one transaction. Repeating the same call changes nothing."""
        async with self._tx() as conn:
            video = await _visible_video(conn, video_id, owner, lock=True)
            if video.upload_id == upload_id and video.state is not VideoState.CREATED:
                return video
            if video.upload_id and video.upload_id != upload_id:
                raise Conflict(f"video {video_id} is already bound to another upload")
            await _claim_upload(conn, upload_id, owner, video_id)
            video = await _transition(conn, video, Event.COMPLETE_UPLOAD,
                                      upload_id=upload_id, **_QUEUED)
            await _enqueue(conn, OUTBOX_TRANSCODE, video_id, {"upload_id": upload_id})
            return video

    async def retry_processing(self, video_id: str, owner: str) -> VideoRecord:
        """FAILED -> PROCESSING with a new transcode in the outbox; PROCESSING is a no-op."""
        async with self._tx() as conn:
            video = await _visible_video(conn, video_id, owner, lock=True)
            if video.state is VideoState.PROCESSING:
                return video
            video = await _transition(conn, video, Event.RETRY, failure_reason="", **_QUEUED)
            await _enqueue(conn, OUTBOX_TRANSCODE, video_id, {"upload_id": video.upload_id})
            return video

    async def delete_video(self, video_id: str, owner: str) -> None:
        """Hide the video now and queue the delete workflow; repeating it is harmless."""
        async with self._tx() as conn:
            row = await _one(conn, "SELECT deleted_at, coalesce(upload_id, '') AS upload_id"
                                   " FROM videos WHERE id = %s AND owner = %s FOR UPDATE",
                             (video_id, owner))
            if row is None:
                raise NotFound(f"video {video_id} not found")
            if row["deleted_at"] is not None:
                return
            await conn.execute("UPDATE videos SET deleted_at = now(), updated_at = now()"
                               " WHERE id = %s", (video_id,))
            await _enqueue(conn, OUTBOX_DELETE, video_id, {"upload_id": row["upload_id"]})

    # --- uploads ----------------------------------------------------------------------------

    async def record_upload(self, upload_id: str, subject: str, size_bytes: int, sha256: str,
                            metadata: Mapping[str, str]) -> None:
        """Store a finished upload. The edge retries, so the same report is accepted again;
        a different report for the same upload id is refused."""
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO uploads (upload_id, subject, size_bytes, sha256, metadata)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (upload_id) DO NOTHING",
                (upload_id, subject, size_bytes, sha256, Jsonb(dict(metadata))))
            row = await _one(conn, "SELECT subject, size_bytes, sha256 FROM uploads"
                                   " WHERE upload_id = %s", (upload_id,))
        assert row is not None
        if (row["subject"], row["size_bytes"], row["sha256"]) != (subject, size_bytes, sha256):
            raise Conflict(f"upload {upload_id} was already reported with a different "
                           "subject, size or checksum")

    # --- bookkeeping (the workflow's activities) ------------------------------------------------

    async def record_progress(self, video_id: str, phase: str, percent: float) -> bool:
        """Progress of a PROCESSING video; percent never goes back within one run."""
        async with self._tx() as conn:
            result = await conn.execute(
                "UPDATE videos SET progress_phase = %s,"
                " progress_percent = GREATEST(progress_percent, %s), updated_at = now()"
                " WHERE id = %s AND state = 'PROCESSING' AND deleted_at IS NULL",
                (phase, percent, video_id))
            return result.rowcount == 1

    async def mark_ready(self, video_id: str, fields: Mapping[str, Any]) -> bool:
        """PROCESSING -> READY with the results; False when there is nothing to do
        (already READY, or deleted)."""
        async with self._tx() as conn:
            video = await _video_for_worker(conn, video_id)
            if video is None or video.deleted or video.state is target_of(Event.FINISH):
                return False
            await _transition(conn, video, Event.FINISH, **fields)
            return True

    async def mark_failed(self, video_id: str, reason: str) -> bool:
        async with self._tx() as conn:
            video = await _video_for_worker(conn, video_id)
            if video is None or video.deleted or video.state is target_of(Event.FAIL):
                return False
            await _transition(conn, video, Event.FAIL, failure_reason=reason)
            return True

    async def purge_video(self, video_id: str) -> bool:
        """Remove a deleted video's row for good (its upload stays claimed)."""
        async with self._tx() as conn:
            result = await conn.execute(
                "DELETE FROM videos WHERE id = %s AND deleted_at IS NOT NULL", (video_id,))
            return result.rowcount == 1

    # --- outbox --------------------------------------------------------------------------------

    @asynccontextmanager
    async def claim_outbox(self, limit: int) -> AsyncIterator[
            tuple[psycopg.AsyncConnection[Any], list[OutboxRow]]]:
        """Lock up to ``limit`` unsent rows (skipping rows other relays hold) for the
        length of the block; mark them with ``mark_sent``/``mark_attempt`` inside it."""
        async with self._tx() as conn:
            rows = await _all(
                conn, "SELECT o.id, o.kind, o.video_id::text AS video_id, o.payload,"
                      " o.attempts, (v.id IS NULL OR v.deleted_at IS NOT NULL) AS deleted"
                      " FROM outbox o LEFT JOIN videos v ON v.id = o.video_id"
                      " WHERE o.sent_at IS NULL ORDER BY o.id"
                      " LIMIT %s FOR UPDATE OF o SKIP LOCKED", (limit,))
            yield conn, [OutboxRow(r["id"], r["kind"], r["video_id"], dict(r["payload"]),
                                   r["attempts"], r["deleted"]) for r in rows]

    @staticmethod
    async def mark_sent(conn: psycopg.AsyncConnection[Any], outbox_id: int,
                        note: str = "") -> None:
        await conn.execute("UPDATE outbox SET sent_at = now(), attempts = attempts + 1,"
                           " last_error = %s WHERE id = %s", (note, outbox_id))

    async def prune_outbox(self, older_than_seconds: float) -> int:
        """Forget rows sent long ago (they are kept a while for inspection)."""
        async with self._tx() as conn:
            result = await conn.execute(
                "DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => %s)",
                (older_than_seconds,))
            return result.rowcount

    @staticmethod
    async def mark_attempt(conn: psycopg.AsyncConnection[Any], outbox_id: int,
                           error: str) -> None:
        await conn.execute("UPDATE outbox SET attempts = attempts + 1, last_error = %s"
                           " WHERE id = %s", (error[:1000], outbox_id))

    async def outbox_depth(self) -> int:
        rows = await self._read("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL", ())
        return int(rows[0]["n"])

    async def ping(self) -> None:
        await self._read("SELECT 1", ())

    # --- farm nodes ---------------------------------------------------------------------------

    async def upsert_node(self, node: Mapping[str, Any]) -> None:
        columns = list(node)
        values = [Jsonb(v) if isinstance(v, list) else v for v in node.values()]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "node_id")
        async with self._tx() as conn:
            await conn.execute(
                f"INSERT INTO nodes ({', '.join(columns)}, registered_at, last_seen_at)"  # noqa: S608
                f" VALUES ({', '.join(['%s'] * len(columns))}, now(), now())"
                f" ON CONFLICT (node_id) DO UPDATE SET {updates}, registered_at = now(),"
                " last_seen_at = now()", values)

    async def heartbeat_node(self, node_id: str, fields: Mapping[str, Any]) -> bool:
        assignments = ", ".join(f"{c} = %s" for c in fields)
        values = [Jsonb(v) if isinstance(v, list) else v for v in fields.values()]
        async with self._tx() as conn:
            result = await conn.execute(
                f"UPDATE nodes SET {assignments}, last_seen_at = now()"  # noqa: S608
                " WHERE node_id = %s", [*values, node_id])
            return result.rowcount == 1

    async def forget_nodes(self, silent_for_seconds: float) -> list[str]:
        """Delete the nodes whose last heartbeat is older than that; their ids."""
        async with self._tx() as conn:
            rows = await _all(
                conn, "DELETE FROM nodes WHERE last_seen_at < now() - make_interval(secs => %s)"
                " RETURNING node_id", (silent_for_seconds,))
            return [str(row["node_id"]) for row in rows]

    async def list_nodes(self) -> list[NodeRecord]:
        rows = await self._read("SELECT * FROM nodes ORDER BY node_id", ())
        return [NodeRecord(**row) for row in rows]


# --- helpers (inside a transaction) ------------------------------------------------------------

_QUEUED: dict[str, Any] = {"progress_phase": "queued", "progress_percent": 0.0}
_UPDATABLE = frozenset({
    "upload_id", "failure_reason", "progress_phase", "progress_percent", "renditions",
    "duration_seconds", "manifest_url", "thumbnail_key",
})


async def _one(conn: psycopg.AsyncConnection[Any], query: str,
               params: Sequence[Any]) -> Row | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def _all(conn: psycopg.AsyncConnection[Any], query: str,
               params: Sequence[Any]) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


def _visible_video_query(video_id: str, owner: str | None, *,
                         lock: bool) -> tuple[str, list[Any]]:
    """Another owner's video, or a deleted one, is NOT_FOUND: never reveal it exists."""
    query = f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE id = %s AND deleted_at IS NULL"  # noqa: S608
    params: list[Any] = [video_id]
    if owner is not None:
        query += " AND owner = %s"
        params.append(owner)
    return query + (" FOR UPDATE" if lock else ""), params


async def _visible_video(conn: psycopg.AsyncConnection[Any], video_id: str,
                         owner: str | None, *, lock: bool) -> VideoRecord:
    row = await _one(conn, *_visible_video_query(video_id, owner, lock=lock))
    if row is None:
        raise NotFound(f"video {video_id} not found")
    return VideoRecord.from_row(row)


async def _video_for_worker(conn: psycopg.AsyncConnection[Any],
                            video_id: str) -> VideoRecord | None:
    row = await _one(conn, f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE id = %s FOR UPDATE",  # noqa: S608
                     (video_id,))
    return VideoRecord.from_row(row) if row else None


async def _transition(conn: psycopg.AsyncConnection[Any], video: VideoRecord,
                      event: Event, **fields: Any) -> VideoRecord:
    """The only UPDATE of videos.state. The row must be locked by the caller."""
    target = next_state(video.state, event)
    unknown = set(fields) - _UPDATABLE
    assert not unknown, f"not updatable on a transition: {unknown}"
    values = [Jsonb(v) if k == "renditions" else v for k, v in fields.items()]
    assignments = "".join(f", {column} = %s" for column in fields)
    row = await _one(conn, f"UPDATE videos SET state = %s, updated_at = now(){assignments}"  # noqa: S608
                           f" WHERE id = %s AND state = %s RETURNING {_VIDEO_COLUMNS}",
                     [target.value, *values, video.id, video.state.value])
    assert row is not None, "the row is locked, so its state cannot have moved"
    return VideoRecord.from_row(row)


async def _claim_upload(conn: psycopg.AsyncConnection[Any], upload_id: str, owner: str,
                        video_id: str) -> None:
    row = await _one(conn, "SELECT subject, video_id::text AS video_id FROM uploads"
                           " WHERE upload_id = %s FOR UPDATE", (upload_id,))
    # Someone else's upload reads exactly like an unfinished one: never reveal it exists.
    if row is None or row["subject"] != owner:
        raise PreconditionFailed(
            f"upload {upload_id} is not complete: finish the TUS upload with this video's "
            "upload token, then call CompleteUpload again")
    if row["video_id"] is not None and row["video_id"] != video_id:
        raise Conflict(f"upload {upload_id} already belongs to another video; "
                       "upload the file again for this video")
    await conn.execute("UPDATE uploads SET video_id = %s WHERE upload_id = %s",
                       (video_id, upload_id))


async def _enqueue(conn: psycopg.AsyncConnection[Any], kind: str, video_id: str,
                   payload: dict[str, Any]) -> None:
    await conn.execute("INSERT INTO outbox (kind, video_id, payload) VALUES (%s, %s, %s)",
                       (kind, video_id, Jsonb(payload)))
