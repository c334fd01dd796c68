// The audit log with filters (secret, actor, time range) and paging.

import { api, el, field, fill, pageHeader, pager, when } from "./dom.js";

const PAGE_SIZE = 50;

/** `#/audit` */
export async function auditPage() {
  let page = 0;
  const secret = el("input", { name: "secret", placeholder: "secret name", "aria-label": "Secret" });
  const actor = el("input", { name: "actor", placeholder: "user name", "aria-label": "Actor" });
  const from = el("input", { name: "from", type: "datetime-local", "aria-label": "From" });
  const to = el("input", { name: "to", type: "datetime-local", "aria-label": "To" });
  const body = el("div", { id: "audit-table" });
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
        el("tbody", {}, result.data.map((e) => el("tr", {},
          el("td", {}, when(e.time)), el("td", {}, e.actorName), el("td", {}, e.action),
          el("td", {}, [e.targetType, e.targetName].filter(Boolean).join(" ")), el("td", {}, e.outcome),
          el("td", { class: "details" }, typeof e.details === "string" ? e.details : JSON.stringify(e.details ?? "")))))),
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
