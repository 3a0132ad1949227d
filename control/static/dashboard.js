// Vora farm dashboard: polls control's /v1/farm/* every few seconds and draws the
// numbers, bars and uPlot charts. Every value from the API goes through textContent.
"use strict";
(function () {
  const REFRESH_MS = 3000;
  const KINDS = ["nvenc", "nvdec", "cpu"];
  const COLOURS = { nvenc: "#2f9e44", nvdec: "#e8590c", cpu: "#4263eb" };
  const charts = {};
  let token = "";

  function takeToken() {
    const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem("vora-operator-token", decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search); // out of the URL bar
    }
    return sessionStorage.getItem("vora-operator-token") || "";
  }

  async function api(path) {
    const reply = await fetch(path, { headers: { "x-vora-service-token": token }, cache: "no-store" });
    const body = await reply.json().catch(() => ({}));
    if (!reply.ok) {
      const error = new Error((body.error && body.error.message) || reply.statusText);
      error.status = reply.status;
      throw error;
    }
    return body;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }

  function bar(fraction, title) {
    const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    const fill = el("span", { style: `width:${pct}%` });
    return el("div", { class: "bar", title: title || `${pct}%`, "data-percent": String(pct) }, fill);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "unknown";
    if (seconds < 60) return `${Math.round(seconds)} s`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function bytes(n) { return `${(n / 1024 ** 3).toFixed(1)} GiB`; }

  function text(id, value) { document.getElementById(id).textContent = value; }

  function renderCapacity(cap) {
    text("backlog", cap.backlog);
    const parts = [];
    parts.push(cap.temporal_backlog === null ? `Temporal: ${cap.temporal_error}` : `Temporal ${cap.temporal_backlog}`);
    if (cap.requeued_jobs.length) parts.push(`${cap.requeued_jobs.length} requeued`);
    text("backlog-detail", parts.join(" · "));
    text("jobs-per-hour", cap.jobs_per_hour.toFixed(1));
    text("rate-window", cap.rate_window_seconds ? `over the last ${duration(cap.rate_window_seconds)}` : "no samples yet");
    text("output-per-hour", cap.output_minutes_per_hour.toFixed(1));
    text("drain", cap.backlog === 0 ? "empty" : duration(cap.estimated_drain_seconds));
    text("nodes-count", cap.nodes_online);
    text("nodes-lost", cap.nodes_lost ? `${cap.nodes_lost} lost` : "none lost");
    const body = document.querySelector("#slots tbody");
    body.replaceChildren(...cap.slots.map((s) => el("tr", { "data-kind": s.kind },
      el("td", {}, s.kind), el("td", {}, `${s.busy} / ${s.total}`), el("td", {}, s.free),
      el("td", {}, bar(s.total ? s.busy / s.total : 0)))));
    const requeued = document.querySelector("#requeued tbody");
    requeued.replaceChildren(...cap.requeued_jobs.map((j) => el("tr", {},
      el("td", {}, j.video_id), el("td", {}, j.pipeline), el("td", {}, j.lost_node_id),
      el("td", {}, j.counted_in_backlog ? "no (counted here)" : "yes"))));
    document.getElementById("requeued-section").hidden = cap.requeued_jobs.length === 0;
  }

  function gpuRow(gpu) {
    const memory = gpu.memory_total_bytes ? gpu.memory_used_bytes / gpu.memory_total_bytes : 0;
    return el("tr", { class: "gpu" },
      el("td", {}, `#${gpu.index} ${gpu.model}`),
      el("td", {}, gpu.nvenc_available ? `NVENC yes (cap ${gpu.nvenc_session_cap})` : "NVENC no"),
      el("td", {}, `${gpu.slots_busy} / ${gpu.slots_total}`),
      el("td", {}, "enc ", bar(gpu.encoder_utilization / 100, `encoder ${gpu.encoder_utilization}%`)),
      el("td", {}, "dec ", bar(gpu.decoder_utilization / 100, `decoder ${gpu.decoder_utilization}%`)),
      el("td", {}, `${bytes(gpu.memory_used_bytes)} / ${bytes(gpu.memory_total_bytes)}`, bar(memory)));
  }

  function renderNodes(nodes) {
    const box = document.getElementById("nodes");
    if (!nodes.length) {
      box.replaceChildren(el("p", { class: "none" }, "No farm node has registered."));
      return;
    }
    box.replaceChildren(...nodes.map((node) => {
      const seen = Math.max(0, (Date.now() - Date.parse(node.last_seen_time)) / 1000);
      const gpus = node.gpus.length
        ? el("table", { class: "gpus" }, el("thead", {}, el("tr", {}, ...["GPU", "NVENC", "slots", "encoder", "decoder", "memory"].map((h) => el("th", {}, h)))),
          el("tbody", {}, ...node.gpus.map(gpuRow)))
        : el("p", { class: "none" }, "No GPU: CPU pipeline only.");
      const jobs = node.running_jobs.length
        ? el("table", { class: "jobs" }, el("thead", {}, el("tr", {}, ...["video", "pipeline", "progress", "status"].map((h) => el("th", {}, h)))),
          el("tbody", {}, ...node.running_jobs.map((job) => el("tr", { class: `job-${job.status.replace(/ /g, "-")}` },
            el("td", {}, job.video_id), el("td", {}, job.pipeline),
            el("td", {}, bar(job.percent / 100, `${job.percent.toFixed(0)}%`)), el("td", { class: "job-status" }, job.status)))))
        : el("p", { class: "none" }, "No running jobs.");
      return el("div", { class: "node", "data-node-id": node.node_id, "data-state": node.state },
        el("h3", {}, el("span", {}, node.hostname), el("span", { class: `state state-${node.state}` }, node.state),
          el("span", { class: "hint" }, `${node.node_id} · seen ${Math.round(seen)} s ago · ${node.jobs_completed} jobs done`)),
        el("div", { class: "cpu" }, `CPU slots ${node.cpu_slots_busy} / ${node.cpu_slots_total} `,
          bar(node.cpu_slots_total ? node.cpu_slots_busy / node.cpu_slots_total : 0)),
        gpus, jobs);
    }));
  }

  function chart(id, series, data) {
    const box = document.getElementById(id);
    const width = Math.max(280, box.clientWidth || 400);
    if (!charts[id]) {
      charts[id] = new uPlot({ width, height: 200, series: [{}, ...series],
        axes: [{}, { size: 50 }], scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } } }, data, box);
    } else {
      charts[id].setSize({ width, height: 200 });
      charts[id].setData(data);
    }
  }

  function renderHistory(h) {
    chart("chart-backlog", [{ label: "backlog", stroke: "#c92a2a" }], [h.times, h.backlog]);
    chart("chart-slots", KINDS.map((k) => ({ label: k, stroke: COLOURS[k] })), [h.times, ...KINDS.map((k) => h.busy[k])]);
    chart("chart-throughput", [{ label: "jobs/h", stroke: "#4263eb" }, { label: "output min/h", stroke: "#2f9e44" }],
      [h.times, h.jobs_per_hour, h.output_minutes_per_hour]);
  }

  async function refresh() {
    const status = document.getElementById("status");
    try {
      const [cap, nodes, hist] = await Promise.all([api("/v1/farm/capacity"), api("/v1/farm/nodes"), api("/v1/farm/history?minutes=60")]);
      renderCapacity(cap);
      renderNodes(nodes.nodes);
      renderHistory(hist);
      status.textContent = `updated ${new Date().toLocaleTimeString()}`;
      status.className = "status";
      document.body.dataset.loaded = "true";
    } catch (error) {
      status.textContent = `cannot load: ${error.message}`;
      status.className = "status error";
      if (error.status === 401 || error.status === 403) {
        sessionStorage.removeItem("vora-operator-token");
        showLogin();
        return;
      }
    }
    setTimeout(refresh, REFRESH_MS);
  }

  function showLogin() {
    document.getElementById("main").hidden = true;
    document.getElementById("login").hidden = false;
  }

  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    token = document.getElementById("token").value;
    sessionStorage.setItem("vora-operator-token", token);
    document.getElementById("login").hidden = true;
    document.getElementById("main").hidden = false;
    refresh();
  });

  token = takeToken();
  if (token) {
    document.getElementById("main").hidden = false;
    refresh();
  } else {
    showLogin();
  }
})();
