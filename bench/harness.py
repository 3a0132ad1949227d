"""What every benchmark shares: alternate Vora and its reference for several rounds in
one process, summarise with median and spread, and record a ratio per figure.

A benchmark module ``bench/<name>.py`` defines ``run(...) -> Report``, callable with no
arguments (its defaults are the real sizes), and can be run alone with
``python -m bench.<name> --help`` (flags for smaller sizes); ``make bench`` runs them all
and regenerates docs/performance.md from bench/results/*.json. A benchmark that cannot
run here (no NVIDIA GPU) raises :class:`Skipped` with the reason.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


class Skipped(Exception):
    """The benchmark cannot run on this machine; the message says why."""


@dataclass
class Figure:
    """One measured quantity for Vora and for its reference, and their ratio."""

    name: str
    unit: str
    vora: float
    reference: float
    reference_name: str
    higher_is_better: bool = True
    goal: str = ""  # e.g. ">= 0.95x"
    vora_spread: float = 0.0  # (max - min) / median over the rounds
    reference_spread: float = 0.0

    @property
    def ratio(self) -> float:
        """Vora relative to the reference, >1 meaning Vora is better."""
        if self.higher_is_better:
            return self.vora / self.reference if self.reference else float("nan")
        return self.reference / self.vora if self.vora else float("nan")


@dataclass
class Report:
    name: str
    figures: list[Figure]
    notes: list[str] = field(default_factory=list)
    machine: str = field(default_factory=lambda: f"{platform.node()} {os.cpu_count()} cores")
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))


def spread(samples: list[float]) -> float:
    middle = statistics.median(samples)
    return (max(samples) - min(samples)) / middle if middle else 0.0


def alternate(rounds: int, vora: Callable[[], float],
              reference: Callable[[], float]) -> tuple[list[float], list[float]]:
    """Run each side ``rounds`` times, interleaved, so drift hits both alike."""
    ours: list[float] = []
    theirs: list[float] = []
    for index in range(rounds):
        first, second = (vora, reference) if index % 2 == 0 else (reference, vora)
        a, b = first(), second()
        ours.append(a if first is vora else b)
        theirs.append(b if first is vora else a)
    return ours, theirs


def figure(name: str, unit: str, ours: list[float], theirs: list[float], reference_name: str,
           higher_is_better: bool = True, goal: str = "") -> Figure:
    return Figure(name, unit, statistics.median(ours), statistics.median(theirs),
                  reference_name, higher_is_better, goal, spread(ours), spread(theirs))


def save(report: Report) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{report.name}.json"
    data = asdict(report)
    for item, fig in zip(data["figures"], report.figures, strict=True):
        item["ratio"] = fig.ratio
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def show(report: Report) -> None:
    print(f"\n== {report.name} ({report.machine}, {report.date})")
    for fig in report.figures:
        print(f"  {fig.name}: vora {fig.vora:.4g} {fig.unit} (±{fig.vora_spread:.0%}), "
              f"{fig.reference_name} {fig.reference:.4g} {fig.unit} "
              f"(±{fig.reference_spread:.0%}) -> ratio {fig.ratio:.2f}x"
              + (f" [goal {fig.goal}]" if fig.goal else ""))
    for note in report.notes:
        print(f"  note: {note}")


def require_stack(names: list[str]) -> None:
    """Bring up what this benchmark goes through in the ``vora dev up`` stack of
    VORA_ENV_FILE (the same as ``vora dev up NAME...``; components already healthy are left
    alone, so a running stack is never restarted)."""
    from vora import devstack
    from vora.config import load_settings

    settings = load_settings()
    table = devstack.components(settings)
    down = [name for name in names if devstack.health(table[name])]
    if not down:
        return
    print(f"starting {down} of the stack of VORA_ENV_FILE="
          f"{os.environ.get('VORA_ENV_FILE', '(unset: the default ports)')}", flush=True)
    devstack.up(settings, names)
