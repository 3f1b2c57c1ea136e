// Services (#/services) and one service's page (#/services/NAME): its settings as the admin
// API shows them (retention, timeouts, visibility, description, metadata; what an operator
// set is marked), its handlers, and a form that changes the settings (PATCH /services/NAME).

import { api } from "./api.js";
import { clear, errorBox, h, table } from "./dom.js";

const DURATIONS = [
  ["journal_retention", "journal retention"],
  ["idempotency_retention", "idempotency retention"],
  ["workflow_completion_retention", "workflow retention"],
  ["inactivity_timeout", "inactivity timeout"],
  ["abort_timeout", "abort timeout"],
];

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

function settingsList(svc) {
  const overridden = new Set(svc.overrides || []);
  const row = (key, label, value) => value === null || value === undefined ? null : [
    h("dt", {}, label),
    h("dd", { dataset: { setting: key } }, String(value),
      overridden.has(key) ? h("span", { class: "muted" }, " (set by an operator)") : null),
  ];
  const meta = Object.entries(svc.metadata || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  return h("dl", { class: "facts settings" },
    row("documentation", "description", svc.documentation),
    row("public", "public", svc.public ? "yes" : "no"),
    DURATIONS.map(([key, label]) => row(key, label, svc[key])),
    row("metadata", "metadata", meta || null));
}

function editForm(svc, done) {
  const inputs = {};
  const problem = h("p", { class: "error", id: "settings-error", hidden: true });
  const visibility = h("select", { name: "public", "aria-label": "public" },
    h("option", { value: "", selected: true }, "unchanged"),
    h("option", { value: "true" }, "public"),
    h("option", { value: "false" }, "private (handlers only)"));
  const fields = DURATIONS
    .filter(([key]) => key !== "workflow_completion_retention" || svc.ty === "Workflow")
    .map(([key, label]) => {
      inputs[key] = h("input", { name: key, placeholder: svc[key] ?? "", "aria-label": label });
      return h("label", {}, label, inputs[key]);
    });
  const onsubmit = async (event) => {
    event.preventDefault();
    const body = {};
    if (visibility.value) body.public = visibility.value === "true";
    for (const [key, input] of Object.entries(inputs)) if (input.value.trim()) body[key] = input.value.trim();
    if (!Object.keys(body).length) {
      clear(problem, "Change at least one setting.");
      problem.hidden = false;
      return;
    }
    try {
      done(await api(`services/${encodeURIComponent(svc.name)}`, { method: "PATCH", body }));
    } catch (err) {
      clear(problem, err instanceof Error ? err.message : String(err));
      problem.hidden = false;
    }
  };
  return h("form", { id: "settings-form", class: "stack", onsubmit },
    h("h2", {}, "Change settings"),
    h("label", {}, "ingress", visibility), fields, problem,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Save")));
}

export function serviceView(main, name) {
  const box = h("div", { id: "service" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("p", {}, h("a", { href: "#/services" }, "← services")), box);
  const render = (svc) => clear(box,
    h("h1", {}, svc.name, " ", h("span", { class: "muted" }, `(${svc.ty})`)),
    settingsList(svc),
    h("h2", {}, "Handlers"),
    table(["handler", "type", "public", "description"],
      svc.handlers.map((x) => h("tr", { class: "handler", dataset: { name: x.name } },
        h("td", {}, x.name), h("td", {}, x.ty), h("td", {}, x.public ? "yes" : "no"),
        h("td", {}, x.documentation ?? "")))),
    editForm(svc, render));
  api(`services/${encodeURIComponent(name)}`).then(render, (err) => clear(box, errorBox(err)));
  return () => {};
}
