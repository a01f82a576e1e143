// Tenants: create, disable / enable, quotas, dedicated database, signing-key and API-key
// rotation, delete. Secrets and API keys are shown once, as the API returns them.

import { api } from "./api.js";
import { attempt, clear, formValues, h } from "./dom.js";

let root;
let table;
let out;

export function mount(node) {
  root = node;
  out = h("div", { id: "tenant-notice" });
  table = h("tbody", { id: "tenant-rows" });
  const form = h(
    "form",
    { id: "tenant-create", class: "row", onsubmit: create },
    h("label", {}, "Id", h("input", { name: "id", placeholder: "acme", pattern: "[a-z0-9][a-z0-9_\\-]{0,62}" })),
    h("label", {}, "Name", h("input", { name: "name", required: true, placeholder: "Acme Inc." })),
    h("label", {}, "Secret (optional)", h("input", { name: "secret", minlength: 16, placeholder: "generated" })),
    h("label", {}, "Max connections", h("input", { name: "max_connections", type: "number", min: 0, value: 0 })),
    h("label", {}, "Messages/s per connection", h("input", { name: "messages_per_second", type: "number", min: 0, step: "any", value: 0 })),
    h("label", {}, "Dedicated database URL (optional)", h("input", { name: "database_url", size: 30, placeholder: "mysql://…/acme" })),
    h("button", { type: "submit" }, "Create tenant"),
  );
  clear(
    root,
    h("div", { class: "panel" }, h("h2", {}, "New tenant"), form, out),
    h(
      "div",
      { class: "panel" },
      h("h2", {}, "Tenants"),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ...["Id", "Name", "Status", "Max connections", "Messages/s", "Storage", "API key", "Actions"].map((t) => h("th", {}, t)))),
        table,
      ),
    ),
  );
}

export async function refresh() {
  const answer = await api("GET", "/v1/tenants?limit=200");
  clear(table, answer.data.map(row));
}

function row(t) {
  const quotas = h(
    "form",
    { class: "row", onsubmit: (e) => update(e, t.id) },
    h("input", { name: "max_connections", type: "number", min: 0, value: t.max_connections, "aria-label": "max connections" }),
    h("input", { name: "messages_per_second", type: "number", min: 0, step: "any", value: t.messages_per_second, "aria-label": "messages per second" }),
    h("button", { class: "plain", type: "submit" }, "Save quotas"),
  );
  const storage = h(
    "form",
    { class: "row", onsubmit: (e) => isolate(e, t.id) },
    h("input", { name: "database_url", placeholder: "sqlite:///… or mysql://…", "aria-label": "dedicated database URL" }),
    h("button", { class: "plain", type: "submit" }, "Dedicate"),
    t.isolation === "dedicated" ? h("button", { class: "plain", type: "button", onclick: () => share(t.id) }, "Share") : null,
  );
  const next = t.status === "active" ? "disabled" : "active";
  return h(
    "tr",
    { dataset: { tenant: t.id } },
    h("td", {}, t.id),
    h("td", {}, t.name),
    h("td", {}, h("span", { class: `badge ${t.status}` }, t.status)),
    h("td", { colspan: 2 }, quotas),
    h("td", {}, h("div", {}, t.isolation === "dedicated" ? `dedicated: ${t.database_url}` : "shared"), storage),
    h("td", {}, t.has_api_key ? "set" : "none"),
    h(
      "td",
      { class: "row" },
      h("button", { class: "plain", onclick: () => setStatus(t.id, next) }, next === "disabled" ? "Disable" : "Enable"),
      h("button", { class: "plain", onclick: () => rotateSecret(t.id) }, "Rotate key"),
      h("button", { class: "plain", onclick: () => rotateApiKey(t.id) }, "New API key"),
      h("button", { class: "danger", onclick: () => remove(t.id) }, "Delete"),
    ),
  );
}

function notice(text) {
  clear(out, h("div", { class: "notice" }, text));
}

async function create(event) {
  event.preventDefault();
  const v = formValues(event.target);
  const body = { name: v.name, max_connections: Number(v.max_connections || 0), messages_per_second: Number(v.messages_per_second || 0) };
  if (v.id) body.id = v.id;
  if (v.secret) body.secret = v.secret;
  if (v.database_url) Object.assign(body, { isolation: "dedicated", database_url: v.database_url });
  await attempt(out, async () => {
    const made = await api("POST", "/v1/tenants", { body });
    event.target.reset();
    await refresh();
    notice(`Created tenant ${made.id}. Shown once — signing secret ${made.secret_kid}: ${made.secret} — API key: ${made.api_key}`);
  });
}

async function patch(id, body) {
  await attempt(out, async () => {
    await api("PATCH", `/v1/tenants/${encodeURIComponent(id)}`, { body });
    // The rows are drawn again first: "updated" shows once the table says so, and an
    // input typed after the notice is never wiped by this refresh.
    await refresh();
    notice(`Tenant ${id} updated.`);
  });
}

function update(event, id) {
  event.preventDefault();
  const v = formValues(event.target);
  return patch(id, { max_connections: Number(v.max_connections), messages_per_second: Number(v.messages_per_second) });
}

function isolate(event, id) {
  event.preventDefault();
  const { database_url } = formValues(event.target);
  return patch(id, { isolation: "dedicated", database_url });
}

function share(id) {
  return patch(id, { isolation: "shared", database_url: null });
}

function setStatus(id, status) {
  return patch(id, { status });
}

async function rotateSecret(id) {
  await attempt(out, async () => {
    const key = await api("POST", `/v1/tenants/${encodeURIComponent(id)}/secrets`, { body: {} });
    notice(`New signing key ${key.kid} of ${id}, shown once: ${key.secret}`);
  });
}

async function rotateApiKey(id) {
  await attempt(out, async () => {
    const key = await api("POST", `/v1/tenants/${encodeURIComponent(id)}/api-key`);
    notice(`New API key of ${id}, shown once: ${key.api_key}`);
    await refresh();
  });
}

async function remove(id) {
  if (!window.confirm(`Delete tenant ${id}?`)) return;
  await attempt(out, async () => {
    await api("DELETE", `/v1/tenants/${encodeURIComponent(id)}`);
    notice(`Tenant ${id} deleted.`);
    await refresh();
  });
}
