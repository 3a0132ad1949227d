"""ops/: the Grafana dashboard only charts metrics some part really exports, the committed
JSON is what the generator writes, and the Prometheus config scrapes every service's
default /metrics port."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # (PyYAML, via schemathesis)

from ops.grafana import generate
from vora.config import Settings

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("control", "edge", "farm", "gateway", "analytics")
_DECLARED = re.compile(r'(?:Counter|Gauge|Histogram|Summary)\(\s*"([a-z_]+)"')
_PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "le", "up"}


def declared_metrics() -> set[str]:
    names: set[str] = set()
    for part in PARTS:
        for source in (ROOT / part).rglob("*.py"):
            names.update(_DECLARED.findall(source.read_text()))
    return names


def test_every_dashboard_query_uses_an_exported_metric() -> None:
    declared = declared_metrics()
    assert "control_farm_backlog" in declared and "vora_farm_jobs_total" in declared
    for _, panels in generate.ROWS:
        for title, _, targets in panels:
            for expr, _ in targets:
                expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # label sets and ranges
                words = set(re.findall(r"[a-z_][a-z0-9_]*", expr)) - _PROMQL_WORDS
                words -= {"pipeline", "result", "device", "api", "code", "kind", "reason",
                          "activity", "outcome", "target", "status"}
                for word in words:
                    base = re.sub(r"_(bucket|count|sum)$", "", word)
                    assert base in declared, f"panel {title!r} queries unknown metric {word}"


def test_committed_dashboard_is_the_generated_one() -> None:
    committed = json.loads((ROOT / "ops/grafana/vora.json").read_text())
    assert committed == json.loads(json.dumps(generate.dashboard()))
    assert committed["uid"] == "vora-overview"


def test_prometheus_scrapes_every_services_default_port() -> None:
    config = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0]
               for job in config["scrape_configs"]}
    def default(name: str) -> str:
        return f"127.0.0.1:{Settings.model_fields[name].default}"  # not this env's ports

    assert targets == {
        "control": default("control_http_port"),
        "control-worker": default("control_worker_metrics_port"),
        "edge": default("edge_port"),
        "farm": default("farm_metrics_port"),
        "gateway": default("gateway_port"),
        "analytics": default("analytics_port"),
    }


def test_devstack_prometheus_is_opt_in_and_scrapes_the_same_jobs(tmp_path: Path) -> None:
    from vora import devstack

    settings = Settings(_env_file=None, home=tmp_path, prometheus_port=19999)
    assert "prometheus" not in devstack.ALL and "prometheus" in devstack.OPTIONAL
    component = devstack.components(settings)["prometheus"]
    assert "--web.listen-address=127.0.0.1:19999" in component.command
    devstack.render_configs(settings)
    rendered = yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
    documented = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    assert [j["job_name"] for j in rendered["scrape_configs"]] == [
        j["job_name"] for j in documented["scrape_configs"]]
    assert rendered["scrape_configs"][0]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{settings.control_http_port}"]
