"""The committed vora/v1 code is exactly what scripts/gen-proto makes from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_regenerating_gives_no_diff(tmp_path: Path) -> None:
    subprocess.run([str(ROOT / "scripts" / "gen-proto"), str(tmp_path)], check=True,
                   env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    generated = sorted(p.name for p in (tmp_path / "vora" / "v1").iterdir())
    committed = sorted(p.name for p in (ROOT / "vora" / "v1").glob("*_pb2*"))
    assert generated == committed
    stale = [name for name in generated
             if (tmp_path / "vora" / "v1" / name).read_bytes()
             != (ROOT / "vora" / "v1" / name).read_bytes()]
    assert stale == [], f"run `make proto`: {stale} differ from proto/"


def test_buf_lint_is_clean() -> None:
    buf = Path(sys.executable).parent / "buf"
    result = subprocess.run([str(buf), "lint", "proto"], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_services_are_complete() -> None:
    from vora.v1 import farm_pb2, upload_pb2, video_pb2

    def methods(module: object, service: str) -> set[str]:
        descriptor = module.DESCRIPTOR.services_by_name[service]  # type: ignore[attr-defined]
        return {m.name for m in descriptor.methods}

    assert methods(video_pb2, "VideoService") == {
        "CreateVideo", "GetVideo", "ListVideos", "CompleteUpload", "GetPlaybackUrl",
        "DeleteVideo", "RetryProcessing"}
    assert methods(upload_pb2, "UploadCallbackService") == {"UploadCompleted"}
    assert methods(farm_pb2, "FarmService") == {"RegisterNode", "Heartbeat", "ListNodes",
                                                "GetCapacity"}
    states = video_pb2.Video.State.keys()
    assert states == ["STATE_UNSPECIFIED", "STATE_CREATED", "STATE_PROCESSING", "STATE_READY",
                      "STATE_FAILED"]
