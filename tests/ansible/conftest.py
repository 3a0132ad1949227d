"""Runs the real ansible-playbook against this machine, installing under a prefix.

Why localhost under a prefix: a debootstrap chroot takes minutes to build on a 2-core
machine and network namespaces add nothing the services need. Installing under a
throw-away prefix with a dedicated service user exercises every task that matters
(user, virtualenv from the built wheel, vault-decrypted environment files, units, VCL)
in seconds. The infrastructure groups stay empty: the installed services point at the
test stack's PostgreSQL, S3, Temporal and ClickHouse, exactly as a site with existing
clusters would (the infrastructure roles are linted and syntax-checked, not applied).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vora.config import Settings

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"
VAULT_PASSWORD_FILE = Path(__file__).resolve().parent / "vault-password.txt"
NODE = "vora-node"
# The parts of the checkout a wheel is built from, frozen for the test's two runs while
# other people keep editing the tree.
_SOURCES = ("pyproject.toml", "README.md", "vora", "control", "edge", "farm", "gateway",
            "analytics", "varnish")


@dataclass
class Site:
    prefix: Path
    inventory: Path
    user: str
    settings: dict[str, str]

    def path(self, absolute: str) -> Path:
        return self.prefix / absolute.lstrip("/")


def ansible_env() -> dict[str, str]:
    """The environment for ansible-playbook: no VORA_* of the test's own stack leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VORA_")}
    env.update(ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", PATH=f"{BIN}:{env.get('PATH', '')}")
    return env


def playbook(site: Site, name: str, *extra: str, timeout: float = 540) -> str:
    command = [str(BIN / "ansible-playbook"), "-i", str(site.inventory),
               "--vault-password-file", str(VAULT_PASSWORD_FILE), name, *extra]
    result = subprocess.run(command, cwd=ANSIBLE_DIR, env=ansible_env(), capture_output=True,
                            text=True, timeout=timeout, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"ansible-playbook {name} failed:\n{output[-6000:]}"
    return output


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host, e.g. {"vora-node": {"ok": 40, "changed": 0, ...}}."""
    hosts = {}
    for match in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.MULTILINE):
        counters = dict(pair.split("=") for pair in match.group(2).split())
        hosts[match.group(1)] = {k: int(v) for k, v in counters.items()}
    return hosts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _snapshot(target: Path) -> Path:
    target.mkdir(parents=True)
    for name in _SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(source, target / name)
    return target


def _settings(stack: Settings) -> tuple[dict[str, object], dict[str, str]]:
    s = stack
    ports = {name: free_port() for name in (
        "control_grpc", "control_http", "worker", "edge", "farm", "gateway", "analytics",
        "varnish", "varnish_admin")}
    plain: dict[str, object] = {
        "VORA_ENVIRONMENT": "production",
        "VORA_PG_HOST": s.pg_host, "VORA_PG_PORT": s.pg_port, "VORA_PG_USER": s.pg_user,
        "VORA_PG_DATABASE": s.pg_database,
        "VORA_S3_ENDPOINT": s.s3_endpoint, "VORA_S3_ACCESS_KEY": s.s3_access_key,
        "VORA_BUCKET_RAW": s.bucket_raw, "VORA_BUCKET_PROCESSED": s.bucket_processed,
        "VORA_TEMPORAL_ADDRESS": s.temporal_address,
        "VORA_TEMPORAL_NAMESPACE": s.temporal_namespace,
        "VORA_CLICKHOUSE_HOST": s.clickhouse_host, "VORA_CLICKHOUSE_PORT": s.clickhouse_port,
        "VORA_CLICKHOUSE_HTTP_PORT": s.clickhouse_http_port,
        "VORA_CLICKHOUSE_USER": s.clickhouse_user,
        "VORA_CLICKHOUSE_DATABASE": s.clickhouse_database,
        "VORA_CONTROL_HOST": "127.0.0.1", "VORA_CONTROL_GRPC_PORT": ports["control_grpc"],
        "VORA_CONTROL_HTTP_PORT": ports["control_http"],
        "VORA_CONTROL_WORKER_METRICS_PORT": ports["worker"],
        "VORA_EDGE_HOST": "127.0.0.1", "VORA_EDGE_PORT": ports["edge"],
        "VORA_EDGE_PUBLIC_URL": f"http://127.0.0.1:{ports['edge']}/files/",
        "VORA_FARM_HOST": "127.0.0.1", "VORA_FARM_METRICS_PORT": ports["farm"],
        "VORA_GATEWAY_HOST": "127.0.0.1", "VORA_GATEWAY_PORT": ports["gateway"],
        "VORA_VARNISH_HOST": "127.0.0.1", "VORA_VARNISH_PORT": ports["varnish"],
        "VORA_VARNISH_ADMIN_PORT": ports["varnish_admin"],
        "VORA_VARNISH_STORAGE": "malloc,32m",
        "VORA_VARNISH_PURGE_ACL": ["127.0.0.1", "::1"],
        "VORA_PLAYBACK_PUBLIC_URL": f"http://127.0.0.1:{ports['varnish']}",
        "VORA_ANALYTICS_HOST": "127.0.0.1", "VORA_ANALYTICS_PORT": ports["analytics"],
        "VORA_ANALYTICS_PUBLIC_URL": f"http://127.0.0.1:{ports['analytics']}/v1/events",
    }
    secret = {
        # The stack's own credentials; the signing secrets come from the example vault.
        "VORA_PG_PASSWORD": s.pg_password, "VORA_S3_SECRET_KEY": s.s3_secret_key,
        "VORA_CLICKHOUSE_PASSWORD": s.clickhouse_password,
        "VORA_TOKEN_KEYS": "{{ vault_vora_token_keys }}",
        "VORA_JWT_SECRET": "{{ vault_vora_jwt_secret }}",
        "VORA_SERVICE_TOKEN": "{{ vault_vora_service_token }}",
    }
    return plain, secret


def _write_inventory(root: Path, prefix: Path, user: str, sources: Path,
                     stack: Settings) -> Path:
    plain, secret = _settings(stack)
    node = {NODE: None}
    hosts = {"all": {"children": {
        "control": {"hosts": node}, "edge": {"hosts": node},
        "farm": {"children": {"farm_cpu": {"hosts": node}}},
        "gateway": {"hosts": node}, "analytics": {"hosts": node},
        # Existing clusters (the test stack): no infrastructure host to install.
        "postgresql": {}, "temporal": {}, "object_storage": {}, "clickhouse": {},
    }}}
    group_vars = root / "group_vars" / "all"
    group_vars.mkdir(parents=True)
    # JSON is YAML; Ansible reads it as such.
    (root / "hosts.yml").write_text(json.dumps(hosts, indent=1))
    shutil.copy(ANSIBLE_DIR / "inventories/example/group_vars/all/vault.yml", group_vars)
    variables = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "/usr/bin/python3",
        "vora_prefix": str(prefix), "vora_user": user, "vora_group": user,
        "vora_build_source": str(sources), "vora_wheel_dir": str(prefix / "dist"),
        "vora_varnish_vcl_template": str(sources / "varnish" / "vora.vcl.j2"),
        # No systemd as PID 1 here: install and verify units, start nothing (see units.py).
        "vora_systemd_manage": False,
        "vora_verify_health": False,
        "vora_farm_gpu": "auto",
        "vora_settings": plain, "vora_secret_settings": secret,
    }
    (group_vars / "vars.yml").write_text(json.dumps(variables, indent=1))
    return root / "hosts.yml"


@pytest.fixture(scope="session")
def site(stack: Settings) -> Iterator[Site]:
    """A throw-away prefix, service user and inventory; removed afterwards."""
    prefix = Path(tempfile.mkdtemp(prefix="vora-ansible-"))
    # The skeleton of a root file system: the roles create only their own directories.
    for skeleton in ("", "etc", "opt", "var", "var/lib"):
        (prefix / skeleton).mkdir(exist_ok=True)
        (prefix / skeleton).chmod(0o755)
    user = f"vora-t{os.getpid()}"
    work = prefix / "test"
    try:
        sources = _snapshot(work / "sources")
        inventory = _write_inventory(work / "inventory", prefix, user, sources, stack)
        values = json.loads((work / "inventory/group_vars/all/vars.yml").read_text())
        yield Site(prefix=prefix, inventory=inventory, user=user,
                   settings={k: str(v) for k, v in values["vora_settings"].items()})
    finally:
        subprocess.run(["userdel", user], capture_output=True, check=False)
        subprocess.run(["groupdel", user], capture_output=True, check=False)
        shutil.rmtree(prefix, ignore_errors=True)
