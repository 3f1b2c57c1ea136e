// Restart-as-new on the invocation page (docs/admin-api.md, "restart-as-new"): keep the journal
// before entry N and run on from there on a deployment, or dry-run it first. Shown for a
// finished invocation only (completed or killed); the server checks everything again and its
// refusal (a cut inside an unfinished call, an unknown deployment...) is shown as it says it.

import { api } from "./api.js";
import { h } from "./dom.js";

/** The restart form for invocation `id`; `report(text, isError)` shows the outcome. */
export function restartForm(id, report) {
  const from = h("input", { type: "number", min: "0", value: "0", name: "from", size: "4",
    title: "keep the journal before this entry (0 or 1: only the input)" });
  const deployment = h("input", { type: "text", value: "latest", name: "deployment", size: "14",
    title: "latest, keep, or a deployment id" });
  const run = async (dryRun) => {
    const query = { from: from.value || "0", deployment: deployment.value.trim() || "latest" };
    if (dryRun) query.dry_run = "true";
    try {
      const answer = await api(`invocations/${encodeURIComponent(id)}/restart-as-new`,
        { method: "PATCH", query });
      if (!dryRun) {
        location.hash = `#/invocations/${encodeURIComponent(answer.new_invocation_id)}`;
        return;
      }
      const m = answer.mismatch;
      const where = m ? ` (entry ${m.index ?? "?"}: the journal has ${m.journal_has ?? "?"}, ` +
        `the handler did ${m.handler_did ?? "?"})` : "";
      report(`dry run on ${answer.deployment_id}: ${answer.matches ? "" : "no match: "}` +
        `${answer.message}${where}`, !answer.matches);
    } catch (err) {
      report(`restart-as-new failed: ${err.message}`, true);
    }
  };
  return h("form", { class: "actions restart", onsubmit: (e) => { e.preventDefault(); run(false); } },
    h("label", {}, "from entry ", from),
    h("label", {}, "on ", deployment),
    h("button", { type: "button", dataset: { action: "dry-run" }, onclick: () => run(true) },
      "Dry run"),
    h("button", { type: "submit", class: "primary", dataset: { action: "restart-as-new" } },
      "Restart as new"));
}
