"""REST transport of the farm's registry and capacity, and the operator dashboard page.

  GET /v1/farm/nodes?include_lost=true     nodes, GPUs, slots, running/requeued jobs
  GET /v1/farm/capacity                    slots by kind, backlog, throughput, drain time
  GET /v1/farm/history?minutes=60          the samples the dashboard charts
  GET /dashboard                           the page (static; it calls the three above)

The three APIs are for operators: they take the service token (``x-vora-service-token``)
because they name hosts and every user's video ids. The page itself holds no data.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import tornado.web

from control.auth import Authenticator, Caller
from control.capacity import CapacityReport, CapacityService, History
from control.capacity_openapi import MAX_HISTORY_MINUTES
from control.errors import InvalidArgument
from control.farm import FarmRegistry, NodeView
from control.rest import JsonHandler
from vora.grpcio import SERVICE_TOKEN_METADATA

STATIC_DIR = Path(__file__).resolve().parent / "static"
UPLOT_DIR = Path(__file__).resolve().parent.parent / "node_modules" / "uplot" / "dist"


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def node_json(view: NodeView, requeued: set[str]) -> dict[str, Any]:
    node = view.record
    jobs = []
    for job in node.running_jobs:
        status = "running"
        if view.state == "LOST":
            status = "requeued" if str(job.get("video_id", "")) in requeued else "running elsewhere"
        jobs.append({"video_id": str(job.get("video_id", "")),
                     "pipeline": str(job.get("pipeline", "")),
                     "gpu_uuid": str(job.get("gpu_uuid", "")),
                     "start_time": str(job.get("start_time", "")),
                     "percent": float(job.get("percent", 0.0)), "status": status})
    return {
        "node_id": node.node_id, "hostname": node.hostname, "version": node.version,
        "ffmpeg_version": node.ffmpeg_version, "state": view.state,
        "last_seen_time": _time(node.last_seen_at), "register_time": _time(node.registered_at),
        "cpu_slots_total": node.cpu_slots_total, "cpu_slots_busy": node.cpu_slots_busy,
        "gpus": [gpu_json(g) for g in node.gpus], "running_jobs": jobs,
        "jobs_completed": node.jobs_completed, "output_seconds": node.output_seconds,
    }


def gpu_json(gpu: dict[str, Any]) -> dict[str, Any]:
    """A stored GPU (proto JSON names; int64 fields arrive as strings) as plain JSON."""
    numbers = ("index", "nvenc_session_cap", "encoder_utilization", "decoder_utilization",
               "nvenc_sessions_running", "slots_total", "slots_busy", "memory_total_bytes",
               "memory_used_bytes")
    return {"uuid": str(gpu.get("uuid", "")), "model": str(gpu.get("model", "")),
            "nvenc_available": bool(gpu.get("nvenc_available", False)),
            **{name: int(gpu.get(name, 0)) for name in numbers}}


def capacity_json(report: CapacityReport) -> dict[str, Any]:
    capacity = report.capacity
    drain = report.estimated_drain_seconds
    return {
        "slots": [{"kind": s.kind, "total": s.total, "busy": s.busy, "free": s.free}
                  for s in capacity.slots],
        "backlog": report.backlog, "temporal_backlog": report.temporal_backlog,
        "temporal_error": report.temporal_error,
        "requeued_jobs": [{"video_id": j.video_id, "pipeline": j.pipeline,
                           "lost_node_id": j.lost_node_id,
                           "counted_in_backlog": j.pending_in_temporal}
                          for j in report.requeued],
        "jobs_per_hour": round(report.rates.jobs_per_hour, 3),
        "output_minutes_per_hour": round(report.rates.output_minutes_per_hour, 3),
        "rate_window_seconds": round(report.rates.window_seconds, 1),
        "estimated_drain_seconds": None if drain < 0 else round(drain, 1),
        "nodes_online": capacity.nodes_online, "nodes_lost": capacity.nodes_lost,
    }


def history_json(history: History) -> dict[str, Any]:
    return {"times": history.times, "backlog": history.backlog, "busy": history.busy,
            "total": history.total, "jobs_per_hour": history.jobs_per_hour,
            "output_minutes_per_hour": history.output_minutes_per_hour}


class FarmApiHandler(JsonHandler):
    def initialize(self, capacity: CapacityService, farm: FarmRegistry,
                   auth: Authenticator) -> None:
        self.capacity = capacity
        self.farm = farm
        self.auth = auth

    def caller(self) -> Caller:
        return self.auth.authenticate(self.request.headers.get("Authorization"),
                                      self.request.headers.get(SERVICE_TOKEN_METADATA))

    def bool_argument(self, name: str, default: bool) -> bool:
        value = self.get_query_argument(name, "")
        if value == "":
            return default
        if value not in ("true", "false"):
            raise InvalidArgument(f"{name} must be true or false")
        return value == "true"


class NodesHandler(FarmApiHandler):
    route = "/v1/farm/nodes"

    async def get(self) -> None:
        include_lost = self.bool_argument("include_lost", True)
        caller = self.caller()
        report = await self.capacity.report(caller)
        requeued = {job.video_id for job in report.requeued}
        views = await self.farm.list_nodes(caller, include_lost)
        self.send_json({"nodes": [node_json(v, requeued) for v in views]})


class CapacityHandler(FarmApiHandler):
    route = "/v1/farm/capacity"

    async def get(self) -> None:
        self.send_json(capacity_json(await self.capacity.report(self.caller())))


class HistoryHandler(FarmApiHandler):
    route = "/v1/farm/history"

    async def get(self) -> None:
        raw = self.get_query_argument("minutes", "60")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_HISTORY_MINUTES:
            raise InvalidArgument(f"minutes must be an integer from 1 to {MAX_HISTORY_MINUTES}")
        caller = self.caller()
        self.send_json(history_json(await self.capacity.history(caller, int(raw))))


class DashboardHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        # The page reads the token from the URL fragment and never sends it elsewhere.
        self.set_header("Content-Security-Policy",
                        "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                        "frame-ancestors 'none'")
        self.finish((STATIC_DIR / "dashboard.html").read_bytes())


def routes(capacity: CapacityService, farm: FarmRegistry, auth: Authenticator) -> list[Any]:
    api = {"capacity": capacity, "farm": farm, "auth": auth}
    return [
        (r"/v1/farm/nodes", NodesHandler, api),
        (r"/v1/farm/capacity", CapacityHandler, api),
        (r"/v1/farm/history", HistoryHandler, api),
        (r"/dashboard/?", DashboardHandler),
        (r"/dashboard/static/uplot/(uPlot\.iife\.min\.js|uPlot\.min\.css)",
         tornado.web.StaticFileHandler, {"path": str(UPLOT_DIR)}),
        (r"/dashboard/static/(dashboard\.js|dashboard\.css)", tornado.web.StaticFileHandler,
         {"path": str(STATIC_DIR)}),
    ]
