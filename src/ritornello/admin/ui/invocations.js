// The invocation list: filters (status, service, key) live in the URL hash, so a filtered view
// can be bookmarked; the current page is fetched again every 2 s (live status).

import { api } from "./api.js";
import {
  badge, clear, errorBox, h, hashQuery, poll, setHashQuery, STATUSES, table, time,
} from "./dom.js";

const PAGE = 50;
const REFRESH_MS = 2000;

function filterForm(params, services) {
  const status = h("select", { name: "status", "aria-label": "status" },
    h("option", { value: "" }, "any status"),
    STATUSES.map((s) => h("option", { value: s, selected: params.get("status") === s }, s)));
  const service = h("select", { name: "service", "aria-label": "service" },
    h("option", { value: "" }, "any service"),
    services.map((s) => h("option", { value: s, selected: params.get("service") === s }, s)));
  const key = h("input", {
    name: "key", placeholder: "key", value: params.get("key") || "", "aria-label": "key",
  });
  const apply = (event) => {
    event.preventDefault();
    setHashQuery("#/invocations", { status: status.value, service: service.value, key: key.value });
  };
  return h("form", { class: "filters", onsubmit: apply },
    status, service, key,
    h("button", { type: "submit", class: "primary" }, "Filter"),
    h("a", { href: "#/invocations", class: "button" }, "Clear"));
}

function row(inv) {
  return h("tr", { class: "invocation", dataset: { id: inv.id } },
    h("td", {}, h("a", { href: `#/invocations/${encodeURIComponent(inv.id)}`, class: "mono" }, inv.id)),
    h("td", {}, inv.target),
    h("td", {}, badge(inv.status)),
    h("td", { class: "num" }, inv.attempt),
    h("td", { class: "num" }, inv.journal_length),
    h("td", {}, time(inv.created_at)),
    h("td", {}, time(inv.modified_at)));
}

export function invocationsView(main) {
  const params = hashQuery();
  const form = h("div", {});
  const list = h("div", { id: "invocation-list" });
  const status = h("span", { class: "muted live" }, "");
  const pager = h("div", { class: "pager" });
  main.append(h("h1", {}, "Invocations ", status), form, list, pager);

  api("services").then(
    (body) => clear(form, filterForm(params, body.services.map((s) => s.name).sort())),
    () => clear(form, filterForm(params, [])),
  );

  const cursor = params.get("cursor");
  const query = {
    status: params.get("status"), service: params.get("service"), key: params.get("key"),
    cursor, limit: PAGE,
  };
  const stop = poll(async () => {
    try {
      const body = await api("invocations", { query });
      clear(list, table(
        ["id", "target", "status", "attempt", "entries", "created", "modified"],
        body.invocations.map(row),
        "No invocation matches.",
      ));
      const next = body.next_cursor;
      const here = Object.fromEntries(params);
      clear(pager,
        cursor ? h("a", { class: "button", href: "#/invocations", onclick: (e) => {
          e.preventDefault(); setHashQuery("#/invocations", { ...here, cursor: "" });
        } }, "First page") : null,
        next !== null && next !== undefined ? h("a", { class: "button", href: "#", onclick: (e) => {
          e.preventDefault(); setHashQuery("#/invocations", { ...here, cursor: next });
        } }, "Next page") : null);
      status.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      clear(list, errorBox(err));
      status.textContent = "";
    }
  }, REFRESH_MS);
  return stop;
}
