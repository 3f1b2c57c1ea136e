// Small DOM and formatting helpers. Server data only ever becomes text nodes (never HTML), so
// a key or a journaled value cannot inject markup.

// The statuses the admin API shows (a completed invocation is succeeded or failed); a server
// from before that split says "completed", still finished.
export const STATUSES = [
  "pending", "scheduled", "running", "suspended", "backing-off", "paused", "succeeded", "failed",
  "killed",
];
export const TERMINAL = new Set(["succeeded", "failed", "completed", "killed"]);

/** h("a", {href: "#/x", class: "y"}, "text", child) -> Element */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "style") Object.assign(el.style, value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function badge(status) {
  return h("span", { class: `badge st-${status}` }, status);
}

export function time(ms) {
  if (ms === undefined || ms === null) return "–";
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A duration in ms, short: 12ms, 1.25s, 3m04s, 2h05m. */
export function duration(ms) {
  if (ms === undefined || ms === null) return "";
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)}ms`;
  if (abs < 60000) return `${(abs / 1000).toFixed(2)}s`;
  const s = Math.floor(abs / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

/** A JSON value; long ones fold into a <details>. */
export function jsonBlock(value, cls = "") {
  const short = JSON.stringify(value);
  if (short === undefined) return h("span", { class: "muted" }, "–");
  if (short.length <= 80) return h("code", { class: cls }, short);
  const text = json(value);
  return h("details", { class: cls },
    h("summary", {}, short.length > 80 ? `${short.slice(0, 77)}…` : short),
    h("pre", {}, text));
}

export function table(columns, rows, empty = "Nothing here yet.") {
  if (!rows.length) return h("p", { class: "muted empty" }, empty);
  return h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows));
}

export function errorBox(err) {
  return h("p", { class: "error" }, err instanceof Error ? err.message : String(err));
}

/** Run `fn` now and every `ms` after it settles (skipped while the tab is hidden); returns stop(). */
export function poll(fn, ms) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try { await fn(); } catch (err) { console.error(err); }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

/** The hash's query: "#/invocations?status=x" -> URLSearchParams */
export function hashQuery() {
  const q = location.hash.indexOf("?");
  return new URLSearchParams(q < 0 ? "" : location.hash.slice(q + 1));
}

export function setHashQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const text = q.toString();
  location.hash = text ? `${path}?${text}` : path;
}
