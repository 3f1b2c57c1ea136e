// Named limits: each one's definition, where it comes from, and how it is used right now,
// fetched again every 2 s (set and delete them with `ritornello limits`).

import { api } from "./api.js";
import { clear, duration, errorBox, h, poll, table, time } from "./dom.js";

const REFRESH_MS = 2000;

/** "50/1s burst 10" (the burst only when above 1), or "–" without a rate. */
function rateText(limit) {
  if (limit.rate === null || limit.rate === undefined) return "–";
  const text = `${limit.rate}/${limit.per || "1s"}`;
  return limit.burst > 1 ? `${text} burst ${limit.burst}` : text;
}

function count(value) {
  return value === null || value === undefined ? "–" : String(value);
}

function row(limit) {
  const lastMinute = limit.granted_last_minute === null || limit.granted_last_minute === undefined
    ? h("span", { class: "muted", title: "counted by the orchestrator that owns this limit" }, "–")
    : `${limit.granted_last_minute} granted · ${count(limit.refused_last_minute)} refused`;
  return h("tr", { class: "limit", dataset: { name: limit.name } },
    h("td", { class: "mono" }, limit.name),
    h("td", { class: "num" }, count(limit.concurrency)),
    h("td", { class: "mono" }, rateText(limit)),
    h("td", {}, h("span", { class: `badge src-${limit.source}` }, limit.source)),
    h("td", { class: "num" }, limit.in_flight),
    h("td", { class: limit.waiting ? "num waiting" : "num" }, limit.waiting),
    h("td", { class: "num" }, duration(limit.oldest_wait_ms) || "–"),
    h("td", {}, lastMinute),
    h("td", {}, time(limit.updated_at)));
}

export function limitsView(main) {
  const list = h("div", { id: "limits" }, h("p", { class: "muted" }, "Loading…"));
  const status = h("span", { class: "muted live" }, "");
  main.append(h("h1", {}, "Limits ", status), list);
  return poll(async () => {
    try {
      const body = await api("limits");
      clear(list, table(
        ["name", "concurrency", "rate", "source", "in flight", "waiting", "oldest wait",
          "last minute", "updated"],
        body.limits.map(row),
        "No limit is defined: ritornello limits set NAME --concurrency N"));
      status.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      clear(list, err.status === 404
        ? h("p", { class: "muted" }, "This server has no limits API.")
        : errorBox(err));
      status.textContent = "";
    }
  }, REFRESH_MS);
}
