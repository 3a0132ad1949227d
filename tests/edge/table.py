"""Table rows for the conformance suite, in the shape of tusd's handler tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import requests

ANY = object()  # the header must be present, whatever its value
ABSENT = None


@dataclass(frozen=True)
class Row:
    name: str
    headers: dict[str, str | None] = field(default_factory=dict)  # None removes a default
    status: int = 200
    out: Mapping[str, object] = field(default_factory=dict)
    body: bytes = b""
    reason: str = ""  # a fragment the response body must contain

    def __str__(self) -> str:
        return self.name


def merged(defaults: dict[str, str], row: Row) -> dict[str, str]:
    headers = dict(defaults)
    for name, value in row.headers.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers


def check(response: requests.Response, row: Row) -> None:
    assert response.status_code == row.status, (row.name, response.status_code, response.text)
    assert response.headers.get("Tus-Resumable") == "1.0.0", "Tus-Resumable on every response"
    for name, expected in row.out.items():
        actual = response.headers.get(name)
        if expected is ANY:
            assert actual, f"{row.name}: {name} missing"
        elif expected is ABSENT:
            assert actual is None, f"{row.name}: {name} should be absent, got {actual!r}"
        else:
            assert actual == expected, f"{row.name}: {name} is {actual!r}, want {expected!r}"
    if row.reason:
        assert row.reason in response.text, (row.name, response.text)
