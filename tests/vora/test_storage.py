from __future__ import annotations

import pytest

from vora import storage

VIDEO = "3f2b8c1e-7a44-4d0b-9a3e-0c5d2f1b6a77"
UPLOAD = "0123456789abcdef0123456789abcdef"


def test_layout_matches_the_seed() -> None:
    assert storage.raw_original_key(UPLOAD) == f"{UPLOAD}/original.mp4"
    assert storage.master_key(VIDEO) == f"{VIDEO}/master.m3u8"
    assert storage.playlist_key(VIDEO, "720p") == f"{VIDEO}/720p/playlist.m3u8"
    assert storage.segment_key(VIDEO, "1080p", 7) == f"{VIDEO}/1080p/seg_007.ts"
    assert storage.segment_key(VIDEO, "360p", 1234) == f"{VIDEO}/360p/seg_1234.ts"
    assert storage.thumbnail_key(VIDEO) == f"{VIDEO}/thumbnail.jpg"


def test_generated_ids_validate() -> None:
    assert storage.validate_upload_id(storage.new_upload_id())
    assert storage.validate_video_id(storage.new_video_id())


@pytest.mark.parametrize("bad", ["", "../" + UPLOAD, UPLOAD.upper(), UPLOAD + "/x", UPLOAD[:-1],
                                 "0123456789abcdef0123456789abcde%", VIDEO])
def test_crafted_upload_ids_are_refused(bad: str) -> None:
    with pytest.raises(storage.InvalidIdError):
        storage.raw_original_key(bad)


@pytest.mark.parametrize("bad", ["", "..", VIDEO.upper(), VIDEO + "/..", UPLOAD,
                                 "3f2b8c1e-7a44-1d0b-9a3e-0c5d2f1b6a77"])
def test_crafted_video_ids_are_refused(bad: str) -> None:
    with pytest.raises(storage.InvalidIdError):
        storage.master_key(bad)


@pytest.mark.parametrize("bad", ["../720p", "720", "720p/..", "x720p", "99999p"])
def test_crafted_renditions_are_refused(bad: str) -> None:
    with pytest.raises(storage.InvalidIdError):
        storage.playlist_key(VIDEO, bad)


@pytest.mark.parametrize("index", [-1, storage.MAX_SEGMENTS])
def test_segment_index_bounds(index: int) -> None:
    with pytest.raises(storage.InvalidIdError):
        storage.segment_key(VIDEO, "720p", index)
