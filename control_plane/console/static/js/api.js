// The control plane's REST API with the admin token the operator signed in with.
// The token lives in sessionStorage: it is gone when the tab closes, and other sites
// cannot read it.

const TOKEN_KEY = "cirno.adminToken";

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    this.status = status;
    this.detail = detail;
  }
}

export function adminToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setAdminToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// fetch() a path of the API; JSON in and out. Throws ApiError for a non-2xx answer.
export async function api(method, path, { body, token = adminToken(), headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const answer = await fetch(path, init);
  const text = await answer.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!answer.ok) throw new ApiError(answer.status, data && data.detail ? data.detail : data);
  return data;
}

// Checks a token against an admin endpoint; true when it is the admin token.
export async function checkAdminToken(token) {
  try {
    await api("GET", "/v1/nodes", { token });
    return true;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return false;
    throw err;
  }
}

// A user token for `account` of `tenant`, minted by the control plane (admin path).
export async function mintUserToken(tenant, account, ttl = 3600) {
  const path = `/v1/tenants/${encodeURIComponent(tenant)}/tokens`;
  const minted = await api("POST", path, { body: { account, ttl } });
  return minted.token;
}
