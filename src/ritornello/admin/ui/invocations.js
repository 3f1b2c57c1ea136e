// The invocation list, newest first: filters (status, service, key; limit, the page size) live
// in the URL hash, so a filtered view can be bookmarked; the pages on screen are fetched again every 2 s (live
// status), and "Load older" adds the next page by the listing's cursor.

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

  const filters = {
    status: params.get("status"), service: params.get("service"), key: params.get("key"),
    limit: params.get("limit") || PAGE,
  };
  // Newest first. "Load older" follows the last page's next_cursor: one more page is kept on
  // screen, and each refresh walks the same number of pages again from the newest (the cursor
  // is a position, so a page never repeats or skips a row; new invocations appear on top).
  let pages = 1;
  let generation = 0;
  const load = async () => {
    const mine = ++generation;
    try {
      const rows = [];
      let cursor = null;
      let next = null;
      for (let n = 0; n < pages; n++) {
        const body = await api("invocations", { query: { ...filters, cursor } });
        rows.push(...body.invocations);
        next = body.next_cursor ?? null;
        if (next === null) break;
        cursor = next;
      }
      if (mine !== generation) return; // a newer load is under way
      clear(list, table(
        ["id", "target", "status", "attempt", "entries", "created", "modified"],
        rows.map(row),
        "No invocation matches.",
      ));
      clear(pager, next !== null ? h("button", {
        type: "button", class: "more", title: "the next page, older invocations",
        onclick: () => { pages += 1; load(); },
      }, "Load older") : h("span", { class: "muted end" }, rows.length ? "No older invocation." : ""));
      status.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (mine !== generation) return;
      clear(list, errorBox(err));
      status.textContent = "";
    }
  };
  return poll(load, REFRESH_MS);
}
