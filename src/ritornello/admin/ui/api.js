// The admin JSON API, one level above the UI (/ui/ -> /), with the bearer token.
//
// When the API answers 401 the page asks for a token once (concurrent requests share the one
// question), keeps it in sessionStorage (this tab only, gone when the tab closes) and retries.
// A refused token is forgotten and asked for again; cancelling the question fails the request.

const ROOT = new URL("../", import.meta.url);
const TOKEN_KEY = "ritornello.adminToken";

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export function hasToken() {
  return sessionStorage.getItem(TOKEN_KEY) !== null;
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

let asking = null;

function askToken(refused) {
  if (asking) return asking;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const cancel = document.getElementById("token-cancel");
  document.getElementById("token-error").hidden = !refused;
  input.value = "";
  asking = new Promise((resolve, reject) => {
    const done = (ok) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.close();
      asking = null;
      if (ok) {
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        resolve();
      } else {
        reject(new ApiError(401, "the admin API needs a token"));
      }
    };
    const onSubmit = (event) => {
      event.preventDefault();
      if (input.value.trim()) done(true);
    };
    const onCancel = () => done(false);
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.showModal();
    input.focus();
  });
  return asking;
}

function detailOf(data, fallback) {
  if (data && typeof data === "object") {
    const detail = data.detail ?? data.message;
    if (Array.isArray(detail)) return detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
    if (detail !== undefined) return typeof detail === "string" ? detail : JSON.stringify(detail);
  }
  return typeof data === "string" && data ? data : fallback;
}

/** Call the admin API: `api("invocations", {query: {status: "running"}})`. */
export async function api(path, { method = "GET", body, query } = {}) {
  const url = new URL(path.replace(/^\/+/, ""), ROOT);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  for (;;) {
    const headers = { accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.authorization = `Bearer ${token}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(url, init);
    if (resp.status === 401) {
      if (token) forgetToken();
      await askToken(Boolean(token));
      continue;
    }
    const text = await resp.text();
    let data = text;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text for the error message
    }
    if (!resp.ok) throw new ApiError(resp.status, detailOf(data, resp.statusText));
    return data;
  }
}
