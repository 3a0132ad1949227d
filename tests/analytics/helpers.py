"""Test helpers: events as players send them, and a keep-alive HTTP poster."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Ingester:
    process: subprocess.Popen[bytes]
    url: str

    def health(self) -> dict[str, Any]:
        return get_json(f"{self.url}/healthz")

    def wait_until(self, predicate: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.health()
            if predicate(status):
                return status
            time.sleep(0.1)
        raise AssertionError(f"{what} not reached within {timeout}s; last status {status}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (test loopback)
        body: dict[str, Any] = json.loads(response.read())
        return body


def play_event(video_id: str, event_time: float | str, **fields: Any) -> dict[str, Any]:
    """A play event of its own session, so views count it exactly once."""
    return {"event_id": str(uuid.uuid4()), "video_id": video_id, "user_id": "viewer-1",
            "session_id": str(uuid.uuid4()), "event_type": "play", "event_time": event_time,
            "position": 0.0, "rendition": "720p", **fields}


class Poster:
    """Posts JSON bodies over one keep-alive connection, timing each acknowledgement."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                                     timeout=30)
        self.latencies: list[float] = []

    def post(self, events: Any) -> tuple[int, dict[str, Any]]:
        body = json.dumps(events).encode()
        started = time.perf_counter()
        self.connection.request("POST", "/v1/events", body,
                                {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        payload = json.loads(response.read())
        self.latencies.append(time.perf_counter() - started)
        return response.status, payload

    def close(self) -> None:
        self.connection.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
