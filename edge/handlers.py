"""Tornado transport for TUS: translate requests to UploadStore calls and back.

One handler serves the collection (``POST`` creates) and each upload (``HEAD``,
``PATCH``, ``DELETE``). Request bodies stream (``@stream_request_body``): PATCH bytes go
to an UploadWriter as they arrive, with back-pressure, because ``data_received`` waits
for each part upload before Tornado reads more from the socket.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from typing import Any

import tornado.web

from edge import metrics
from edge.info import UploadInfo
from edge.lease import Lease
from edge.objects import StorageUnavailable
from edge.protocol import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    OFFSET_CONTENT_TYPE,
    TUS_VERSION,
    TusError,
    encode_metadata,
    parse_bearer,
    parse_checksum,
    parse_concat,
    parse_defer_length,
    parse_metadata,
    parse_non_negative,
)
from edge.store import UploadStore
from edge.writer import UploadWriter
from vora.logs import get_logger
from vora.tokens import Keyring, TokenError, UploadClaims, verify_upload

log = get_logger(__name__)

OVERRIDABLE = {"POST", "HEAD", "PATCH", "DELETE", "OPTIONS", "GET"}
ALLOW_HEADERS = (
    "Authorization, Origin, X-Requested-With, X-Request-ID, X-HTTP-Method-Override, "
    "Content-Type, Upload-Length, Upload-Offset, Tus-Resumable, Upload-Metadata, "
    "Upload-Defer-Length, Upload-Concat, Upload-Checksum")
EXPOSE_HEADERS = (
    "Upload-Offset, Location, Upload-Length, Tus-Version, Tus-Resumable, Tus-Max-Size, "
    "Tus-Extension, Tus-Checksum-Algorithm, Upload-Metadata, Upload-Defer-Length, "
    "Upload-Concat, Upload-Expires")


@dataclass
class EdgeContext:
    """What every request needs, built once at start-up (see edge.main.make_app)."""

    store: UploadStore
    keyring: Keyring
    public_url: str
    max_size: int
    max_active: int
    idle_seconds: float
    active: int = 0


@tornado.web.stream_request_body
class UploadHandler(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "OPTIONS")

    def initialize(self, context: EdgeContext) -> None:
        self.ctx = context
        self.store = context.store
        self.claims: UploadClaims | None = None
        self.writer: UploadWriter | None = None
        self.lease: Lease | None = None
        self.failure: TusError | None = None
        self.created: UploadInfo | None = None
        self.write_lock = asyncio.Lock()
        self.counted = False
        self.started = time.monotonic()
        self.idle_timer: asyncio.TimerHandle | None = None

    # --- common ---------------------------------------------------------------------------
    def set_default_headers(self) -> None:
        self.set_header("Tus-Resumable", TUS_VERSION)
        origin = self.request.headers.get("Origin")
        # Runs before initialize(), so the allowed origins come from the app's settings.
        allowed = self.application.settings.get("cors_origins", ())
        if origin and ("*" in allowed or origin in allowed):
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Expose-Headers", EXPOSE_HEADERS)
            self.set_header("Vary", "Origin")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(self._reason or "error")

    def fail(self, error: TusError) -> None:
        """Answer with the refusal's status and its reason in the body."""
        if error.status >= 500:
            metrics.UPLOADS_FAILED.labels(str(error.status)).inc()
        log.info("request refused", method=self.request.method, status=error.status,
                 reason=error.reason, upload_id=self.path_kwargs.get("upload_id"))
        self.clear_header("Upload-Offset")
        if error.status == 412:
            self.set_header("Tus-Version", TUS_VERSION)
        if error.status == 503:
            self.set_header("Retry-After", "5")
        self.set_status(error.status, reason=_status_phrase(error.status))
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(error.reason + "\n")

    async def prepare(self) -> None:
        override = self.request.headers.get("X-HTTP-Method-Override")
        if override and override.upper() in OVERRIDABLE:
            self.request.method = override.upper()
        if self.request.method == "OPTIONS":
            return
        try:
            await self._prepare()
        except TusError as error:
            self.fail(error)
        except StorageUnavailable as exc:
            self.fail(TusError(503, f"{exc}; retry later, committed bytes are kept"))

    async def _prepare(self) -> None:
        if self.request.headers.get("Tus-Resumable") != TUS_VERSION:
            raise TusError(412, f"Tus-Resumable must be {TUS_VERSION}")
        try:
            token = parse_bearer(self.request.headers.get("Authorization"))
            self.claims = verify_upload(self.ctx.keyring, token)
        except TokenError as error:
            raise TusError(401, f"upload token refused: {error.reason}") from None
        has_body = self.request.headers.get("Content-Type") == OFFSET_CONTENT_TYPE
        if self.request.method == "PATCH":
            await self._prepare_patch()
        elif self.request.method == "POST":
            await self._prepare_post(has_body)

    def upload_id(self) -> str:
        return str(self.path_kwargs.get("upload_id") or "")

    def subject(self) -> str:
        assert self.claims is not None
        return self.claims.subject

    def _admit(self) -> None:
        """Count this writer against the replica's concurrent upload limit."""
        if self.ctx.active >= self.ctx.max_active:
            raise TusError(503, "this edge is at its concurrent upload limit; retry shortly")
        self.ctx.active += 1
        self.counted = True
        metrics.UPLOADS_ACTIVE.inc()

    async def _open_writer(self, info: UploadInfo, etag: str) -> None:
        checksum = parse_checksum(self.request.headers.get("Upload-Checksum"))
        self._admit()
        self.lease = self.store.lease(info.id)
        await self.lease.acquire()
        # Re-read under the lease: the state we act on is the one no one else can change.
        info, etag = await self.store.load(info.id, self.subject())
        self._check_offset(info)
        self._limit_body(info)
        self.writer = self.store.writer(info, etag, checksum)
        await self.writer.begin()
        self._arm_idle_timer()

    def _limit_body(self, info: UploadInfo) -> None:
        """413 for a declared body past the upload's end; Tornado enforces it for chunked ones."""
        remaining = (info.length - info.offset) if info.length is not None else (
            self.ctx.max_size - info.offset)
        declared = parse_non_negative("Content-Length", self.request.headers.get("Content-Length"))
        if declared is not None and declared > remaining:
            raise TusError(413, f"the body of {declared} bytes runs past the upload's length; "
                                f"{remaining} bytes remain")
        self.request.connection.set_max_body_size(max(remaining, 0))  # type: ignore[union-attr]

    def _check_offset(self, info: UploadInfo) -> None:
        if info.concat == "final":
            raise TusError(403, "a final upload is assembled from partials; PATCH is refused")
        offset = parse_non_negative("Upload-Offset", self.request.headers.get("Upload-Offset"))
        if self.request.method == "PATCH" and offset is None:
            raise TusError(400, "Upload-Offset is required")
        if offset is not None and offset != info.offset:
            raise TusError(409, f"Upload-Offset {offset} does not match the stored offset "
                                f"{info.offset}; HEAD and resume from there")

    # --- idle body watchdog -----------------------------------------------------------------
    def _arm_idle_timer(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        loop = asyncio.get_running_loop()
        self.idle_timer = loop.call_later(self.ctx.idle_seconds, self._idle_expired)

    def _idle_expired(self) -> None:
        log.info("request body idle; closing", upload_id=self.upload_id() or None,
                 idle_seconds=self.ctx.idle_seconds)
        if self.request.connection is not None:
            self.request.connection.close()  # type: ignore[attr-defined]

    # --- body ------------------------------------------------------------------------------
    async def data_received(self, chunk: bytes) -> None:
        if self.writer is None or self.failure is not None or self._finished:
            return
        self._arm_idle_timer()
        async with self.write_lock:
            try:
                await self.writer.write(chunk)
                if self.lease is not None:
                    await self.lease.renew_if_due()
            except TusError as error:
                self.failure = error
            except StorageUnavailable as exc:
                self.failure = TusError(503, f"{exc}; retry later, committed bytes are kept")

    async def _commit(self) -> UploadInfo:
        """Commit what the writer holds (once), counting the bytes and completions."""
        assert self.writer is not None
        writer, self.writer = self.writer, None
        before = writer.info.offset
        info = await self.store.commit(writer)
        metrics.BYTES_RECEIVED.inc(info.offset - before)
        if info.completed:
            metrics.UPLOADS_COMPLETED.inc()
        return info

    def on_connection_close(self) -> None:
        """A cut connection keeps the bytes that arrived (tusd does the same), unless
        the request carried a checksum, which cannot match a truncated body."""
        if self.writer is not None and self.failure is None and self.writer.checksum is None:
            _spawn(self._commit_after_cut())
        else:
            _spawn(self._release_when_idle())

    async def _release_when_idle(self) -> None:
        async with self.write_lock:  # never under a commit or a part upload in progress
            await self._release()

    async def _commit_after_cut(self) -> None:
        try:
            async with self.write_lock:
                if self.writer is not None:
                    info = await self._commit()
                    log.info("connection cut; kept received bytes", upload_id=info.id,
                             offset=info.offset)
        except (TusError, StorageUnavailable) as exc:
            log.warning("connection cut; received bytes not kept", reason=str(exc))
        finally:
            await self._release()

    async def _release(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:  # a request that ends without committing
            await writer.discard()
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.counted:
            self.counted = False
            self.ctx.active -= 1
            metrics.UPLOADS_ACTIVE.dec()
        lease, self.lease = self.lease, None
        if lease is not None:
            try:
                await lease.release()
            except StorageUnavailable:
                # S3 failed mid-request: keep trying, or the client could not resume
                # until the lease expired.
                log.warning("lease not released; retrying in the background", key=lease.key)
                _spawn(lease.release_eventually())

    def on_finish(self) -> None:
        if self.request.method == "PATCH":
            metrics.PATCH_SECONDS.observe(time.monotonic() - self.started)
        _spawn(self._release())

    # --- methods -------------------------------------------------------------------------------
    def options(self, upload_id: str | None = None) -> None:
        self.set_header("Tus-Version", TUS_VERSION)
        self.set_header("Tus-Extension", ",".join(EXTENSIONS))
        self.set_header("Tus-Max-Size", str(self.ctx.max_size))
        self.set_header("Tus-Checksum-Algorithm", ",".join(CHECKSUM_ALGORITHMS))
        if self.request.headers.get("Origin"):
            self.set_header("Access-Control-Allow-Methods", "POST, HEAD, PATCH, DELETE, OPTIONS")
            self.set_header("Access-Control-Allow-Headers", ALLOW_HEADERS)
            self.set_header("Access-Control-Max-Age", "86400")
        self.set_status(204)
        self.finish()

    async def _run(self, action: Any) -> None:
        """Run a method body, turning refusals and S3 outages into their responses."""
        try:
            if self.failure is not None:
                raise self.failure
            await action()
        except TusError as error:
            self.fail(error)
        except StorageUnavailable as exc:
            self.fail(TusError(503, f"{exc}; retry later, committed bytes are kept"))
        finally:
            await self._release()

    async def head(self, upload_id: str) -> None:
        await self._run(self._head)

    async def get(self, upload_id: str | None = None) -> None:
        self.fail(TusError(405, "uploads are written with TUS; read them through control"))

    async def _head(self) -> None:
        info, _ = await self.store.load(self.upload_id(), self.subject())
        self.set_header("Cache-Control", "no-store")
        self.set_header("Upload-Offset", str(info.offset))
        if info.length is None:
            self.set_header("Upload-Defer-Length", "1")
        else:
            self.set_header("Upload-Length", str(info.length))
        if info.metadata:
            self.set_header("Upload-Metadata", encode_metadata(info.metadata))
        self._concat_header(info)
        self._expires_header(info)
        self.set_status(200)
        self.finish()

    def _concat_header(self, info: UploadInfo) -> None:
        if info.concat == "partial":
            self.set_header("Upload-Concat", "partial")
        elif info.concat == "final":
            urls = " ".join(self._location(part) for part in info.concat_parts)
            self.set_header("Upload-Concat", f"final;{urls}")

    def _expires_header(self, info: UploadInfo) -> None:
        if info.expires_at is not None and not (info.completed and info.concat != "partial"):
            self.set_header("Upload-Expires", email.utils.formatdate(info.expires_at, usegmt=True))

    def _location(self, upload_id: str) -> str:
        return f"{self.ctx.public_url.rstrip('/')}/{upload_id}"

    async def _prepare_patch(self) -> None:
        if self.request.headers.get("Content-Type") != OFFSET_CONTENT_TYPE:
            raise TusError(415, f"PATCH needs Content-Type: {OFFSET_CONTENT_TYPE}")
        info, etag = await self.store.load(self.upload_id(), self.subject())
        length = parse_non_negative("Upload-Length", self.request.headers.get("Upload-Length"))
        self._check_offset(info)
        if info.completed:
            raise TusError(400, "this upload is already complete")
        if length is not None:
            assert self.claims is not None
            info, etag = await self.store.set_length(info, etag, length, self.claims.max_size)
        await self._open_writer(info, etag)

    async def patch(self, upload_id: str) -> None:
        await self._run(self._patch)

    async def _patch(self) -> None:
        if self.writer is None:
            raise TusError(500, "no writer for this PATCH")
        async with self.write_lock:
            info = await self._commit()
        await self._release()  # before answering, so the client's next PATCH finds no lease
        self.set_header("Upload-Offset", str(info.offset))
        self._expires_header(info)
        self.set_status(204)
        self.finish()

    async def _prepare_post(self, has_body: bool) -> None:
        if self.upload_id():
            raise TusError(405, "POST creates uploads at the collection URL")
        assert self.claims is not None
        headers = self.request.headers
        concat = parse_concat(headers.get("Upload-Concat"))
        metadata = parse_metadata(headers.get("Upload-Metadata"))
        if concat is not None and not concat.partial:
            return  # a final upload is assembled in post(), from its partials
        length = parse_non_negative("Upload-Length", headers.get("Upload-Length"))
        deferred = parse_defer_length(headers.get("Upload-Defer-Length"))
        if (length is None) == (not deferred):
            raise TusError(400, "send exactly one of Upload-Length or Upload-Defer-Length: 1")
        if length is not None:
            self.store.check_length(length, self.claims.max_size)
        info, etag = await self.store.create(
            self.subject(), length, metadata, "partial" if concat else "")
        metrics.UPLOADS_STARTED.inc()
        self.created = info
        if has_body and not info.completed:
            await self._open_writer(info, etag)
        elif info.completed:
            metrics.UPLOADS_COMPLETED.inc()

    async def post(self, upload_id: str | None = None) -> None:
        await self._run(self._post)

    async def _post(self) -> None:
        info = self.created
        if info is None:
            info = await self._create_final()
        elif self.writer is not None:
            async with self.write_lock:
                info = await self._commit()
            await self._release()
        self.set_header("Location", self._location(info.id))
        self.set_header("Upload-Offset", str(info.offset))
        self._expires_header(info)
        self.set_status(201)
        self.finish()

    async def _create_final(self) -> UploadInfo:
        assert self.claims is not None
        concat = parse_concat(self.request.headers.get("Upload-Concat"))
        assert concat is not None and not concat.partial
        metadata = parse_metadata(self.request.headers.get("Upload-Metadata"))
        info = await self.store.concatenate(
            self.subject(), concat.parts, metadata, self.claims.max_size)
        metrics.UPLOADS_STARTED.inc()
        metrics.UPLOADS_COMPLETED.inc()
        return info

    async def delete(self, upload_id: str) -> None:
        await self._run(self._delete)

    async def _delete(self) -> None:
        info, _ = await self.store.load(self.upload_id(), self.subject())
        self.lease = self.store.lease(info.id)
        await self.lease.acquire()
        await self.store.terminate(info)
        self.lease = None  # terminate removed the lease object with the rest
        self.set_status(204)
        self.finish()


_background: set[asyncio.Future[None]] = set()


def _spawn(work: Any) -> None:
    """Run clean-up after the response, holding a reference until it is done."""
    task = asyncio.ensure_future(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


def _status_phrase(status: int) -> str | None:
    return {460: "Checksum Mismatch"}.get(status)
