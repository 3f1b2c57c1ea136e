// Object state: pick a virtual object or workflow and a key; shows every state entry and the
// state's version (read-only here; `ritornello state set` writes it with that version).

import { api } from "./api.js";
import { clear, errorBox, h, hashQuery, jsonBlock, setHashQuery, table } from "./dom.js";

export function stateView(main) {
  const params = hashQuery();
  const service = h("select", { name: "service", "aria-label": "service" });
  const key = h("input", { name: "key", placeholder: "key", value: params.get("key") || "", "aria-label": "key" });
  const result = h("div", { id: "state" });
  const show = (event) => {
    event.preventDefault();
    setHashQuery("#/state", { service: service.value, key: key.value });
  };
  main.append(
    h("h1", {}, "Object state"),
    h("form", { class: "filters", onsubmit: show }, service, key,
      h("button", { type: "submit", class: "primary" }, "Show")),
    result);

  api("services").then((body) => {
    const keyed = body.services.filter((s) => s.ty !== "Service").map((s) => s.name).sort();
    const wanted = params.get("service");
    if (wanted && !keyed.includes(wanted)) keyed.unshift(wanted);
    clear(service, keyed.map((name) => h("option", { value: name, selected: name === wanted }, name)));
    if (!keyed.length) clear(result, h("p", { class: "muted" }, "No virtual object or workflow is registered."));
  }, (err) => clear(result, errorBox(err)));

  const wanted = params.get("service");
  if (wanted && params.get("key") !== null) {
    const path = `services/${encodeURIComponent(wanted)}/state/${encodeURIComponent(params.get("key"))}`;
    api(path).then((body) => {
      const entries = Object.entries(body.state || {}).sort(([a], [b]) => a.localeCompare(b));
      clear(result,
        h("p", {}, h("strong", {}, `${body.service}/${body.key}`), ` · version ${body.version}`),
        table(["name", "value"],
          entries.map(([name, value]) => h("tr", {}, h("td", { class: "mono" }, name), h("td", {}, jsonBlock(value)))),
          "No state under this key."));
    }, (err) => clear(result, errorBox(err)));
  }
  return () => {};
}
