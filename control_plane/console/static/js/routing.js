// Regions and grayscale rules, a preview of where an account goes (answered by the
// control plane's own routing code: GET /v1/console/route-preview), and a route-lookup
// tester that mints a real token and calls GET /v1/route exactly as an SDK does.

import { adminToken, api, mintUserToken } from "./api.js";
import { attempt, clear, formValues, h, list, numberOrNull } from "./dom.js";

let regionRows;
let ruleRows;
let regionOut;
let ruleOut;

const input = (name, attrs = {}) => h("input", { name, ...attrs });
const field = (label, name, attrs = {}) => h("label", {}, label, input(name, attrs));

export function mount(root) {
  regionRows = h("tbody", { id: "region-rows" });
  ruleRows = h("tbody", { id: "rule-rows" });
  regionOut = h("div");
  ruleOut = h("div");
  const regionForm = h(
    "form",
    { id: "region-create", class: "row", onsubmit: createRegion },
    field("Id", "id", { required: true, placeholder: "eu" }),
    field("Name", "name", { required: true, placeholder: "Europe" }),
    field("Countries", "countries", { placeholder: "DE FR" }),
    field("Continents", "continents", { placeholder: "EU" }),
    field("Zones (zone:weight)", "zones", { placeholder: "eu-1a:2 eu-1b" }),
    h("label", {}, "Default", input("is_default", { type: "checkbox" })),
    h("button", { type: "submit" }, "Create region"),
  );
  const ruleForm = h(
    "form",
    { id: "rule-create", class: "row", onsubmit: createRule },
    field("Id", "id", { placeholder: "canary" }),
    field("Priority", "priority", { type: "number", required: true, value: 10 }),
    field("Tenant", "tenant", { placeholder: "any" }),
    field("Accounts", "accounts", { placeholder: "alice bob" }),
    field("Percent", "percent", { type: "number", min: 0, max: 100, step: "any" }),
    field("Min version", "min_version", { placeholder: "1.2.0" }),
    field("Max version", "max_version"),
    field("Platforms", "platforms", { placeholder: "ios web" }),
    field("Regions", "regions"),
    field("Gateway pool", "gateway_pool", { placeholder: "canary" }),
    field("Logic zone", "logic_zone"),
    field("Description", "description"),
    h("button", { type: "submit" }, "Create rule"),
  );
  const previewOut = h("pre", { id: "preview-result" }, "");
  const previewForm = h(
    "form",
    { id: "preview", class: "row", onsubmit: (e) => preview(e, previewOut) },
    field("Tenant", "tenant", { required: true }),
    field("Account", "account", { required: true }),
    field("Version", "version", { placeholder: "1.10.0" }),
    field("Platform", "platform", { placeholder: "ios" }),
    field("IP", "ip", { placeholder: "203.0.113.7" }),
    h("button", { type: "submit" }, "Preview"),
  );
  const lookupOut = h("pre", { id: "lookup-result" }, "");
  const lookupForm = h(
    "form",
    { id: "lookup", class: "row", onsubmit: (e) => lookup(e, lookupOut) },
    field("Tenant", "tenant", { required: true }),
    field("Account", "account", { required: true }),
    field("Version", "version"),
    field("Platform", "platform"),
    field("IP", "ip"),
    h("button", { type: "submit" }, "GET /v1/route"),
  );
  clear(
    root,
    h("div", { class: "panel" }, h("h2", {}, "Where does this client go?"), h("p", { class: "muted" }, "Answered by the control plane's routing code on its current snapshot: GeoIP of the address, region, grayscale rules, gateway choice."), previewForm, previewOut),
    h("div", { class: "panel" }, h("h2", {}, "Route lookup tester"), h("p", { class: "muted" }, "Mints a user token for the account and calls GET /v1/route with it, as an SDK would (the IP is applied with the admin header)."), lookupForm, lookupOut),
    h("div", { class: "panel" }, h("h2", {}, "Grayscale rules"), ruleForm, ruleOut, h("table", {}, h("thead", {}, h("tr", {}, ["Id", "Priority", "Enabled", "Conditions", "Actions", ""].map((t) => h("th", {}, t)))), ruleRows)),
    h("div", { class: "panel" }, h("h2", {}, "Regions"), regionForm, regionOut, h("table", {}, h("thead", {}, h("tr", {}, ["Id", "Name", "Countries", "Continents", "Zones", "Default", ""].map((t) => h("th", {}, t)))), regionRows)),
  );
}

export async function refresh() {
  const [regions, rules] = await Promise.all([api("GET", "/v1/regions"), api("GET", "/v1/grayscale/rules")]);
  clear(regionRows, regions.data.map(regionRow));
  clear(ruleRows, rules.data.map(ruleRow));
}

function regionRow(r) {
  return h(
    "tr",
    { dataset: { region: r.id } },
    h("td", {}, r.id),
    h("td", {}, r.name),
    h("td", {}, r.countries.join(" ")),
    h("td", {}, r.continents.join(" ")),
    h("td", {}, r.zones.map((z) => `${z.zone}:${z.weight}`).join(" ")),
    h("td", {}, r.is_default ? "yes" : ""),
    h("td", {}, h("button", { class: "danger", onclick: () => removeRegion(r.id) }, "Delete")),
  );
}

