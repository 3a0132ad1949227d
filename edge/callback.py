"""Telling control that an upload finished: UploadCallbackService.UploadCompleted.

Delivery is at-least-once: a task per upload retries with capped exponential backoff
until control acknowledges, then the .info records ``notified``. If the process dies
first, the sweeper finds the completed, unnotified upload and delivers again; control's
handler is idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc

from edge import metrics
from edge.info import UploadInfo
from vora.grpcio import SERVICE_TOKEN_METADATA, insecure_channel
from vora.logs import get_logger
from vora.v1 import upload_pb2, upload_pb2_grpc

log = get_logger(__name__)


class CompletionNotifier:
    def __init__(self, target: str, service_token: str,
                 on_ack: Callable[[str], Awaitable[None]],
                 first_delay: float = 0.5, max_delay: float = 30.0) -> None:
        self.channel = insecure_channel(target)
        self.stub = upload_pb2_grpc.UploadCallbackServiceStub(
            self.channel)
        self.metadata = ((SERVICE_TOKEN_METADATA, service_token),)
        self.on_ack = on_ack
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def notify(self, info: UploadInfo) -> asyncio.Task[None] | None:
        """Start delivering unless a delivery for this upload is already running; returns
        the delivery (None when there is nothing to deliver)."""
        if info.concat == "partial" or info.notified:
            return None
        if info.id in self._tasks:
            return self._tasks[info.id]
        task = asyncio.create_task(self._deliver(info))
        self._tasks[info.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(info.id, None))
        return task

    async def notify_and_wait(self, info: UploadInfo, seconds: float) -> bool:
        """Deliver, waiting at most ``seconds`` for control's acknowledgement: the final
        PATCH answers after control knows the upload, so the app's CompleteUpload that
        follows it does not race the callback. True when acknowledged in time; otherwise
        delivery goes on in the background."""
        task = self.notify(info)
        if task is None or seconds <= 0:
            return task is None
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if not done:
            metrics.CALLBACK_WAIT_TIMEOUTS.inc()
            log.warning("control did not acknowledge in time; answering the client and "
                        "delivering in the background", upload_id=info.id, waited=seconds)
        return bool(done)

    async def _deliver(self, info: UploadInfo) -> None:
        request = upload_pb2.UploadCompletedRequest(
            upload_id=info.id, size_bytes=info.offset, sha256=info.sha256,
            metadata=info.metadata, subject=info.subject)
        delay = self.first_delay
        while True:
            try:
                await self.stub.UploadCompleted(request, metadata=self.metadata, timeout=10)
                break
            except grpc.aio.AioRpcError as exc:
                metrics.CALLBACKS.labels("retry").inc()
                log.warning("UploadCompleted not acknowledged; retrying", upload_id=info.id,
                            code=exc.code().name, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay)
        metrics.CALLBACKS.labels("acknowledged").inc()
        log.info("control acknowledged the upload", upload_id=info.id)
        try:
            await self.on_ack(info.id)
        except Exception:  # the sweeper will deliver again; control is idempotent
            log.exception("could not record the acknowledgement", upload_id=info.id)

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self.channel.close()
