// Overview: live charts of messages/s, connections, logins/s and the p99 of logic
// requests, from GET /v1/console/metrics (the control plane scrapes the gateways' and
// logic nodes' Prometheus endpoints at most once a second).

import { api } from "./api.js";
import { LineChart } from "./charts.js";
import { clear, h } from "./dom.js";

export const INTERVAL_MS = 1000;
const CHARTS = [
  ["messages_per_s", "Messages / s", "msg/s"],
  ["connections", "Connections", ""],
  ["logins_per_s", "Logins / s", "/s"],
  ["p99_ms", "p99 logic request latency", "ms"],
];
let charts;
let sources;

export function mount(root) {
  charts = CHARTS.map(([key, title, unit]) => [key, new LineChart(title, unit, key)]);
  sources = h("p", { class: "muted", id: "metric-sources" });
  clear(root, h("div", { class: "panel" }, h("h2", {}, "Live"), sources), h("div", { class: "charts" }, charts.map(([, c]) => c.node)));
}

export async function refresh() {
  const answer = await api("GET", "/v1/console/metrics");
  for (const [key, chart] of charts) {
    chart.draw(answer.points.map((p) => ({ at: p.at, value: p[key] })));
  }
  if (answer.source === "registry") {
    sources.textContent = "No metrics targets (CIRNO_METRICS_TARGETS): connections from node heartbeats only.";
  } else {
    sources.textContent = answer.targets.map((t) => `${t.url}: ${t.up ? "up" : `down (${t.error})`}`).join(" · ");
  }
}
