"""Writes ops/grafana/vora.json, the Grafana dashboard over every Vora part's Prometheus
metrics: ``python ops/grafana/generate.py``. Edit the panels here, not the JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# (row title, [(panel title, unit, [(PromQL, legend)])])
ROWS: list[tuple[str, list[tuple[str, str, list[tuple[str, str]]]]]] = [
    ("Farm capacity (control)", [
        ("Slots by kind", "short", [
            ('control_farm_slots{state="busy"}', "{{kind}} busy"),
            ('control_farm_slots{state="total"}', "{{kind}} total")]),
        ("Backlog", "short", [("control_farm_backlog", "tasks waiting")]),
        ("Throughput", "short", [("control_farm_jobs_per_hour", "jobs/h"),
                                 ("control_farm_output_minutes_per_hour", "output min/h")]),
        ("Time to drain", "s", [("control_farm_drain_seconds >= 0", "drain")]),
        ("Nodes", "short", [("control_farm_nodes", "{{state}}")]),
    ]),
    ("Farm workers", [
        ("Jobs finished", "ops", [("sum by (pipeline, result) (rate(vora_farm_jobs_total[5m]))",
                                   "{{pipeline}} {{result}}")]),
        ("Job duration p50/p95", "s", [
            ("histogram_quantile(0.5, sum by (le, pipeline) "
             "(rate(vora_farm_job_seconds_bucket[15m])))", "p50 {{pipeline}}"),
            ("histogram_quantile(0.95, sum by (le, pipeline) "
             "(rate(vora_farm_job_seconds_bucket[15m])))", "p95 {{pipeline}}")]),
        ("Encode fps", "short", [("vora_farm_encode_fps_current", "{{pipeline}} {{instance}}")]),
        ("Worker slots in use", "short", [
            ("sum by (device) (vora_farm_slots_in_use)", "{{device}} busy"),
            ("sum by (device) (vora_farm_slots_total)", "{{device}} total")]),
        ("GPU fallbacks to CPU", "ops", [("rate(vora_farm_gpu_fallbacks_total[5m])",
                                          "{{instance}}")]),
    ]),
    ("Control", [
        ("Requests by code", "reqps", [
            ("sum by (api, code) (rate(control_requests_total[5m]))", "{{api}} {{code}}")]),
        ("Request latency p95", "s", [
            ("histogram_quantile(0.95, sum by (le, api) "
             "(rate(control_request_seconds_bucket[5m])))", "{{api}}")]),
        ("Outbox", "short", [("control_outbox_depth", "pending rows"),
                             ("control_relay_circuit_open", "circuit open")]),
        ("Relay", "ops", [("sum by (kind) (rate(control_relay_started_total[5m]))",
                           "started {{kind}}"),
                          ("sum by (reason) (rate(control_relay_errors_total[5m]))",
                           "error {{reason}}")]),
        ("Bookkeeping activities", "ops", [
            ("sum by (activity, outcome) (rate(vora_control_activity_seconds_count[5m]))",
             "{{activity}} {{outcome}}"),
            ("vora_control_worker_temporal_connected", "Temporal connected")]),
    ]),
    ("Edge (uploads)", [
        ("Uploads", "ops", [("rate(edge_uploads_started_total[5m])", "started"),
                            ("rate(edge_uploads_completed_total[5m])", "completed"),
                            ("sum by (reason) (rate(edge_uploads_failed_total[5m]))",
                             "failed {{reason}}"),
                            ("rate(edge_uploads_expired_total[5m])", "expired")]),
        ("Ingest bandwidth", "Bps", [("rate(edge_bytes_received_total[5m])", "received")]),
        ("Active uploads", "short", [("edge_uploads_active", "active")]),
        ("PATCH latency p95", "s", [
            ("histogram_quantile(0.95, sum by (le) (rate(edge_patch_seconds_bucket[5m])))",
             "p95")]),
        ("Callbacks to control", "ops", [
            ("sum by (outcome) (rate(edge_callbacks_total[5m]))", "{{outcome}}")]),
    ]),
    ("Gateway (playback)", [
        ("Requests", "reqps", [("sum by (kind, status) (rate(vora_gateway_requests_total[5m]))",
                                "{{kind}} {{status}}")]),
        ("Time to first byte p95", "s", [
            ("histogram_quantile(0.95, sum by (le, kind) "
             "(rate(vora_gateway_first_byte_seconds_bucket[5m])))", "{{kind}}")]),
        ("Egress", "Bps", [("sum by (kind) (rate(vora_gateway_bytes_out_total[5m]))",
                            "{{kind}}")]),
        ("Lookups and refusals", "ops", [
            ("sum by (result) (rate(vora_gateway_video_lookups_total[5m]))",
             "lookup {{result}}"),
            ("sum by (reason) (rate(vora_gateway_token_refusals_total[5m]))",
             "refused {{reason}}")]),
    ]),
    ("Analytics", [
        ("Events", "ops", [("rate(vora_analytics_events_accepted_total[5m])", "accepted"),
                           ("rate(vora_analytics_events_written_total[5m])", "written"),
                           ("sum by (reason) (rate(vora_analytics_events_rejected_total[5m]))",
                            "rejected {{reason}}"),
                           ("sum by (reason) (rate(vora_analytics_events_dropped_total[5m]))",
                            "dropped {{reason}}")]),
        ("Spool", "short", [("vora_analytics_spool_events", "spooled events"),
                            ("vora_analytics_buffered_events", "buffered events"),
                            ("vora_analytics_clickhouse_up", "ClickHouse up")]),
        ("Flush latency p95", "s", [
            ("histogram_quantile(0.95, sum by (le, target) "
             "(rate(vora_analytics_flush_seconds_bucket[5m])))", "{{target}}")]),
    ]),
    ("Scrape health", [
        ("Targets up", "short", [("up", "{{job}} {{instance}}")]),
    ]),
]


def panel(panel_id: int, title: str, unit: str, targets: list[tuple[str, str]],
          x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id, "type": "timeseries", "title": title, "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, "min": 0}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr,
                     "legendFormat": legend} for i, (expr, legend) in enumerate(targets)],
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for row_title, row_panels in ROWS:
        panels.append({"id": next_id, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        next_id += 1
        y += 1
        for i, (title, unit, targets) in enumerate(row_panels):
            panels.append(panel(next_id, title, unit, targets, (i % 3) * 8, y + (i // 3) * 8))
            next_id += 1
        y += ((len(row_panels) + 2) // 3) * 8
    return {
        "uid": "vora-overview", "title": "Vora", "tags": ["vora"], "timezone": "utc",
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource",
                                 "query": "prometheus", "label": "Prometheus"}]},
        "annotations": {"list": []}, "panels": panels,
    }


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "vora.json"
    out.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {out}")
