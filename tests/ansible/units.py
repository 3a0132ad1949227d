"""Starts installed systemd units without systemd, the way systemd would start them.

This container has no systemd as PID 1, so the applied tests run each installed unit's
ExecStart= as its User=/Group=, in its WorkingDirectory=, with exactly the variables of
its EnvironmentFile= and Environment= lines (nothing inherited from the test). What this
does not reproduce: the sandboxing directives (ProtectSystem=, PrivateTmp=, ...),
Restart=, the journal, and ordering; `systemd-analyze verify` checks those lines.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

_BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}


@dataclass
class Unit:
    """The [Service] lines of a unit file that decide how its process starts."""

    path: Path
    exec_start: list[str]
    user: str | None = None
    group: str | None = None
    working_directory: Path | None = None
    environment_files: list[Path] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    kill_signal: str = "SIGTERM"
    kill_mode: str = "control-group"

    def process_environment(self) -> dict[str, str]:
        env = dict(_BASE_ENV)
        for path in self.environment_files:
            env.update({k: v for k, v in dotenv_values(path).items() if v is not None})
        env.update(self.environment)
        return env


def parse_unit(path: Path) -> Unit:
    """Read the lines this runner honours; a setting it cannot honour raises ValueError."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "Service":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    if len(values.get("ExecStart", [])) != 1:
        raise ValueError(f"{path}: expected exactly one ExecStart=")
    unit = Unit(path=path, exec_start=shlex.split(values["ExecStart"][0]))
    unit.user = values.get("User", [None])[-1]
    unit.group = values.get("Group", [None])[-1]
    if "WorkingDirectory" in values:
        unit.working_directory = Path(values["WorkingDirectory"][-1])
    unit.environment_files = [Path(v) for v in values.get("EnvironmentFile", [])]
    for item in values.get("Environment", []):
        for pair in shlex.split(item):
            key, _, value = pair.partition("=")
            unit.environment[key] = value
    unit.kill_signal = values.get("KillSignal", ["SIGTERM"])[-1]
    unit.kill_mode = values.get("KillMode", ["control-group"])[-1]
    return unit


class RunningUnit:
    """One started unit; stop() sends its KillSignal= like `systemctl stop` does."""

    def __init__(self, unit: Unit, log: Path) -> None:
        self.unit = unit
        self.log = log
        user = pwd.getpwnam(unit.user) if unit.user else None
        group = grp.getgrnam(unit.group).gr_gid if unit.group else None
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                unit.exec_start, cwd=unit.working_directory, env=unit.process_environment(),
                user=user.pw_uid if user else None, group=group,
                extra_groups=[] if user else None, stdin=subprocess.DEVNULL,
                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(getattr(signal, self.unit.kill_signal))
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]
