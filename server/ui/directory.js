// Users, customers and roles of the tenant, for those allowed to see them.

import { allPages, api, can, clearErrors, dialog, el, field, fill, iconButton, pageHeader, pager, showErrors, toast, when } from "./dom.js";

const PAGE_SIZE = 50;

/** A table that pages through `path` (`row(item)` per item), redrawn in place. */
async function pagedTable(id, path, headers, row, empty) {
  let page = 0;
  const holder = el("div", {});
  const load = async () => {
    const result = await api("GET", `${path}${path.includes("?") ? "&" : "?"}page=${page}&pageSize=${PAGE_SIZE}`);
    fill(holder, table(id, headers, result.data.map(row), empty), pager(page, PAGE_SIZE, result, (p) => {
      page = p;
      load();
    }));
  };
  await load();
  return holder;
}

const RESOURCES = ["SECRET", "RULE_CHAIN", "INTEGRATION", "CUSTOMER", "USER", "ROLE", "AUDIT_LOG", "SECRET_PROVIDER"];
const OPERATIONS = ["READ", "CREATE", "WRITE", "DELETE", "USE"];

function table(id, headers, rows, empty) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: headers.length, class: "empty" }, empty))));
}

function deleteButton(resource, label, path) {
  if (!can(resource, "DELETE")) return null;
  return iconButton("🗑", `Delete ${label}`, async () => {
    if (!(await dialog("Delete", el("p", {}, `Delete ${label}?`), { submit: "Delete", id: "confirm-delete" }))) return;
    try {
      await api("DELETE", path);
      location.reload();
    } catch (error) {
      toast(error.message, true);
    }
  }, { class: "icon danger" });
}

async function customerMap() {
  if (!can("CUSTOMER", "READ")) return new Map();
  return new Map((await allPages("/api/customers")).map((c) => [c.id, c.name]));
}

/** `#/users` */
export async function usersPage() {
  const customers = await customerMap();
  const roles = can("ROLE", "READ") ? (await api("GET", "/api/roles")).data.map((r) => r.name) : ["TENANT_ADMIN", "CUSTOMER_USER"];
  const add = async () => {
    const username = el("input", { name: "username", required: true, dataset: { field: "username" } });
    const password = el("input", { name: "password", type: "password", autocomplete: "new-password", required: true, dataset: { field: "password" } });
    const role = el("select", { name: "roles", dataset: { field: "roles" } }, roles.map((r) => el("option", { value: r }, r)));
    const customer = el("select", { name: "customerId", dataset: { field: "customerId" } }, el("option", { value: "" }, "— none —"),
      [...customers].map(([id, name]) => el("option", { value: id }, name)));
    const created = await dialog("Add user", el("div", {}, field("Username", username), field("Password", password), field("Role", role), field("Customer", customer)), {
      submit: "Add",
      onsubmit: async () => {
        const body = { username: username.value, password: password.value, roles: [role.value] };
        if (customer.value) body.customerId = customer.value;
        password.value = "";
        return api("POST", "/api/users", body);
      },
    });
    if (created) location.reload();
  };
  return el("section", {}, pageHeader("Users", can("USER", "CREATE") ? iconButton("+", "Add user", add, { class: "icon add" }) : null),
    await pagedTable("users-table", "/api/users", ["Username", "Roles", "Customer", "Created", ""], (u) => el("tr", { dataset: { name: u.username } },
      el("td", {}, u.username), el("td", {}, u.roles.join(", ")), el("td", {}, u.customerId ? customers.get(u.customerId) || u.customerId : ""),
      el("td", {}, when(u.createdTime)), el("td", { class: "row-actions" }, deleteButton("USER", `user '${u.username}'`, `/api/users/${u.id}`))), "No users."));
}

/** `#/tenants`: the system administrator's tenants, each created with its first administrator. */
export async function tenantsPage() {
  const add = async () => {
    const name = el("input", { name: "name", required: true, dataset: { field: "name" } });
    const username = el("input", { name: "admin-username", autocomplete: "off", dataset: { field: "admin.username" } });
    const password = el("input", { name: "admin-password", type: "password", autocomplete: "new-password", dataset: { field: "admin.password" } });
    const created = await dialog("Add tenant", el("div", {}, field("Name", name),
      el("fieldset", {}, el("legend", {}, "Its first administrator (optional)"), field("Username", username), field("Password", password))), {
      submit: "Add",
      id: "add-tenant",
      onsubmit: async () => {
        const body = { name: name.value };
        if (username.value) body.admin = { username: username.value, password: password.value };
        password.value = "";
        return api("POST", "/api/tenants", body);
      },
    });
    if (created) {
      toast(`Tenant '${created.name}' added`);
      location.reload();
    }
  };
  return el("section", {}, pageHeader("Tenants", can("TENANT", "CREATE") ? iconButton("+", "Add tenant", add, { class: "icon add" }) : null),
    await pagedTable("tenants-table", "/api/tenants", ["Name", "Created", ""], (t) => el("tr", { dataset: { name: t.name } },
      el("td", {}, t.name), el("td", {}, when(t.createdTime)),
      el("td", { class: "row-actions" }, deleteButton("TENANT", `tenant '${t.name}' and everything in it`, `/api/tenants/${t.id}`))), "No tenants yet."));
}

