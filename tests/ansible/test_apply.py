"""The playbooks applied for real (see conftest.py for the target), then checked the way
an operator would: files, user, virtualenv, units, VCL, health, and a second run that
changes nothing."""

from __future__ import annotations

import json
import os
import pwd
import re
import stat
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ansible.conftest import NODE, Site, playbook, recap
from tests.ansible.units import RunningUnit, parse_unit
from vora import devstack
from vora.config import load_settings

# The first test pays for the first ansible-playbook run (pip installs the dependencies).
pytestmark = pytest.mark.timeout(600)

SERVICES = {  # unit name -> module it runs, setting of its health port
    "control": ("control.main", "VORA_CONTROL_HTTP_PORT"),
    "control-worker": ("control.worker", "VORA_CONTROL_WORKER_METRICS_PORT"),
    "edge": ("edge.main", "VORA_EDGE_PORT"),
    "farm": ("farm.main", "VORA_FARM_METRICS_PORT"),
    "gateway": ("gateway.main", "VORA_GATEWAY_PORT"),
    "analytics": ("analytics.main", "VORA_ANALYTICS_PORT"),
}


@pytest.fixture(scope="module")
def first_run(site: Site) -> str:
    return playbook(site, "site.yml")


@pytest.fixture(scope="module")
def running(site: Site, first_run: str) -> Iterator[dict[str, RunningUnit]]:
    """Every installed vora-*.service started from its unit file, healthy."""
    units_dir = site.path("/etc/systemd/system")
    started: dict[str, RunningUnit] = {}
    try:
        for path in sorted(units_dir.glob("vora-*.service")):
            unit = parse_unit(path)
            started[path.stem] = RunningUnit(unit, site.prefix / "test" / f"{path.stem}.log")
        for name, (_, port) in SERVICES.items():
            _wait_healthy(started[f"vora-{name}"], f"http://127.0.0.1:{site.settings[port]}/healthz")
        varnish = f"http://127.0.0.1:{site.settings['VORA_VARNISH_PORT']}/varnish/healthz"
        _wait_healthy(started["vora-varnish"], varnish)
        yield started
    finally:
        codes = {name: unit.stop() for name, unit in started.items()}
    # SIGTERM (the unit's KillSignal=) is a clean stop for every service: exit status 0.
    assert codes == dict.fromkeys(started, 0), {
        n: started[n].output() for n, c in codes.items() if c != 0}


@pytest.fixture(scope="module")
def second_run(site: Site, running: dict[str, RunningUnit]) -> str:
    # With the services up, the roles' own verify steps (GET /healthz) run too.
    return playbook(site, "site.yml", "-e", "vora_verify_health=true")


