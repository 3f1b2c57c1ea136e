// One service (#/services/NAME): its handlers with their input and output (JSON schemas from
// the handlers' type hints, or a raw handler's content type), and its OpenAPI document
// (GET /services/NAME/openapi), shown and offered as a download (fetched with the token).

import { api } from "./api.js";
import { clear, errorBox, h, json, table } from "./dom.js";

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

export function serviceView(main, name) {
  const box = h("div", { id: "service" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, `Service ${name}`), box);
  Promise.all([
    api(`services/${encodeURIComponent(name)}`),
    api(`services/${encodeURIComponent(name)}/openapi`),
  ]).then(([svc, doc]) => {
    const paths = Object.keys(doc.paths || {});
    clear(box,
      h("p", {}, `${svc.ty} · deployment `, h("span", { class: "mono" }, svc.deployment_id)),
      table(["handler", "type", "input", "output"], svc.handlers.map((hd) =>
        h("tr", { class: "handler", dataset: { name: hd.name } },
          h("td", { class: "mono" }, hd.name), h("td", {}, hd.ty),
          h("td", {}, payload(hd, "input")), h("td", {}, payload(hd, "output"))))),
      h("h2", {}, "OpenAPI"),
      h("p", {}, `The ingress paths of ${name} as an OpenAPI 3.1 document: `, download(name, doc)),
      h("details", { id: "openapi" },
        h("summary", {}, `${paths.length} paths`),
        h("ul", { class: "plain mono" }, paths.map((p) => h("li", {}, `POST ${p}`))),
        h("pre", {}, json(doc))));
  }, (err) => clear(box, errorBox(err)));
  return () => {};
}