function ruleRow(rule) {
  const conditions = [
    rule.tenant && `tenant ${rule.tenant}`,
    rule.accounts.length && `accounts ${rule.accounts.join(" ")}`,
    rule.percent !== null && `${rule.percent} %`,
    (rule.min_version || rule.max_version) && `version ${rule.min_version || "…"}–${rule.max_version || "…"}`,
    rule.platforms.length && `platforms ${rule.platforms.join(" ")}`,
    rule.regions.length && `regions ${rule.regions.join(" ")}`,
  ].filter(Boolean);
  const actions = [rule.gateway_pool && `pool ${rule.gateway_pool}`, rule.logic_zone && `logic zone ${rule.logic_zone}`].filter(Boolean);
  return h(
    "tr",
    { dataset: { rule: rule.id } },
    h("td", {}, rule.id),
    h("td", { class: "num" }, rule.priority),
    h("td", {}, h("button", { class: "plain", onclick: () => patchRule(rule.id, { enabled: !rule.enabled }) }, rule.enabled ? "on" : "off")),
    h("td", {}, conditions.join("; ")),
    h("td", {}, actions.join("; ")),
    h("td", {}, h("button", { class: "danger", onclick: () => removeRule(rule.id) }, "Delete")),
  );
}

async function createRegion(event) {
  event.preventDefault();
  const v = formValues(event.target);
  const zones = list(v.zones).map((item) => {
    const [zone, weight] = item.split(":");
    return { zone, weight: weight ? Number(weight) : 1 };
  });
  const body = { id: v.id, name: v.name, countries: list(v.countries).map((c) => c.toUpperCase()), continents: list(v.continents).map((c) => c.toUpperCase()), zones, is_default: v.is_default };
  await attempt(regionOut, async () => {
    await api("POST", "/v1/regions", { body });
    event.target.reset();
    await refresh();
  });
}

async function removeRegion(id) {
  await attempt(regionOut, async () => {
    await api("DELETE", `/v1/regions/${encodeURIComponent(id)}`);
    await refresh();
  });
}

async function createRule(event) {
  event.preventDefault();
  const v = formValues(event.target);
  const body = { priority: Number(v.priority), accounts: list(v.accounts), platforms: list(v.platforms), regions: list(v.regions), description: v.description };
  for (const name of ["id", "tenant", "min_version", "max_version", "gateway_pool", "logic_zone"]) {
    if (v[name]) body[name] = v[name];
  }
  const percent = numberOrNull(v.percent);
  if (percent !== null) body.percent = percent;
  await attempt(ruleOut, async () => {
    await api("POST", "/v1/grayscale/rules", { body });
    event.target.reset();
    await refresh();
  });
}

async function patchRule(id, body) {
  await attempt(ruleOut, async () => {
    await api("PATCH", `/v1/grayscale/rules/${encodeURIComponent(id)}`, { body });
    await refresh();
  });
}

async function removeRule(id) {
  await attempt(ruleOut, async () => {
    await api("DELETE", `/v1/grayscale/rules/${encodeURIComponent(id)}`);
    await refresh();
  });
}

function query(values, names) {
  const params = new URLSearchParams();
  for (const name of names) if (values[name]) params.set(name, values[name]);
  return params;
}

function describe(answer) {
  const gateways = answer.gateways.map((g) => `${g.id} (${g.zone}) ${g.ws_url || ""} ${g.tcp_addr || ""}`.trim());
  const lines = [
    `region ${answer.region ?? "none"} (country ${answer.country ?? "?"}, continent ${answer.continent ?? "?"}, geo ${answer.geo})`,
    `pool ${answer.pool ?? "none"}${answer.fallback ? " (fallback)" : ""}`,
  ];
  if ("bucket" in answer) {
    lines.push(`bucket ${answer.bucket}; pool rule ${answer.pool_rule_id ?? "none"}; logic zone ${answer.logic_zone ?? "any"} (rule ${answer.zone_rule_id ?? "none"})`);
  }
  lines.push(`gateways: ${gateways.length ? gateways.join(", ") : "none live"}`);
  return lines.join("\n");
}

async function preview(event, out) {
  event.preventDefault();
  const v = formValues(event.target);
  await attempt(out, async () => {
    const params = query(v, ["tenant", "account", "version", "platform", "ip"]);
    out.textContent = describe(await api("GET", `/v1/console/route-preview?${params}`));
  });
}

async function lookup(event, out) {
  event.preventDefault();
  const v = formValues(event.target);
  await attempt(out, async () => {
    const token = await mintUserToken(v.tenant, v.account, 300);
    const params = query(v, ["version", "platform", "ip"]);
    params.set("token", token);
    const headers = v.ip ? { "X-Cirno-Admin-Token": adminToken() } : {};
    const answer = await api("GET", `/v1/route?${params}`, { token: null, headers });
    out.textContent = `${describe(answer)}\n\n${JSON.stringify(answer, null, 2)}`;
  });
}
