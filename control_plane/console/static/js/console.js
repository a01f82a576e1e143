// The console shell: sign-in with the admin token, and one page per hash (#tenants …).
// Each page module exports mount(root) (render once, bind its forms) and optionally
// refresh() (re-read its data) and an interval to refresh it at while it is shown.

import { adminToken, checkAdminToken, setAdminToken } from "./api.js";
import * as overview from "./overview.js";
import * as nodes from "./nodes.js";
import * as routing from "./routing.js";
import * as tenants from "./tenants.js";

const PAGES = { overview, tenants, nodes, routing };
const mounted = new Set();
let timer = null;
const $ = (id) => document.getElementById(id);

export function showError(err) {
  $("error").textContent = err ? String(err.message || err) : "";
}

async function show() {
  const name = (location.hash || "#overview").slice(1);
  const page = PAGES[name] ? name : "overview";
  for (const link of document.querySelectorAll("#nav a[data-page]")) {
    link.classList.toggle("active", link.dataset.page === page);
  }
  for (const key of Object.keys(PAGES)) $(`page-${key}`).classList.toggle("hidden", key !== page);
  clearInterval(timer);
  const module = PAGES[page];
  if (!mounted.has(page)) {
    mounted.add(page);
    module.mount($(`page-${page}`));
  }
  const refresh = async () => {
    try {
      await module.refresh();
      showError(null);
    } catch (err) {
      showError(err);
    }
  };
  await refresh();
  if (module.INTERVAL_MS) timer = setInterval(refresh, module.INTERVAL_MS);
}

function signedIn(yes) {
  $("signin-page").classList.toggle("hidden", yes);
  $("nav").classList.toggle("hidden", !yes);
  if (yes) return show();
  clearInterval(timer);
  for (const key of Object.keys(PAGES)) $(`page-${key}`).classList.add("hidden");
  return null;
}

async function signIn(event) {
  event.preventDefault();
  const token = event.target.elements.token.value.trim();
  $("signin-error").textContent = "";
  try {
    if (!(await checkAdminToken(token))) {
      $("signin-error").textContent = "That is not the admin token.";
      return;
    }
  } catch (err) {
    $("signin-error").textContent = String(err.message || err);
    return;
  }
  setAdminToken(token);
  event.target.reset();
  await signedIn(true);
}

function init() {
  $("signin").addEventListener("submit", signIn);
  $("signout").addEventListener("click", (event) => {
    event.preventDefault();
    setAdminToken(null);
    signedIn(false);
  });
  window.addEventListener("hashchange", () => adminToken() && show());
  signedIn(Boolean(adminToken()));
}

init();
