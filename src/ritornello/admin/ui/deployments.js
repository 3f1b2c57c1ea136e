// Deployments and the services each one serves.

import { api } from "./api.js";
import { clear, errorBox, h, table, time } from "./dom.js";

function services(dep) {
  return h("ul", { class: "plain" }, (dep.services || []).map((s) =>
    h("li", {}, h("a", { href: `#/services/${encodeURIComponent(s.name)}` }, h("strong", {}, s.name)),
      ` (${s.kind}): `,
      (s.handlers || []).map((hd) => hd.name).join(", "))));
}

export function deploymentsView(main) {
  const list = h("div", { id: "deployments" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, "Deployments"), list);
  api("deployments").then((body) => {
    clear(list, table(["id", "uri", "created", "services"],
      body.deployments.map((d) => h("tr", {},
        h("td", { class: "mono" }, d.id), h("td", { class: "mono" }, d.uri ?? d.arn ?? ""),
        h("td", {}, time(d.created_at)), h("td", {}, services(d)))),
      "No deployment is registered: ritornello deployments register URI"));
  }, (err) => clear(list, errorBox(err)));
  return () => {};
}
