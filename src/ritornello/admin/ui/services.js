// Services (#/services): each one's type, visibility, handlers and description, linked to its
// page (#/services/NAME, service.js).

import { api } from "./api.js";
import { clear, errorBox, h, table } from "./dom.js";

const link = (name) => h("a", { href: `#/services/${encodeURIComponent(name)}` }, name);

export function servicesView(main) {
  const list = h("div", { id: "services" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, "Services"), list);
  api("services").then((body) => {
    clear(list, table(["service", "type", "public", "handlers", "description"],
      body.services.map((s) => h("tr", { class: "service", dataset: { name: s.name } },
        h("td", {}, link(s.name)), h("td", {}, s.ty), h("td", {}, s.public ? "yes" : "no"),
        h("td", {}, s.handlers.map((x) => x.name).join(", ")),
        h("td", {}, s.documentation ?? ""))),
      "No service yet: ritornello deployments register URI"));
  }, (err) => clear(list, errorBox(err)));
  return () => {};
}
