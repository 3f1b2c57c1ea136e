// One invocation: its record, the operator actions, and its journal drawn as a timeline.
//
// The timeline puts every entry on one time scale, from the invocation's creation to its last
// known moment (now, while it is still live): a dot where the orchestrator committed the entry
// (`at`), a bar to its completion (`completion.at`) for entries that wait, open-ended while they
// still wait. Entries from before `at` was recorded have no dot, only their row. The failed
// attempts (`retries`) follow on the same scale. Refreshed every 2 s until the invocation ends.
//
// Fan-outs (ctx.map / parallel / child, docs/sdk.md) are drawn as a tree: the fan-out's entry
// (a `run` with `child`, index P) holds one branch per child context "P/i" (nested: "c/P/i"),
// each with its entries in journal order, then the outcome (the `run` of context "P"). Every
// row keeps its global index; entries without `ctx` stay at the top level in index order. A
// `sleep` with `retry` is the durable timer between two attempts of a step, drawn as such.

import { api } from "./api.js";
import { badge, clear, duration, errorBox, h, jsonBlock, poll, TERMINAL, time } from "./dom.js";
import { restartForm } from "./restart.js";

const REFRESH_MS = 2000;
const WAITING = new Set(["call", "sleep", "awakeable", "promise_get", "promise_complete"]);
const ACTIONS = [
  ["cancel", "Cancel", "Cancel gracefully (compensations run)?"],
  ["kill", "Kill", "Kill now (no compensation)?"],
  ["pause", "Pause", null],
  ["resume", "Resume", null],
  ["purge", "Purge", "Forget this invocation, its journal and result?"],
];

/** Why `action` cannot apply to an invocation in `status` (as the orchestrator would refuse
 * it with a 409), or null when it can: cancel, kill and pause need a live invocation (pause one
 * not paused yet), resume a paused one, purge a finished one. */
export function whyNot(action, status) {
  const finished = TERMINAL.has(status);
  switch (action) {
    case "cancel":
    case "kill":
      return finished ? `already ${status}: nothing left to ${action}` : null;
    case "pause":
      if (finished) return `already ${status}: nothing left to pause`;
      return status === "paused" ? "already paused" : null;
    case "resume":
      return status === "paused" ? null : `${status}, not paused: only a paused invocation resumes`;
    case "purge":
      return finished ? null : `${status}: only a finished invocation can be purged`;
    default:
      return null;
  }
}

const num = (v) => (typeof v === "number" ? v : null);

