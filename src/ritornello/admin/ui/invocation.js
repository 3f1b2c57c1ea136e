// One invocation: its record, the operator actions, and its journal drawn as a timeline.
//
// The timeline puts every entry on one time scale, from the invocation's creation to its last
// known moment (now, while it is still live): a dot where the orchestrator committed the entry
// (`at`), a bar to its completion (`completion.at`) for entries that wait, open-ended while they
// still wait. Entries from before `at` was recorded have no dot, only their row. The failed
// attempts (`retries`) follow on the same scale. Refreshed every 2 s until the invocation ends.

import { api } from "./api.js";
import { badge, clear, duration, errorBox, h, jsonBlock, poll, TERMINAL, time } from "./dom.js";

const REFRESH_MS = 2000;
const WAITING = new Set(["call", "sleep", "awakeable", "promise_get", "promise_complete"]);
const ACTIONS = [
  ["cancel", "Cancel", "Cancel gracefully (compensations run)?"],
  ["kill", "Kill", "Kill now (no compensation)?"],
  ["pause", "Pause", null],
  ["resume", "Resume", null],
  ["purge", "Purge", "Forget this invocation, its journal and result?"],
];

const num = (v) => (typeof v === "number" ? v : null);

function entryName(e) {
  let name = e.name || "";
  if ((e.kind === "call" || e.kind === "send") && e.key !== undefined && e.key !== null) {
    name = `${name} [${e.key}]`;
  }
  if (e.kind === "sleep" && typeof e.duration_ms === "number") name = duration(e.duration_ms);
  if ((e.kind === "awakeable" || e.kind === "complete_awakeable") && e.id) name = e.id;
  return name;
}

function outcome(e, live) {
  const failure = e.failure ?? e.completion?.failure;
  if (failure !== undefined) {
    const text = typeof failure === "object" ? `${failure.code ?? ""} ${failure.message ?? ""}` : failure;
    return h("span", { class: "failure" }, String(text).trim());
  }
  if (e.completion && "value" in e.completion) return jsonBlock(e.completion.value);
  if (e.kind === "send") return h("span", { class: "mono" }, `→ ${e.id ?? "?"}`);
  if ("value" in e) return jsonBlock(e.value);
  if (WAITING.has(e.kind) && live) return h("span", { class: "waiting" }, "waiting…");
  return h("span", { class: "muted" }, "");
}

function scale(inv, live) {
  const t0 = num(inv.created_at) ?? 0;
  const stamps = [num(inv.modified_at), live ? Date.now() : null];
  for (const e of inv.journal || []) stamps.push(num(e.at), num(e.completion?.at));
  for (const r of inv.retries || []) stamps.push(num(r.at));
  const t1 = Math.max(t0, ...stamps.filter((t) => t !== null));
  const span = Math.max(t1 - t0, 1);
  return { t0, t1, pct: (t) => `${(((t - t0) / span) * 100).toFixed(2)}%` };
}

function track(s, start, end, cls) {
  if (start === null) return h("div", { class: "track" });
  const stop = end ?? start;
  const bar = h("span", {
    class: `bar ${cls}${end === null || end === start ? " point" : ""}`,
    style: { left: s.pct(start), width: `calc(${s.pct(stop)} - ${s.pct(start)})` },
  });
  return h("div", { class: "track" }, bar);
}

