// Staged rotation on a secret's page: a pending value is tested on every rule chain node and
// integration that uses the secret; the table of their answers refreshes while probes run, with
// Promote (anyway, when one failed), Test again and Drop.

import { api, can, dialog, el, fill, session, toast, when } from "./dom.js";

const RESULT = { OK: "OK", FAILED: "Failed", NOT_PROBED: "Not tested", PROBING: "Testing…" };

/** Stages `body.value` (and `body.fileName` for a FILE secret) as the pending value of `secret`;
 *  any other change in `body` is saved first. Problems of the pending value name the value field. */
export async function stagePending(secret, body) {
  const { value, fileName, ...rest } = body;
  if (value === undefined) {
    const error = new Error("Enter a new value to test");
    error.body = { problems: [{ field: "value", message: "enter the new value to test it first" }] };
    throw error;
  }
  let version = secret.version;
  if (Object.keys(rest).length) {
    version = (await api("PATCH", `/api/secrets/${secret.id}`, rest, { "If-Match": `"${version}"` })).version;
  }
  const pending = { pendingValue: value };
  if (fileName) pending.fileName = fileName;
  try {
    return await api("PATCH", `/api/secrets/${secret.id}`, pending, { "If-Match": `"${version}"` });
  } catch (error) {
    for (const problem of error.body?.problems || []) if (problem.field === "pendingValue") problem.field = "value";
    throw error;
  }
}

function probeRows(rotation) {
  return rotation.consumers.map((r) =>
    el("tr", { dataset: { result: r.result, type: r.type } },
      el("td", {}, r.type === "RULE_CHAIN" ? "Rule chain" : "Integration"),
      el("td", {}, r.name),
      el("td", {}, r.node || "—"),
      el("td", {}, el("code", {}, r.field || "—")),
      el("td", { class: `probe ${r.result.toLowerCase()}` }, RESULT[r.result] || r.result),
      el("td", {}, r.reason)));
}

function summaryText(rotation) {
  const s = rotation.summary;
  const parts = [`${s.ok} OK`, `${s.failed} failed`, `${s.notProbed} not tested`];
  if (s.probing) parts.push(`${s.probing} testing`);
  return `Version ${rotation.pending.version} (fingerprint ${rotation.pending.fingerprint}) staged by ${rotation.pending.createdBy || "—"} ${when(rotation.pending.createdTime)}: ${parts.join(", ")}.`;
}

/** Promotes the pending value; when a probe failed, asks whether to promote it anyway. */
async function promote(secret) {
  try {
    return await api("POST", `/api/secrets/${secret.id}/rotation/promote`, {});
  } catch (error) {
    if (error.body?.error !== "probes_failed") throw error;
    const anyway = await dialog("Promote anyway?", el("p", {}, error.body.message), { submit: "Promote anyway", id: "promote-anyway" });
    if (!anyway) return null;
    return api("POST", `/api/secrets/${secret.id}/rotation/promote`, { force: true });
  }
}

/** The pending value of `secret` and its probe table (refreshed each second while probes run),
 *  or nothing when no value is pending. */
export async function rotationPanel(secret) {
  if (!can("SECRET", "WRITE") || session.user.customerId) return null;
  let rotation;
  try {
    rotation = await api("GET", `/api/secrets/${secret.id}/rotation`);
  } catch {
    return null;
  }
  const summary = el("p", { id: "rotation-summary", role: "status" }, summaryText(rotation));
  const body = el("tbody", {}, probeRows(rotation));
  const act = (label, action, run) => el("button", { type: "button", dataset: { action } , onclick: async () => {
    try {
      if ((await run()) !== null) location.reload();
    } catch (error) {
      toast(error.message || String(error), true);
    }
  } }, label);
  const panel = el("section", { id: "rotation", class: "rotation" },
    el("h2", {}, "Pending value"),
    summary,
    el("table", { id: "rotation-probes" },
      el("thead", {}, el("tr", {}, ["Used by", "Name", "Node", "Field", "Result", "Reason"].map((h) => el("th", {}, h)))),
      body),
    el("div", { class: "actions" },
      act("Promote", "promote", async () => {
        const promoted = await promote(secret);
        if (promoted) toast(`Version ${promoted.version} is now current`);
        return promoted;
      }),
      act("Test again", "probe-again", async () => {
        await api("POST", `/api/secrets/${secret.id}/rotation/probe`, {});
        return true;
      }),
      act("Drop", "drop-pending", async () => {
        await api("DELETE", `/api/secrets/${secret.id}/rotation`);
        toast("The pending value was dropped");
        return true;
      })));
  // Live while probes run, as long as the panel is on the page.
  const refresh = async () => {
    if (!panel.isConnected) return;
    try {
      rotation = await api("GET", `/api/secrets/${secret.id}/rotation`);
    } catch {
      return;
    }
    fill(summary, summaryText(rotation));
    fill(body, probeRows(rotation));
    if (rotation.summary.probing > 0) setTimeout(refresh, 1000);
  };
  if (rotation.summary.probing > 0) setTimeout(refresh, 1000);
  return panel;
}
