"""Property tests of the TUS header grammar (edge.protocol)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.protocol import (
    MAX_METADATA_KEY,
    TusError,
    encode_metadata,
    parse_bearer,
    parse_checksum,
    parse_concat,
    parse_metadata,
    parse_non_negative,
)

keys = st.from_regex(rf"[A-Za-z0-9_.-]{{1,{MAX_METADATA_KEY}}}", fullmatch=True)
clean_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn"), blacklist_characters=" "),
    max_size=100).filter(lambda text: text == text.strip())  # sanitising strips the ends


@given(st.dictionaries(keys, clean_text, max_size=10))
def test_metadata_round_trips(metadata: dict[str, str]) -> None:
    assert parse_metadata(encode_metadata(metadata)) == metadata


@given(st.text(max_size=300))
def test_metadata_never_raises_anything_but_400(header: str) -> None:
    try:
        parsed = parse_metadata(header)
    except TusError as error:
        assert error.status == 400
        return
    for value in parsed.values():
        assert not any(ch in value for ch in "\r\n\x00")


@given(st.binary(max_size=200))
def test_metadata_values_lose_control_characters(raw: bytes) -> None:
    value = parse_metadata(f"k {base64.b64encode(raw).decode()}")["k"]
    assert all(ord(ch) >= 0x20 and ch != "\x7f" for ch in value)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_offsets_and_lengths_round_trip(number: int) -> None:
    assert parse_non_negative("Upload-Offset", str(number)) == number


@given(st.text(max_size=30).filter(lambda s: not s.isascii() or not s.isdigit()))
def test_non_numbers_are_400(text: str) -> None:
    with pytest.raises(TusError) as caught:
        parse_non_negative("Upload-Length", text)
    assert caught.value.status == 400


@pytest.mark.parametrize("text", ["-1", "+1", " 1", "1 ", "0x10", str(2**63), "1.0", ""])
def test_edge_numbers_are_400(text: str) -> None:
    with pytest.raises(TusError):
        parse_non_negative("Upload-Offset", text)


@given(st.sampled_from(["sha1", "md5", "sha256"]), st.binary(max_size=100))
def test_checksums_parse(algorithm: str, body: bytes) -> None:
    digest = hashlib.new(algorithm, body).digest()
    parsed = parse_checksum(f"{algorithm} {base64.b64encode(digest).decode()}")
    assert parsed is not None
    assert (parsed.algorithm, parsed.digest) == (algorithm, digest)


@given(st.text(max_size=60))
def test_checksum_garbage_is_400(header: str) -> None:
    try:
        parse_checksum(header)
    except TusError as error:
        assert error.status == 400


@given(st.lists(st.uuids().map(lambda u: u.hex), min_size=1, max_size=5))
def test_concat_final_lists_ids(ids: list[str]) -> None:
    header = "final;" + " ".join(f"https://edge.example/files/{i}" for i in ids)
    parsed = parse_concat(header)
    assert parsed is not None
    assert parsed.parts == tuple(ids)
    assert not parsed.partial


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Token abc", "bearer"])
def test_bearer_refusals_are_401(header: str) -> None:
    with pytest.raises(TusError) as caught:
        parse_bearer(header)
    assert caught.value.status == 401
