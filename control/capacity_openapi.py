"""The OpenAPI description of the farm capacity endpoints (control/dashboard.py), merged
into /openapi.json by control/openapi.py."""

from __future__ import annotations

from typing import Any

MAX_HISTORY_MINUTES = 24 * 60
_SECURITY: list[dict[str, list[str]]] = [{"serviceToken": []}]


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(description: str, name: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{name}"}}}}


_ERRORS = {
    "400": _error("A query parameter is malformed; the message names it."),
    "401": _error("Missing or invalid credentials."),
    "403": _error("Only operators (the service token) may read the farm."),
    "503": {**_error("The database is unreachable; retry after the given seconds."),
            "headers": {"Retry-After": {"schema": {"type": "string"}}}},
}

_INT = {"type": "integer"}
_NUM = {"type": "number"}
_STR = {"type": "string"}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


def _series(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def farm_schemas() -> dict[str, Any]:
    slot = _object({"kind": {"type": "string", "enum": ["nvenc", "nvdec", "cpu"]},
                    "total": _INT, "busy": _INT, "free": _INT})
    gpu = _object({"uuid": _STR, "model": _STR, "nvenc_available": {"type": "boolean"},
                   **{n: _INT for n in ("index", "nvenc_session_cap", "encoder_utilization",
                                        "decoder_utilization", "nvenc_sessions_running",
                                        "slots_total", "slots_busy", "memory_total_bytes",
                                        "memory_used_bytes")}})
    job = _object({"video_id": _STR, "pipeline": _STR, "gpu_uuid": _STR, "start_time": _STR,
                   "percent": _NUM, "status": {"type": "string", "enum": [
                       "running", "requeued", "running elsewhere"]}})
    node = _object({
        "node_id": _STR, "hostname": _STR, "version": _STR, "ffmpeg_version": _STR,
        "state": {"type": "string", "enum": ["ONLINE", "DRAINING", "LOST"]},
        "last_seen_time": {"type": "string", "format": "date-time"},
        "register_time": {"type": "string", "format": "date-time"},
        "cpu_slots_total": _INT, "cpu_slots_busy": _INT, "gpus": _series(gpu),
        "running_jobs": _series(job), "jobs_completed": _INT, "output_seconds": _NUM})
    requeued = _object({"video_id": _STR, "pipeline": _STR, "lost_node_id": _STR,
                        "counted_in_backlog": {"type": "boolean"}})
    capacity = _object({
        "slots": _series(slot), "backlog": _INT,
        "temporal_backlog": {"type": ["integer", "null"]}, "temporal_error": _STR,
        "requeued_jobs": _series(requeued), "jobs_per_hour": _NUM,
        "output_minutes_per_hour": _NUM, "rate_window_seconds": _NUM,
        "estimated_drain_seconds": {"type": ["number", "null"]},
        "nodes_online": _INT, "nodes_lost": _INT})
    by_kind = {"type": "object", "additionalProperties": _series(_INT)}
    nullable = _series({"type": ["number", "null"]})
    history = _object({"times": _series(_NUM), "backlog": nullable, "busy": by_kind,
                       "total": by_kind, "jobs_per_hour": nullable,
                       "output_minutes_per_hour": nullable})
    return {"FarmNode": node, "FarmNodes": _object({"nodes": _series(
        {"$ref": "#/components/schemas/FarmNode"})}), "FarmCapacity": capacity,
        "FarmHistory": history}


def farm_paths() -> dict[str, Any]:
    return {
        "/v1/farm/nodes": {"get": {
            "operationId": "ListFarmNodes", "security": _SECURITY,
            "summary": "Farm nodes, their GPUs, slots and jobs (a LOST node's: requeued)",
            "parameters": [{"name": "include_lost", "in": "query",
                            "schema": {"type": "string", "enum": ["true", "false"]}}],
            "responses": {"200": _ok("The nodes", "FarmNodes"), **_ERRORS}}},
        "/v1/farm/capacity": {"get": {
            "operationId": "GetFarmCapacity", "security": _SECURITY,
            "summary": "Slots by kind, backlog, throughput and time to drain",
            "responses": {"200": _ok("The capacity", "FarmCapacity"), **_ERRORS}}},
        "/v1/farm/history": {"get": {
            "operationId": "GetFarmHistory", "security": _SECURITY,
            "summary": "Backlog, busy slots and throughput over time (the dashboard's charts)",
            "parameters": [{"name": "minutes", "in": "query", "schema": {
                "type": "integer", "minimum": 1, "maximum": MAX_HISTORY_MINUTES}}],
            "responses": {"200": _ok("The series", "FarmHistory"), **_ERRORS}}},
    }
