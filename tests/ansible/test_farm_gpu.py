"""The farm role's GPU branch. This machine has no NVIDIA GPU, so nvidia-smi is a
stand-in script printing what the real one prints for a given card (the only double
here: FFmpeg is the real Debian build, with h264_nvenc)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.ansible.conftest import ANSIBLE_DIR, BIN, ansible_env

PLAYBOOK = Path(__file__).resolve().parent / "farm_gpu.yml"


def discover(tmp_path: Path, smi_output: str | None, gpu: str) -> subprocess.CompletedProcess[str]:
    smi = tmp_path / "nvidia-smi"
    if smi_output is not None:
        smi.write_text(f"#!/bin/sh\ncat <<'EOF'\n{smi_output}\nEOF\n")
        smi.chmod(0o755)
    command = [str(BIN / "ansible-playbook"), "-i", "localhost,", str(PLAYBOOK),
               "-e", json.dumps({"vora_farm_nvidia_smi": str(smi), "vora_farm_gpu": gpu,
                                 "vora_test_choice_file": str(tmp_path / "choice.json"),
                                 "ansible_python_interpreter": "/usr/bin/python3"})]
    return subprocess.run(command, cwd=ANSIBLE_DIR, env=ansible_env(), capture_output=True,
                          text=True, timeout=180, check=False)


def choice(tmp_path: Path, result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, result.stdout + result.stderr
    parsed: dict[str, object] = json.loads((tmp_path / "choice.json").read_text())
    return parsed


@pytest.mark.parametrize(("card", "pipeline", "cap"), [
    # Data-centre cards without NVENC decode and scale on the GPU, encode with libx264.
    ("NVIDIA H200", "nvdec", 0),
    # Consumer cards: NVENC, capped by the driver at 8 sessions.
    ("NVIDIA GeForce RTX 4090", "nvenc", 8),
    # Professional cards with NVENC and no cap: 0 leaves it to the worker (NVML).
    ("NVIDIA L4", "nvenc", 0),
])
def test_gpu_node_pipeline(tmp_path: Path, card: str, pipeline: str, cap: int) -> None:
    two_cards = f"0, {card}, 570.86.15, 143771\n1, {card}, 570.86.15, 143771"
    found = choice(tmp_path, discover(tmp_path, two_cards, "true"))
    assert (found["pipeline"], found["cap"]) == (pipeline, cap)
    assert found["gpus"] == [
        {"index": "0", "name": card, "driver": "570.86.15", "memory_mib": "143771"},
        {"index": "1", "name": card, "driver": "570.86.15", "memory_mib": "143771"}]


def test_gpu_node_without_driver_fails_with_the_reason(tmp_path: Path) -> None:
    result = discover(tmp_path, None, "true")
    assert result.returncode != 0
    said = " ".join(result.stdout.split())  # the YAML callback wraps long messages
    assert "nvidia-smi found no working NVIDIA driver" in said, result.stdout
    assert "move the node to the farm_cpu group" in said


def test_cpu_only_node_does_not_fail(tmp_path: Path) -> None:
    assert choice(tmp_path, discover(tmp_path, None, "auto"))["pipeline"] == "cpu"
