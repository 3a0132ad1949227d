"""A loopback TCP proxy that resets connections: the network faults a mobile uploader sees.

It runs its own asyncio loop in a thread so synchronous clients (tuspy, requests) can go
through it. Each connection is reset (RST, not FIN, via SO_LINGER 0) once ``reset_after``
bytes went upstream on it, until ``max_resets`` connections were reset; after that it
forwards faithfully."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading


class ResettingProxy:
    def __init__(self, upstream_port: int, reset_after: int, max_resets: int) -> None:
        self.upstream_port = upstream_port
        self.reset_after = reset_after
        self.max_resets = max_resets
        self.resets = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> ResettingProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(10)
        return self

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_w)
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            _reset(client_w)
            return
        self._writers.add(up_w)
        downstream = asyncio.ensure_future(_pipe(up_r, client_w))
        sent = 0
        try:
            while chunk := await client_r.read(65536):
                if self.resets < self.max_resets and sent + len(chunk) >= self.reset_after:
                    up_w.write(chunk[: self.reset_after - sent])
                    await up_w.drain()
                    self.resets += 1
                    _reset(client_w)
                    _reset(up_w)
                    return
                sent += len(chunk)
                up_w.write(chunk)
                await up_w.drain()
            up_w.write_eof()
            await downstream
        except (ConnectionError, OSError):
            pass
        finally:
            downstream.cancel()
            for writer in (client_w, up_w):
                writer.close()

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            # Idle keep-alive connections would otherwise outlive the loop unclosed.
            for writer in self._writers:
                writer.transport.abort()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.sleep(0.05)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort with an RST: linger on, timeout zero."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
