// One service (#/services/NAME): its settings as the admin API shows them (retention, timeouts,
// visibility, description, metadata; what an operator set is marked), its handlers with their
// input and output (JSON schemas from the handlers' type hints, or a raw handler's content
// type), its OpenAPI document (GET /services/NAME/openapi, shown and offered as a download,
// fetched with the token), and a form that changes the settings (PATCH /services/NAME).

import { api } from "./api.js";
import { clear, errorBox, h, json, table } from "./dom.js";

const DURATIONS = [
  ["journal_retention", "journal retention"],
  ["idempotency_retention", "idempotency retention"],
  ["workflow_completion_retention", "workflow retention"],
  ["inactivity_timeout", "inactivity timeout"],
  ["abort_timeout", "abort timeout"],
];

/** A schema in a few words: its type or class name ("Order", "array of string"). */
function words(schema) {
  if (!schema || typeof schema !== "object" || !Object.keys(schema).length) return "any JSON";
  if (typeof schema.$ref === "string") return schema.$ref.split("/").pop();
  if (Array.isArray(schema.anyOf)) return schema.anyOf.map(words).join(" | ");
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`;
  if ("const" in schema) return JSON.stringify(schema.const);
  if (schema.type === "array" && schema.items) return `array of ${words(schema.items)}`;
  return schema.format ? `${schema.type} (${schema.format})` : String(schema.type ?? "any JSON");
}

function payload(handler, side) {
  const schema = handler[`${side}_json_schema`];
  const described = handler[`${side}_description`] || "";
  if (schema === null || schema === undefined) {
    return h("span", { class: "muted" }, described === "none" ? "none" : described);
  }
  const optional = side === "input" && described.startsWith("one of") ? " (optional)" : "";
  return h("details", { class: `schema ${side}` },
    h("summary", {}, words(schema) + optional), h("pre", {}, json(schema)));
}

/** A link that saves the document (a data: URL: the page's CSP lets it connect nowhere but
 * the API, and the document needs the token, which a plain link to the API would not carry). */
function download(name, doc) {
  const href = `data:application/json;charset=utf-8,${encodeURIComponent(json(doc))}`;
  return h("a", { id: "openapi-download", href, download: `${name}.openapi.json` },
    `${name}.openapi.json`);
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

function handlersTable(svc) {
  return table(["handler", "type", "input", "output", "public", "description"],
    svc.handlers.map((hd) => h("tr", { class: "handler", dataset: { name: hd.name } },
      h("td", { class: "mono" }, hd.name), h("td", {}, hd.ty),
      h("td", {}, payload(hd, "input")), h("td", {}, payload(hd, "output")),
      h("td", {}, hd.public ? "yes" : "no"), h("td", {}, hd.documentation ?? ""))));
}

function openapi(name, doc) {
  const paths = Object.keys(doc.paths || {});
  return [
    h("h2", {}, "OpenAPI"),
    h("p", {}, `The ingress paths of ${name} as an OpenAPI 3.1 document: `, download(name, doc)),
    h("details", { id: "openapi" },
      h("summary", {}, `${paths.length} paths`),
      h("ul", { class: "plain mono" }, paths.map((p) => h("li", {}, `POST ${p}`))),
      h("pre", {}, json(doc))),
  ];
}

function editForm(svc, save) {
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
      await save(body);
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
  const path = `services/${encodeURIComponent(name)}`;
  const box = h("div", { id: "service" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("p", {}, h("a", { href: "#/services" }, "← services")),
    h("h1", {}, `Service ${name}`), box);
  // a change of settings may change the document too (a private handler has no ingress path)
  const save = async (body) => {
    const svc = await api(path, { method: "PATCH", body });
    render(svc, await api(`${path}/openapi`));
  };
  const render = (svc, doc) => clear(box,
    h("p", {}, `${svc.ty} · deployment `, h("span", { class: "mono" }, svc.deployment_id)),
    settingsList(svc),
    h("h2", {}, "Handlers"),
    handlersTable(svc),
    openapi(name, doc),
    editForm(svc, save));
  Promise.all([api(path), api(`${path}/openapi`)])
    .then(([svc, doc]) => render(svc, doc), (err) => clear(box, errorBox(err)));
  return () => {};
}
