// Cron schedules: list, pause/resume, delete (create them with `ritornello schedules create`).

import { api } from "./api.js";
import { clear, errorBox, h, table, time } from "./dom.js";

export function schedulesView(main) {
  const list = h("div", { id: "schedules" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, "Schedules"), list);

  const change = async (s, method, suffix, question) => {
    if (question && !window.confirm(question)) return;
    try {
      await api(`schedules/${encodeURIComponent(s.id)}${suffix}`, { method });
      load();
    } catch (err) {
      list.prepend(errorBox(err));
    }
  };
  const row = (s) => h("tr", { dataset: { id: s.id } },
    h("td", { class: "mono" }, s.id),
    h("td", { class: "mono" }, s.cron, s.timezone && s.timezone !== "UTC" ? ` (${s.timezone})` : ""),
    h("td", {}, s.target, s.key ? ` [${s.key}]` : ""),
    h("td", {}, s.overlap),
    h("td", {}, h("span", { class: `badge ${s.paused ? "st-paused" : "st-running"}` }, s.paused ? "paused" : "active")),
    h("td", {}, time(s.last_fire_at)),
    h("td", {}, time(s.next_fire_at)),
    h("td", {}, s.last_invocation_id
      ? h("a", { class: "mono", href: `#/invocations/${encodeURIComponent(s.last_invocation_id)}` }, s.last_invocation_id)
      : "–"),
    h("td", { class: "actions" },
      s.paused
        ? h("button", { type: "button", onclick: () => change(s, "PATCH", "/resume") }, "Resume")
        : h("button", { type: "button", onclick: () => change(s, "PATCH", "/pause") }, "Pause"),
      h("button", { type: "button", onclick: () => change(s, "DELETE", "", `Delete schedule ${s.id}?`) }, "Delete")));

  const load = () => api("schedules").then((body) => {
    clear(list, table(
      ["id", "cron", "target", "overlap", "state", "last fire", "next fire", "last invocation", ""],
      body.schedules.map(row),
      "No schedule yet: ritornello schedules create --cron '*/5 * * * *' --target Service/handler"));
  }, (err) => clear(list, err.status === 404
    ? h("p", { class: "muted" }, "This server has no schedules API.")
    : errorBox(err)));
  load();
  return () => {};
}
