"""The dashboard in headless Chromium with real data: a real CPU-only farm worker, and a
GPU node (reported over the real FarmService API) that goes silent mid-job."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, expect

from tests.capacity.conftest import LOST_AFTER_SECONDS, ControlProcess, wait_for
from tests.capacity.farm_node import ReportingNode, l4_gpu, running_job


def test_dashboard_shows_nodes_slots_requeued_jobs_and_charts(
        control: ControlProcess, start_farm: Any, browser: Browser, artifacts_dir: Path) -> None:
    farm = start_farm(cpu_slots=2)
    gpu_node = ReportingNode(control.settings.control_grpc_target,
                             control.settings.service_token, f"gpu-box-{secrets.token_hex(3)}")
    job = running_job("nvenc")
    gpu_node_id = gpu_node.register([l4_gpu(busy=1)], [job])
    gpu_node.close()
    wait_for(lambda: control.known_node(gpu_node_id)["state"] == "LOST", LOST_AFTER_SECONDS + 3,
             "the GPU node to be LOST")
    time.sleep(2)  # a few more samples for the charts

    page = browser.new_page(viewport={"width": 1366, "height": 900})  # a laptop screen
    try:
        page.goto(f"{control.base}/dashboard#token={control.settings.service_token}")
        expect(page.locator("body[data-loaded=true]")).to_have_count(1, timeout=10_000)
        assert "token=" not in page.url  # taken out of the address bar

        worker = page.locator(f'.node[data-node-id="{farm.node_id}"]')
        expect(worker).to_have_attribute("data-state", "ONLINE")
        expect(worker).to_contain_text("No GPU: CPU pipeline only.")
        expect(worker.locator(".cpu")).to_contain_text("CPU slots 0 / 2")

        lost = page.locator(f'.node[data-node-id="{gpu_node_id}"]')
        expect(lost).to_have_attribute("data-state", "LOST")
        expect(lost.locator("tr.gpu")).to_contain_text("NVIDIA L4")
        expect(lost.locator("tr.gpu")).to_contain_text("NVENC yes (cap 8)")
        expect(lost.locator(".bar[title='encoder 40%'] span")).to_have_attribute(
            "style", "width:40%")
        expect(lost.locator("tr.job-requeued")).to_contain_text(job.video_id)
        expect(page.locator("#requeued")).to_contain_text(job.video_id)

        cpu_row = page.locator('#slots tr[data-kind="cpu"]')
        expect(cpu_row).to_contain_text("0 / 2")
        expect(page.locator("#backlog")).to_have_text(re.compile(r"^[1-9]\d*$"))  # requeued job
        for chart in ("chart-backlog", "chart-slots", "chart-throughput"):
            expect(page.locator(f"#{chart} canvas")).to_have_count(1)
        updated = page.locator("#status").inner_text()
        expect(page.locator("#status")).not_to_have_text(updated, timeout=8_000)  # refreshes
        page.screenshot(path=str(artifacts_dir / "capacity-dashboard.png"), full_page=True)
    finally:
        page.close()


def test_dashboard_asks_for_the_operator_token(control: ControlProcess, browser: Browser,
                                               artifacts_dir: Path) -> None:
    page = browser.new_page()
    try:
        page.goto(f"{control.base}/dashboard#token=wrong")
        expect(page.locator("#login")).to_be_visible(timeout=10_000)
        expect(page.locator("#status")).to_contain_text("cannot load")
        page.fill("#token", control.settings.service_token)
        page.click("button[type=submit]")
        expect(page.locator("body[data-loaded=true]")).to_have_count(1, timeout=10_000)
    finally:
        page.close()