function timeline(inv, live) {
  const s = scale(inv, live);
  const head = h("li", { class: "tl-row tl-head" },
    h("span", {}, "#"), h("span", {}, "kind"), h("span", {}, "name"), h("span", {}, "at"),
    h("span", {}, "took"),
    h("span", { class: "axis" }, h("span", {}, "0"), h("span", {}, duration(s.t1 - s.t0))),
    h("span", {}, "result / error"));
  const rows = (inv.journal || []).map((e) => {
    const at = num(e.at);
    const done = num(e.completion?.at);
    const waiting = WAITING.has(e.kind) && !e.completion && live;
    const end = done ?? (waiting && at !== null ? s.t1 : null);
    const failed = e.failure !== undefined || e.completion?.failure !== undefined;
    return h("li", { class: `tl-row entry kind-${e.kind}${failed ? " failed" : ""}`, dataset: { index: e.index } },
      h("span", { class: "num" }, e.index),
      h("span", {}, h("span", { class: "kind" }, e.kind)),
      h("span", { class: "name mono" }, entryName(e)),
      h("span", { class: "num" }, at === null ? "" : `+${duration(at - s.t0)}`),
      h("span", { class: "num" }, done !== null && at !== null ? duration(done - at) : ""),
      track(s, at, end, waiting ? "open" : failed ? "bad" : "ok"),
      h("span", { class: "outcome" }, outcome(e, live)));
  });
  const retries = (inv.retries || []).map((r) => {
    const at = num(r.at);
    return h("li", { class: "tl-row retry" },
      h("span", { class: "num" }, ""),
      h("span", {}, h("span", { class: "kind retry" }, "retry")),
      h("span", { class: "name" }, `attempt ${r.attempt ?? "?"}`),
      h("span", { class: "num" }, at === null ? "" : `+${duration(at - s.t0)}`),
      h("span", {}, ""),
      track(s, at, null, "bad"),
      h("span", { class: "failure" }, r.error ?? ""));
  });
  return h("section", {},
    h("h2", {}, `Journal · ${(inv.journal || []).length} entries`),
    h("ol", { class: "timeline", id: "timeline" }, head, rows),
    h("h2", {}, `Failed attempts · ${(inv.retries || []).length}`),
    retries.length
      ? h("ol", { class: "timeline", id: "retries" }, head.cloneNode(true), retries)
      : h("p", { class: "muted" }, "None."));
}

function summary(inv) {
  const link = (id) => h("a", { href: `#/invocations/${encodeURIComponent(id)}`, class: "mono" }, id);
  const rows = [
    ["target", inv.target],
    ["status", badge(inv.status)],
    ["attempt", inv.attempt],
    ["deployment", inv.deployment_id],
    ["invoked by", inv.caller_id ? [inv.invoked_by, " ", link(inv.caller_id)] : inv.invoked_by],
    ["idempotency key", inv.idempotency_key],
    ["created", time(inv.created_at)],
    ["modified", time(inv.modified_at)],
    ["next retry", inv.next_retry_at ? time(inv.next_retry_at) : null],
    ["waiting on", inv.waiting_on?.length ? inv.waiting_on.join(", ") : null],
    ["waiting for limit", inv.waiting_for_limit
      ? h("a", { href: `#/limits` }, inv.waiting_for_limit) : null],
    ["last failure", inv.last_failure ? h("span", { class: "failure" }, inv.last_failure) : null],
    ["result", inv.result ? jsonBlock(inv.result) : null],
  ];
  if (inv.key !== null && inv.key !== undefined) {
    const q = new URLSearchParams({ service: inv.service, key: inv.key });
    rows.splice(1, 0, ["key", h("a", { href: `#/state?${q}` }, inv.key)]);
  }
  return h("dl", { class: "facts" },
    rows.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export function invocationView(main, id) {
  const notice = h("p", { class: "notice", hidden: true });
  const body = h("div", { id: "invocation" }, h("p", { class: "muted" }, "Loading…"));
  const act = async (action, question) => {
    if (question && !window.confirm(question)) return;
    try {
      await api(`invocations/${encodeURIComponent(id)}/${action}`, { method: "PATCH" });
      notice.textContent = `${action}: done`;
      notice.className = "notice";
      if (action === "purge") { location.hash = "#/invocations"; return; }
      refresh();
    } catch (err) {
      notice.textContent = `${action} failed: ${err.message}`;
      notice.className = "notice error";
    }
    notice.hidden = false;
  };
  const actions = h("div", { class: "actions" },
    ACTIONS.map(([action, label, question]) =>
      h("button", { type: "button", onclick: () => act(action, question), dataset: { action } }, label)));
  main.append(
    h("p", {}, h("a", { href: "#/invocations" }, "← Invocations")),
    h("h1", { class: "mono" }, id), actions, notice, body);

  let stop = () => {};
  const refresh = async () => {
    try {
      const inv = await api(`invocations/${encodeURIComponent(id)}`);
      const live = !TERMINAL.has(inv.status);
      clear(body, summary(inv), timeline(inv, live));
      if (!live) stop();
    } catch (err) {
      clear(body, errorBox(err));
      if (err.status === 404) stop();
    }
  };
  stop = poll(refresh, REFRESH_MS);
  return () => stop();
}
