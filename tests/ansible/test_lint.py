"""ansible-lint (production profile) and ansible-playbook --syntax-check are clean."""

from __future__ import annotations

import subprocess

import pytest

from tests.ansible.conftest import ANSIBLE_DIR, BIN, VAULT_PASSWORD_FILE, ansible_env

PLAYBOOKS = sorted(p.name for p in ANSIBLE_DIR.glob("*.yml"))


def test_every_group_has_a_playbook() -> None:
    assert {"site.yml", "build.yml", "infrastructure.yml", "control.yml", "edge.yml",
            "farm.yml", "gateway.yml", "analytics.yml"} <= set(PLAYBOOKS)


def test_ansible_lint_production_profile() -> None:
    env = ansible_env() | {"ANSIBLE_VAULT_PASSWORD_FILE": str(VAULT_PASSWORD_FILE)}
    result = subprocess.run([str(BIN / "ansible-lint"), "--profile", "production", "--offline",
                             "--nocolor", "."], cwd=ANSIBLE_DIR, env=env, capture_output=True,
                            text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_syntax_check(name: str) -> None:
    result = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check",
                             "--vault-password-file", str(VAULT_PASSWORD_FILE), name],
                            cwd=ANSIBLE_DIR, env=ansible_env(), capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
