// Nodes: every live gateway and logic node of the registry, refreshed every two seconds.
// Health is read from the heartbeat age: nodes heartbeat every 5 s, so a node silent for
// more than two beats is "late" (it expires from the registry after the node TTL).

import { api } from "./api.js";
import { clear, h } from "./dom.js";

export const INTERVAL_MS = 2000;
const LATE_AFTER_S = 12.5;
let table;
let summary;

export function mount(root) {
  table = h("tbody", { id: "node-rows" });
  summary = h("p", { class: "muted", id: "node-summary" });
  const heads = ["Id", "Role", "Region", "Zone", "Pool", "Version", "Address", "Connections", "Load", "Health", "Last heartbeat"];
  clear(
    root,
    h(
      "div",
      { class: "panel" },
      h("h2", {}, "Nodes"),
      summary,
      h("table", {}, h("thead", {}, h("tr", {}, heads.map((t) => h("th", {}, t)))), table),
    ),
  );
}

export function health(node, now) {
  if (node.draining) return "draining";
  return now - node.last_seen > LATE_AFTER_S ? "late" : "healthy";
}

export async function refresh() {
  const answer = await api("GET", "/v1/nodes");
  const now = Date.now() / 1000;
  const gateways = answer.data.filter((n) => n.role === "gateway");
  const connections = gateways.reduce((sum, n) => sum + n.connections, 0);
  summary.textContent = `${gateways.length} gateway(s), ${answer.data.length - gateways.length} logic node(s), ${connections} client connection(s); updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
  clear(
    table,
    answer.data.map((n) => {
      const state = health(n, now);
      const address = n.role === "gateway" ? [n.ws_url, n.tcp_addr].filter(Boolean).join(" ") : n.link_addr || "";
      const load = Math.min(1, n.load);
      return h(
        "tr",
        { dataset: { node: n.id, role: n.role } },
        h("td", {}, n.id),
        h("td", {}, n.role + (n.id_node === null || n.id_node === undefined ? "" : ` #${n.id_node}`)),
        h("td", {}, n.region),
        h("td", {}, n.zone),
        h("td", {}, n.pool || "stable"),
        h("td", {}, n.version),
        h("td", {}, address),
        h("td", { class: "num" }, `${n.connections} / ${n.capacity}`),
        h("td", {}, h("div", { class: "load", title: `${(n.load * 100).toFixed(1)} %` }, h("span", { style: `width:${(load * 100).toFixed(1)}%` }))),
        h("td", {}, h("span", { class: `badge ${state}` }, state)),
        h("td", {}, `${Math.max(0, now - n.last_seen).toFixed(1)} s ago`),
      );
    }),
  );
}