function entryName(e) {
  let name = e.name || "";
  if ((e.kind === "call" || e.kind === "send") && e.key !== undefined && e.key !== null) {
    name = `${name} [${e.key}]`;
  }
  if (e.kind === "sleep" && typeof e.duration_ms === "number") name = duration(e.duration_ms);
  // an awakeable's id is what resolves it; a named one (an AWS durable callback) keeps its name
  if ((e.kind === "awakeable" || e.kind === "complete_awakeable") && e.id) {
    name = name ? `${name} · ${e.id}` : e.id;
  }
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

const offset = (s, at) => (at === null ? "" : `+${duration(at - s.t0)}`);
const took = (from, to) => (from !== null && to !== null ? duration(to - from) : "");

/** One grid row: index, kind, name (indented by depth), at, took, track, result / error. */
function row(tag, cls, dataset, depth, [index, kind, name, at, spent, bar, result]) {
  return h(tag, { class: `tl-row ${cls}`, dataset },
    h("span", { class: "num" }, index),
    h("span", {}, kind),
    h("span", { class: "name mono", style: depth ? { paddingLeft: `${depth * 18}px` } : null }, name),
    h("span", { class: "num" }, at),
    h("span", { class: "num" }, spent),
    bar,
    h("span", { class: "outcome" }, result));
}

const isRetryTimer = (e) => e.kind === "sleep" && e.retry !== null && typeof e.retry === "object";

function entryRow(e, s, live, depth) {
  const at = num(e.at);
  const done = num(e.completion?.at);
  const waiting = WAITING.has(e.kind) && !e.completion && live;
  const end = done ?? (waiting && at !== null ? s.t1 : null);
  const failed = e.failure !== undefined || e.completion?.failure !== undefined;
  const data = { index: e.index, ...(typeof e.ctx === "string" ? { ctx: e.ctx } : {}) };
  if (isRetryTimer(e)) {
    // The durable timer between two attempts of step `name` (docs/sdk.md, "Run options").
    const result = failed ? outcome(e, live) : [
      h("span", { class: "failure retry-error" }, String(e.retry.error ?? "")),
      waiting ? h("span", { class: "waiting" }, " · next attempt waiting…") : null,
    ];
    return row("li", "entry retry-timer", data, depth, [
      e.index, h("span", { class: "kind retry" }, "retry timer"),
      `retry timer for step ${e.name ?? "?"} after attempt ${e.retry.attempt ?? "?"}`,
      offset(s, at), took(at, done), track(s, at, end, waiting ? "open" : "bad"), result]);
  }
  return row("li", `entry kind-${e.kind}${failed ? " failed" : ""}`, data, depth, [
    e.index, h("span", { class: "kind" }, e.kind), entryName(e),
    offset(s, at), took(at, done), track(s, at, end, waiting ? "open" : failed ? "bad" : "ok"),
    outcome(e, live)]);
}

/** The journal as a tree: top-level nodes in index order; a node is an entry or a fan-out
 * `{id, entry, branches: Map(i -> [node]), outcome}`. An entry whose context names no
 * fan-out of this journal stays at the top level. */
function journalTree(journal) {
  const fans = new Map();
  for (const e of journal) {
    if (e.kind === "run" && typeof e.child === "string") {
      const id = typeof e.ctx === "string" ? `${e.ctx}/${e.index}` : String(e.index);
      fans.set(id, { id, entry: e, branches: new Map(), outcome: null });
    }
  }
  const top = [];
  for (const e of journal) {
    const node = fans.get(typeof e.ctx === "string" ? `${e.ctx}/${e.index}` : String(e.index)) ?? e;
    const ctx = typeof e.ctx === "string" ? e.ctx : null;
    const own = ctx === null ? undefined : fans.get(ctx);
    if (own && own.outcome === null && e.kind === "run" && node === e) { own.outcome = e; continue; }
    const cut = ctx === null ? -1 : ctx.lastIndexOf("/");
    const fan = cut < 0 ? undefined : fans.get(ctx.slice(0, cut));
    const i = cut < 0 ? NaN : Number(ctx.slice(cut + 1));
    if (!fan || !Number.isInteger(i) || i < 0) { top.push(node); continue; }
    if (!fan.branches.has(i)) fan.branches.set(i, []);
    fan.branches.get(i).push(node);
  }
  return top;
}

const firstAt = (nodes) => {
  for (const n of nodes) { const at = num((n.entry ?? n).at); if (at !== null) return at; }
  return null;
};

/** Branch i of `fan`: its name, status and result, from the outcome when it is journaled,
 * else from the branch's own result entry (NAME[i] for a map, i:fn for a parallel). */
function branchFacts(fan, i, nodes, live) {
  const { name, child } = fan.entry;
  const ended = (n) => !n.entry && n.kind === "run" && (child === "map" ? n.name === `${name}[${i}]`
    : child === "parallel" ? String(n.name ?? "").startsWith(`${i}:`) : n.name === name);
  const last = nodes.filter(ended).at(-1);
  const label = child === "map" ? `${name}[${i}]`
    : child === "parallel" ? (last?.name ?? `${i}:…`) : name;
  const decided = fan.outcome;
  let status = live ? "running" : "unfinished";
  let result = null;
  if (decided && child === "child") result = decided;
  else if (decided) result = decided.value?.items?.[i] ?? null;
  else if (last) result = last;
  if (result?.status) status = result.status;
  else if (result?.failure !== undefined) status = "failed";
  else if (result && "value" in result) status = "succeeded";
  return { label, status, result, last };
}

function counts(items) {
  const n = {};
  for (const item of items) n[item?.status] = (n[item?.status] ?? 0) + 1;
  return ["succeeded", "failed", "started", "not_started"].filter((k) => n[k])
    .map((k) => `${n[k]} ${k.replace("_", " ")}`).join(" · ");
}

/** What a fan-out ended with: its reason and branch counts (a child: its value or failure). */
function decision(fan, live) {
  const o = fan.outcome;
  if (!o) {
    return live ? h("span", { class: "waiting" }, "running…") : h("span", { class: "muted" }, "no outcome");
  }
  if (fan.entry.child === "child") return outcome(o, live);
  const items = Array.isArray(o.value?.items) ? o.value.items : [];
  return h("span", { class: "decision" },
    h("span", { class: "reason mono" }, String(o.value?.reason ?? "?")),
    items.length ? ` · ${counts(items)}` : "");
}

function fold(key, collapsed) {
  return {
    open: !collapsed.has(key),
    ontoggle: (ev) => (ev.target.open ? collapsed.delete(key) : collapsed.add(key)),
  };
}

function nodesView(nodes, s, live, depth, collapsed) {
  return nodes.map((n) => (n.entry ? fanView(n, s, live, depth, collapsed) : entryRow(n, s, live, depth)));
}

function branchView(fan, i, nodes, s, live, depth, collapsed) {
  const { label, status, result, last } = branchFacts(fan, i, nodes, live);
  const from = firstAt(nodes);
  const to = num(last?.at);
  const running = status === "running" || status === "started";
  const end = to ?? (running && live && from !== null ? s.t1 : null);
  const failed = status === "failed";
  const ctx = `${fan.id}/${i}`;
  const value = result === null ? (running && live ? h("span", { class: "waiting" }, "running…") : "")
    : result.failure !== undefined ? outcome({ failure: result.failure }, live)
      : "value" in result ? jsonBlock(result.value) : "";
  const head = row("summary", `branch-head${failed ? " failed" : ""}`, { ctx }, depth, [
    "", h("span", { class: "kind branch", title: `context ${ctx}` }, "branch"),
    [h("span", { class: "twisty" }), h("span", { class: "branch-name" }, label), " ", badge(status)],
    offset(s, from), took(from, to),
    track(s, from, end, running && live ? "open" : failed ? "bad" : "ok"), value]);
  const body = nodes.length ? h("ol", { class: "tl-nested" }, nodesView(nodes, s, live, depth + 1, collapsed))
    : h("div", { class: "tl-row tl-empty muted" }, h("span", {}), h("span", {}),
      h("span", { style: { paddingLeft: `${(depth + 1) * 18}px` } }, "no entries"));
  return h("li", { class: "branch", dataset: { ctx, branch: i, status } },
    h("details", fold(ctx, collapsed), head, body));
}

function fanView(fan, s, live, depth, collapsed) {
  const e = fan.entry;
  const declared = Number.isInteger(e.value?.branches) ? e.value.branches : 0;
  const items = Array.isArray(fan.outcome?.value?.items) ? fan.outcome.value.items.length : 0;
  const n = Math.max(declared, items, ...[...fan.branches.keys()].map((i) => i + 1));
  const at = num(e.at);
  const done = num(fan.outcome?.at);
  const end = done ?? (live && at !== null ? s.t1 : null);
  const failed = fan.outcome?.failure !== undefined;
  const bad = failed ? " failed" : "";
  const head = row("summary", `entry fanout-head kind-run${bad}`, { index: e.index }, depth, [
    e.index, [h("span", { class: "kind" }, e.kind), " ", h("span", { class: "kind fan" }, e.child)],
    [h("span", { class: "twisty" }), e.name ?? "",
      h("span", { class: "muted" }, ` · ${n} branch${n === 1 ? "" : "es"}`)],
    offset(s, at), took(at, done),
    track(s, at, end, done === null && live ? "open" : failed ? "bad" : "ok"), decision(fan, live)]);
  const branches = [];
  for (let i = 0; i < n; i++) {
    branches.push(branchView(fan, i, fan.branches.get(i) ?? [], s, live, depth + 1, collapsed));
  }
  const o = fan.outcome;
  const closing = o && row("li", `entry fanout-outcome kind-run${bad}`, { index: o.index, ctx: fan.id }, depth + 1, [
    o.index, h("span", { class: "kind" }, o.kind), `${o.name ?? ""} → outcome`,
    offset(s, num(o.at)), "", track(s, num(o.at), null, failed ? "bad" : "ok"), decision(fan, live)]);
  return h("li", { class: "fanout", dataset: { index: e.index, child: e.child, fan: fan.id } },
    h("details", fold(fan.id, collapsed), head, h("ol", { class: "tl-nested" }, branches, closing)));
}

function timeline(inv, live, collapsed) {
  const s = scale(inv, live);
  const head = h("li", { class: "tl-row tl-head" },
    h("span", {}, "#"), h("span", {}, "kind"), h("span", {}, "name"), h("span", {}, "at"),
    h("span", {}, "took"),
    h("span", { class: "axis" }, h("span", {}, "0"), h("span", {}, duration(s.t1 - s.t0))),
    h("span", {}, "result / error"));
  const rows = nodesView(journalTree(inv.journal || []), s, live, 0, collapsed);
  const retries = (inv.retries || []).map((r) => {
    const at = num(r.at);
    return row("li", "retry", null, 0, [
      "", h("span", { class: "kind retry" }, "retry"), `attempt ${r.attempt ?? "?"}`,
      offset(s, at), "", track(s, at, null, "bad"),
      h("span", { class: "failure" }, r.error ?? "")]);
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
  const buttons = ACTIONS.map(([action, label, question]) =>
    h("button", {
      type: "button", onclick: () => act(action, question), dataset: { action }, disabled: true,
      title: "loading…",
    }, label));
  const actions = h("div", { class: "actions" }, buttons);
  const enable = (status) => {
    for (const button of buttons) {
      const why = whyNot(button.dataset.action, status);
      button.disabled = why !== null;
      button.title = why === null ? `${button.textContent} this invocation` : why;
    }
  };
  const restart = h("div", { hidden: true }, restartForm(id, (text, isError) => {
    notice.textContent = text;
    notice.className = isError ? "notice error" : "notice";
    notice.hidden = false;
  }));
  main.append(
    h("p", {}, h("a", { href: "#/invocations" }, "← Invocations")),
    h("h1", { class: "mono" }, id), actions, restart, notice, body);

  let stop = () => {};
  const collapsed = new Set(); // folded fan-outs and branches, kept across refreshes
  const refresh = async () => {
    try {
      const inv = await api(`invocations/${encodeURIComponent(id)}`);
      const live = !TERMINAL.has(inv.status);
      restart.hidden = live;  // a finished invocation only (the server refuses the rest)
      enable(inv.status);
      clear(body, summary(inv), timeline(inv, live, collapsed));
      if (!live) stop();
    } catch (err) {
      clear(body, errorBox(err));
      if (err.status === 404) stop();
    }
  };
  stop = poll(refresh, REFRESH_MS);
  return () => stop();
}
