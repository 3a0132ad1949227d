"""Objects of bucket-processed, streamed from S3 without buffering whole files.

``S3ObjectStore`` signs each GET with SigV4 (botocore) and fetches it over a pool of
keep-alive connections (aiohttp), handing every body chunk to the caller as it
arrives, with back-pressure: the next chunk is read only when the caller has flushed
the previous one to the client. Range and If-None-Match are passed to S3, whose
206/304/416 answers are relayed as they are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote

import aiohttp
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from vora.config import Settings

# Headers of S3's answer that describe the object and pass through to the client.
RELAYED_HEADERS = ("Content-Length", "Content-Range", "ETag", "Last-Modified", "Accept-Ranges")
PASSED_STATUSES = frozenset({200, 206, 304, 416})


class ObjectMissing(Exception):
    """The key does not exist in bucket-processed."""


class StorageUnavailable(Exception):
    """S3 failed or could not be reached; the message names the status or error."""


@dataclass
class ObjectHead:
    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Conditions:
    """The client's request headers S3 should evaluate."""

    range: str | None = None
    if_none_match: str | None = None

    def as_headers(self) -> dict[str, str]:
        headers = {}
        if self.range:
            headers["Range"] = self.range
        if self.if_none_match:
            headers["If-None-Match"] = self.if_none_match
        return headers


class ObjectSink(Protocol):
    def on_head(self, head: ObjectHead) -> None:
        """Called once, before any body chunk, with the status and relayed headers."""

    def on_chunk(self, chunk: bytes) -> Awaitable[None]:
        """Send one chunk; the store waits on the result before reading more."""


class ObjectStore(Protocol):
    async def stream(self, key: str, conditions: Conditions, sink: ObjectSink,
                     *, head_only: bool = False) -> None:
        """Stream ``key`` into ``sink``. Raises ObjectMissing or StorageUnavailable before
        ``sink.on_head`` is called; a failure after it propagates as StorageUnavailable."""


class S3ObjectStore:
    """bucket-processed over S3's HTTP API, with a keep-alive connection pool (aiohttp)."""

    def __init__(self, settings: Settings, *, connect_timeout: float = 2.0,
                 read_timeout: float = 10.0, chunk_bytes: int = 256 * 1024) -> None:
        self._endpoint = settings.s3_endpoint.rstrip("/")
        self._bucket = settings.bucket_processed
        self._auth = S3SigV4Auth(
            Credentials(settings.s3_access_key, settings.s3_secret_key), "s3", settings.s3_region
        )
        self._timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout,
                                              sock_read=read_timeout)
        self._chunk = chunk_bytes
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running event loop.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _signed(self, method: str, key: str,
                extra: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        url = f"{self._endpoint}/{self._bucket}"
        if key:
            url += f"/{quote(key)}"
        aws = AWSRequest(method=method, url=url, headers=dict(extra))
        aws.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        self._auth.add_auth(aws)
        return url, dict(aws.headers.items())

    async def check(self) -> None:
        """Health: bucket-processed answers a signed HEAD."""
        url, headers = self._signed("HEAD", "", {})
        async with self.session.head(url, headers=headers) as response:
            if response.status != 200:
                raise StorageUnavailable(f"HEAD {self._bucket} answered {response.status}")

    async def stream(self, key: str, conditions: Conditions, sink: ObjectSink,
                     *, head_only: bool = False) -> None:
        method = "HEAD" if head_only else "GET"
        url, headers = self._signed(method, key, conditions.as_headers())
        started = False
        try:
            async with self.session.request(method, url, headers=headers,
                                            allow_redirects=False) as response:
                if response.status == 404:
                    raise ObjectMissing(key)
                if response.status not in PASSED_STATUSES:
                    raise StorageUnavailable(f"S3 answered {response.status} for {key}")
                relayed = {name: response.headers[name] for name in RELAYED_HEADERS
                           if name in response.headers}
                sink.on_head(ObjectHead(response.status, relayed))
                started = True
                async for chunk in response.content.iter_chunked(self._chunk):
                    await sink.on_chunk(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            where = "mid-stream" if started else "before the first byte"
            raise StorageUnavailable(f"S3 failed {where}: {exc!r}") from exc