def _wait_healthy(unit: RunningUnit, url: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if unit.process.poll() is not None:
            pytest.fail(f"{unit.unit.path.name} exited with {unit.process.returncode}:\n"
                        f"{unit.output()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (http://127.0.0.1)
                if response.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    pytest.fail(f"{url} not healthy after {timeout}s ({last}):\n{unit.output()}")


def test_first_run_installs(first_run: str) -> None:
    counters = recap(first_run)[NODE]
    assert counters["failed"] == 0 and counters["unreachable"] == 0
    assert counters["changed"] > 0


def test_service_user_and_directories(site: Site, first_run: str) -> None:
    user = pwd.getpwnam(site.user)
    assert user.pw_shell == "/usr/sbin/nologin"
    assert Path(user.pw_dir) == site.path("/var/lib/vora")
    state = site.path("/var/lib/vora").stat()
    assert (state.st_uid, stat.S_IMODE(state.st_mode)) == (user.pw_uid, 0o750)
    code = site.path("/opt/vora/venv").stat()
    assert code.st_uid == 0, "the service user must not own its code"


def test_virtualenv_runs_the_built_wheel(site: Site, first_run: str) -> None:
    venv = site.path("/opt/vora/venv")
    assert (site.path("/opt/vora/wheels") / "vora-0.1.0-py3-none-any.whl").is_file()
    result = subprocess.run(
        [str(venv / "bin/python"), "-c", "import vora, farm; print(vora.__file__, farm.__file__)"],
        cwd="/", capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    assert all(path.startswith(str(venv)) for path in result.stdout.split())
    for script in ("vora-control", "vora-edge", "vora-farm", "vora-gateway", "vora-analytics"):
        assert os.access(venv / "bin" / script, os.X_OK), script


def test_environment_files_hold_vault_secrets(site: Site, first_run: str) -> None:
    group = pwd.getpwnam(site.user).pw_gid
    for name in (*SERVICES, ):
        path = site.path(f"/etc/vora/{name}.env")
        info = path.stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, group, 0o640)
        settings = load_settings(path)  # exactly what the service reads
        assert [k.kid for k in settings.token_keys] == ["ex1", "ex2"]  # from the vault
        assert settings.environment == "production"
        assert settings.home == site.path("/var/lib/vora")


def test_units_start_the_installed_services(site: Site, first_run: str) -> None:
    venv_python = str(site.path("/opt/vora/venv/bin/python"))
    for name, (module, _) in SERVICES.items():
        unit = parse_unit(site.path(f"/etc/systemd/system/vora-{name}.service"))
        assert unit.exec_start == [venv_python, "-m", module]
        assert unit.user == site.user and unit.group == site.user
        assert unit.environment_files == [site.path(f"/etc/vora/{name}.env")]
        text = unit.path.read_text()
        assert "StandardOutput=journal" in text and f"SyslogIdentifier=vora-{name}" in text
    farm = parse_unit(site.path("/etc/systemd/system/vora-farm.service"))
    # The drain contract: SIGTERM to the worker only, and time for running transcodes.
    assert (farm.kill_signal, farm.kill_mode) == ("SIGTERM", "mixed")
    assert "TimeoutStopSec=3h 15min" in farm.path.read_text()
    # Analytics runs one ingest process per core under a supervisor that passes SIGTERM on.
    analytics = parse_unit(site.path("/etc/systemd/system/vora-analytics.service"))
    assert (analytics.kill_signal, analytics.kill_mode) == ("SIGTERM", "mixed")
    processes = load_settings(site.path("/etc/vora/analytics.env")).analytics_processes
    assert processes == os.cpu_count()


def test_units_pass_systemd_analyze(site: Site, first_run: str) -> None:
    units = sorted(str(p) for p in site.path("/etc/systemd/system").glob("vora-*.service"))
    assert len(units) == len(SERVICES) + 1
    result = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_vcl_is_what_the_local_stack_renders(site: Site, first_run: str, tmp_path: Path) -> None:
    gateway = load_settings(site.path("/etc/vora/gateway.env"))
    template = site.prefix / "test/sources/varnish/vora.vcl.j2"
    expected = devstack._render(template, tmp_path / "vora.vcl",
                                **devstack.varnish_context(gateway)).read_text()
    rendered = site.path("/etc/varnish/vora/vora.vcl").read_text()
    assert rendered == expected
    assert f'.port = "{site.settings["VORA_GATEWAY_PORT"]}"' in rendered


def test_cpu_only_node_gets_the_cpu_pipeline(site: Site, first_run: str) -> None:
    assert "pipeline cpu, 0 GPU(s)" in first_run
    # The report includes `vora-farm --check` as the installed worker prints it.
    assert re.search(r"^\s*-\s+'?ffmpeg: ", first_run, re.MULTILINE), first_run[-3000:]
    farm = load_settings(site.path("/etc/vora/farm.env"))
    assert farm.farm_pipeline == "cpu"


def test_installed_services_answer_health(site: Site, running: dict[str, RunningUnit]) -> None:
    for name, (_, port) in SERVICES.items():
        url = f"http://127.0.0.1:{site.settings[port]}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "ok", body
        assert running[f"vora-{name}"].process.poll() is None


def test_second_run_changes_nothing(second_run: str) -> None:
    counters = recap(second_run)[NODE]
    assert counters["failed"] == 0
    assert counters["changed"] == 0, second_run[-6000:]
    assert "Verify /healthz of vora-control" in second_run
    assert "Verify that Varnish answers /varnish/healthz" in second_run