/** `#/customers` */
export async function customersPage() {
  const add = async () => {
    const name = el("input", { name: "name", required: true, dataset: { field: "name" } });
    const created = await dialog("Add customer", field("Name", name), { submit: "Add", onsubmit: () => api("POST", "/api/customers", { name: name.value }) });
    if (created) location.reload();
  };
  return el("section", {}, pageHeader("Customers", can("CUSTOMER", "CREATE") ? iconButton("+", "Add customer", add, { class: "icon add" }) : null),
    await pagedTable("customers-table", "/api/customers", ["Name", "Created", ""], (c) => el("tr", { dataset: { name: c.name } },
      el("td", {}, c.name), el("td", {}, when(c.createdTime)), el("td", { class: "row-actions" }, deleteButton("CUSTOMER", `customer '${c.name}'`, `/api/customers/${c.id}`))), "No customers yet."));
}

/** `#/roles`: built-in roles and custom ones (a grid of resources × operations). */
export async function rolesPage() {
  const roles = (await api("GET", "/api/roles")).data;
  const grants = (r) => r.permissions.map((g) => `${g.resource}: ${g.operations.join(", ")}`).join("; ");
  const add = async () => {
    const name = el("input", { name: "name", required: true, dataset: { field: "name" } });
    const boxes = [];
    const grid = el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, el("th", {}, ""), OPERATIONS.map((o) => el("th", {}, o)))),
      el("tbody", {}, RESOURCES.map((r) => el("tr", {}, el("th", {}, r), OPERATIONS.map((o) => {
        const box = el("input", { type: "checkbox", "aria-label": `${r} ${o}` });
        boxes.push([r, o, box]);
        return el("td", {}, box);
      })))));
    const created = await dialog("Add role", el("div", { dataset: { field: "permissions" } }, field("Name", name), grid), {
      submit: "Add",
      onsubmit: () => {
        const permissions = RESOURCES.map((resource) => ({ resource, operations: boxes.filter(([r, , b]) => r === resource && b.checked).map(([, o]) => o) }))
          .filter((g) => g.operations.length);
        return api("POST", "/api/roles", { name: name.value, permissions });
      },
    });
    if (created) location.reload();
  };
  return el("section", {}, pageHeader("Roles", can("ROLE", "CREATE") ? iconButton("+", "Add role", add, { class: "icon add" }) : null),
    table("roles-table", ["Name", "Kind", "Grants", ""], roles.map((r) => el("tr", { dataset: { name: r.name } },
      el("td", {}, r.name), el("td", {}, r.builtIn ? "built-in" : "custom"), el("td", { class: "grants" }, grants(r)),
      el("td", { class: "row-actions" }, r.builtIn ? null : deleteButton("ROLE", `role '${r.name}'`, `/api/roles/${r.id}`)))), "No roles."));
}

/** `#/settings`: the tenant's settings (tenant administrators change them). */
export async function settingsPage() {
  const settings = await api("GET", "/api/tenant-settings");
  const editable = can("ROLE", "WRITE");
  const options = [
    ["destinationsRequired", "Every secret must name its allowed destinations", "A secret without allowed destinations is then sent nowhere. Refused while a configuration would break."],
    ["casRequired", "A value change must name the version it is based on", "Changes without If-Match are refused (428), so nobody overwrites a change they have not seen."],
    ["strictValues", "Refuse suspicious values", "Values with surrounding spaces or quotes, a trailing newline, or too short to mask are refused instead of accepted with a warning."],
  ];
  const boxes = new Map(options.map(([key]) => [key, el("input", { type: "checkbox", name: key, checked: settings[key], disabled: !editable })]));
  // Expiry notices: a chain (by name) and the thresholds in days.
  const chains = can("RULE_CHAIN", "READ") ? await allPages("/api/rule-chains") : [];
  const notices = settings.expiryNotices;
  const noticeChain = el("select", { name: "expiryChain", disabled: !editable, dataset: { pointer: "/expiryNotices/ruleChainId" } },
    el("option", { value: "" }, "— no notices —"),
    chains.map((c) => el("option", { value: c.id, selected: notices && notices.ruleChainId === c.id }, c.name)));
  const noticeDays = el("input", { name: "expiryDays", value: notices ? notices.daysBefore.join(", ") : "30, 7, 1", disabled: !editable, dataset: { pointer: "/expiryNotices/daysBefore" } });
  const noticesValue = () => noticeChain.value
    ? { ruleChainId: noticeChain.value, daysBefore: noticeDays.value.split(",").map((d) => d.trim()).filter(Boolean).map(Number) }
    : null;
  const form = el("form", {
    class: "card settings",
    onsubmit: async (event) => {
      event.preventDefault();
      clearErrors(form);
      try {
        const change = Object.fromEntries([...boxes].map(([key, box]) => [key, box.checked]));
        change.expiryNotices = noticesValue();
        const saved = await api("PUT", "/api/tenant-settings", change);
        for (const [key, box] of boxes) box.checked = saved[key];
        toast("Settings saved");
      } catch (error) {
        for (const [key, box] of boxes) box.checked = settings[key];
        showErrors(form, error);
      }
    },
  },
  options.map(([key, label, help]) => [
    el("label", { class: "field check" }, boxes.get(key), el("span", { class: "label" }, label)),
    el("small", {}, help),
  ]),
  el("label", { class: "field" }, el("span", { class: "label" }, "Expiry notices go to"), noticeChain,
    el("small", {}, "A SECRET_EXPIRY message (secret, version, days left; never a value) goes into this rule chain as a secret nears its expiry.")),
  el("label", { class: "field" }, el("span", { class: "label" }, "Days before the expiry"), noticeDays),
  el("div", { class: "form-errors", role: "alert" }),
  editable ? el("div", { class: "buttons" }, el("button", { type: "submit", class: "primary", dataset: { action: "save" } }, "Save")) : null);
  return el("section", {}, pageHeader("Settings"), form);
}
