// The audit log with filters (secret, actor, time range) and paging.

import { allPages, api, can, el, field, fill, pageHeader, pager, when } from "./dom.js";

const PAGE_SIZE = 50;

const KINDS = { RULE_CHAIN: "rule chain", INTEGRATION: "integration" };

/** The configurations of a usage list (`{RULE_CHAIN: [{name, nodes}], INTEGRATION: [...]}`) in words. */
function usedBy(references) {
  const parts = [];
  const all = references || {};
  const kinds = ["RULE_CHAIN", "INTEGRATION", ...Object.keys(all).filter((k) => !KINDS[k])];
  for (const kind of kinds) {
    for (const o of all[kind] || []) {
      const nodes = (o.nodes || []).map((n) => n.name || n.id).filter(Boolean);
      parts.push(`${KINDS[kind] || kind} '${o.name}'${nodes.length ? ` (node ${nodes.map((n) => `'${n}'`).join(", ")})` : ""}`);
    }
  }
  return parts.join(", ");
}

/** An entry's details as a sentence (names, not ids); `names` maps configuration ids to names. */
function describe(e, names) {
  const d = (e.details && typeof e.details === "object") ? e.details : {};
  const owner = () => `${KINDS[d.ownerType] || d.ownerType || "configuration"} '${d.ownerName || names.get(d.ownerId) || d.ownerId || "?"}'`;
  switch (e.action) {
    case "CREATE": return `Created a ${d.type || ""} secret (version ${d.version})`;
    case "VALUE_CHANGE": return `Changed the value (now version ${d.version})`;
    case "ROLLBACK": return `Rolled back to the value of version ${d.fromVersion} (now version ${d.version})`;
    case "VERIFY": return d.matches ? `Checked a value: it is version ${d.version}'s` : "Checked a value: it matches no version";
    case "EXPIRY_CHANGE": return d.expiresAt ? `Expires ${new Date(d.expiresAt).toLocaleString()}` : "No longer has an expiry";
    case "MAX_VERSIONS_CHANGE": return `Keeps the values of the last ${d.maxVersions} versions`;
    case "DESCRIPTION_CHANGE": return "Changed the description";
    case "SOURCE_CHANGE": return d.source ? `Linked to provider '${d.source.provider}', key '${d.source.key}'` : "Changed the source";
    case "DESTINATIONS_CHANGE": return `May be sent to: ${(d.allowedDestinations || []).join(", ") || "anywhere"}`;
    case "DELETE": return `Deleted (it was at version ${d.version})`;
    case "DELETE_REFUSED": return `Not deleted: used by ${usedBy(d.references) || "a configuration"}`;
    case "SHARE": return `Shared with customer '${d.customerName || d.customerId}'`;
    case "UNSHARE": return `No longer shared with customer '${d.customerName || d.customerId}'`;
    case "UNSHARE_REFUSED": return `Still shared with customer '${d.customerName || d.customerId}': used by ${usedBy(d.references) || "its configurations"}`;
    case "USE": return `Used ${d.count} time${d.count === 1 ? "" : "s"} by ${owner()}`;
    case "BLOCKED_DESTINATION": return `${d.count} send${d.count === 1 ? "" : "s"} to ${d.destination} blocked, from ${owner()}${d.node ? ` (node '${d.node}')` : ""}`;
    case "LOGIN": return d.address ? `Logged in from ${d.address}` : "Logged in";
    case "LOGIN_FAILED": return d.address ? `Login failed from ${d.address}` : "Login failed";
    default: return "";
  }
}

/** `#/audit` */
export async function auditPage() {
  let page = 0;
  const secret = el("input", { name: "secret", placeholder: "secret name", "aria-label": "Secret" });
  const actor = el("input", { name: "actor", placeholder: "user name", "aria-label": "Actor" });
  const from = el("input", { name: "from", type: "datetime-local", "aria-label": "From" });
  const to = el("input", { name: "to", type: "datetime-local", "aria-label": "To" });
  const body = el("div", { id: "audit-table" });
  // Configuration names for the entries that name them by id.
  const names = new Map();
  if (can("RULE_CHAIN", "READ")) (await allPages("/api/rule-chains")).forEach((c) => names.set(c.id, c.name));
  if (can("INTEGRATION", "READ")) (await allPages("/api/integrations")).forEach((i) => names.set(i.id, i.name));
  const load = async () => {
    const query = new URLSearchParams({ page, pageSize: PAGE_SIZE });
    if (secret.value.trim()) {
      const found = await api("GET", `/api/secrets?pageSize=1&textSearch=${encodeURIComponent(secret.value.trim())}`);
      query.set("secretId", found.data[0] ? found.data[0].id : "00000000-0000-0000-0000-000000000000");
    }
    if (actor.value.trim()) query.set("actor", actor.value.trim());
    if (from.value) query.set("from", new Date(from.value).getTime());
    if (to.value) query.set("to", new Date(to.value).getTime());
    const result = await api("GET", `/api/audit-logs?${query}`);
    fill(body,
      el("table", {},
        el("thead", {}, el("tr", {}, ["Time", "Actor", "Action", "Target", "Outcome", "Details"].map((h) => el("th", {}, h)))),
        el("tbody", {}, result.data.map((e) => el("tr", { dataset: { action: e.action } },
          el("td", {}, when(e.time)), el("td", {}, e.actorName), el("td", {}, e.action),
          el("td", {}, [e.targetType, e.targetName].filter(Boolean).join(" ")), el("td", {}, e.outcome),
          el("td", { class: "details" }, el("span", { class: "sentence" }, describe(e, names)),
            el("details", {}, el("summary", {}, "JSON"), el("pre", {}, typeof e.details === "string" ? e.details : JSON.stringify(e.details ?? "", null, 2)))))))),
      pager(page, PAGE_SIZE, result, (p) => {
        page = p;
        load();
      }));
  };
  const filters = el("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    page = 0;
    load();
  } }, field("Secret", secret), field("Actor", actor), field("From", from), field("To", to), el("button", { type: "submit" }, "Filter"));
  await load();
  return el("section", {}, pageHeader("Audit log"), filters, body);
}
