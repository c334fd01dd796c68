// The single page: session, navigation and routing (`#/secrets`, `#/secrets/<id>`, `#/chains`,
// `#/chains/<id>`, `#/integrations`, `#/integrations/<id>`, `#/providers`, `#/providers/<id>`,
// `#/users`, `#/customers`, `#/roles`, `#/audit`, `#/login`).

import { api, can, el, field, fill, session, showErrors, clearErrors } from "./dom.js";
import { secretsPage, secretPage } from "./secrets.js";
import { chainsPage, chainPage } from "./chains.js";
import { integrationsPage, integrationPage } from "./integrations.js";
import { providersPage, providerPage } from "./providers.js";
import { usersPage, customersPage, rolesPage, settingsPage, tenantsPage } from "./directory.js";
import { auditPage } from "./audit.js";

const root = document.getElementById("app");

const routes = [
  [/^#\/secrets$/, () => secretsPage()],
  [/^#\/secrets\/([\w-]+)$/, (id) => secretPage(id)],
  [/^#\/chains$/, () => chainsPage()],
  [/^#\/chains\/([\w-]+)$/, (id) => chainPage(id)],
  [/^#\/integrations$/, () => integrationsPage()],
  [/^#\/integrations\/([\w-]+)$/, (id) => integrationPage(id)],
  [/^#\/providers$/, () => providersPage()],
  [/^#\/providers\/([\w-]+)$/, (id) => providerPage(id)],
  [/^#\/users$/, () => usersPage()],
  [/^#\/customers$/, () => customersPage()],
  [/^#\/roles$/, () => rolesPage()],
  [/^#\/audit$/, () => auditPage()],
  [/^#\/settings$/, () => settingsPage()],
  [/^#\/tenants$/, () => tenantsPage()],
];

function navigation() {
  const link = (href, label, show = true) => (show ? el("a", { href, class: location.hash.startsWith(href) ? "active" : null }, label) : null);
  // A heading only above the pages the role has.
  const group = (title, ...links) => (links.some(Boolean) ? [el("div", { class: "group" }, title), ...links] : []);
  return el(
    "nav",
    { class: "sidebar", "aria-label": "Main" },
    el("div", { class: "brand" }, "Veil"),
    link("#/chains", "Rule chains", can("RULE_CHAIN", "READ")),
    link("#/integrations", "Integrations", can("INTEGRATION", "READ")),
    group("Security",
      link("#/secrets", "Secrets storage", can("SECRET", "READ")),
      link("#/providers", "Secret providers", can("SECRET_PROVIDER", "READ")),
      link("#/audit", "Audit log", can("AUDIT_LOG", "READ"))),
    group("Access",
      link("#/users", "Users", can("USER", "READ")),
      link("#/customers", "Customers", can("CUSTOMER", "READ")),
      link("#/roles", "Roles", can("ROLE", "READ")),
      link("#/settings", "Settings", can("ROLE", "READ"))),
    group("System", link("#/tenants", "Tenants", can("TENANT", "READ"))),
    group("Help", el("a", { href: "/api-docs", id: "api-docs-link" }, "REST API")),
    el(
      "div",
      { class: "who" },
      el("span", { id: "username" }, session.user.username),
      el("button", { type: "button", class: "link", onclick: () => logout(false) }, "Log out"),
      el(
        "button",
        { type: "button", class: "link", id: "logout-everywhere", title: "End every session of this account, in every browser and terminal", onclick: () => logout(true) },
        "Log out everywhere",
      ),
    ),
  );
}

/** The first page the role has: secrets, rule chains, or (the system administrator) tenants. */
function homePage() {
  if (can("SECRET", "READ")) return "#/secrets";
  if (can("RULE_CHAIN", "READ")) return "#/chains";
  if (can("TENANT", "READ")) return "#/tenants";
  return "#/chains";
}

async function logout(everywhere) {
  try {
    await api("POST", everywhere ? "/api/auth/logout?everywhere=true" : "/api/auth/logout");
  } finally {
    session.user = null;
    location.hash = "#/login";
  }
}

function loginPage() {
  const username = el("input", { name: "username", autocomplete: "username", required: true, dataset: { field: "username" } });
  const password = el("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = el(
    "form",
    {
      class: "login",
      onsubmit: async (event) => {
        event.preventDefault();
        clearErrors(form);
        try {
          session.user = await api("POST", "/api/auth/session", { username: username.value, password: password.value });
          password.value = "";
          const home = homePage();
          if (location.hash === home) route();
          else location.hash = home;
        } catch (error) {
          password.value = "";
          showErrors(form, error);
        }
      },
    },
    el("h1", {}, "Veil"),
    field("Username", username),
    field("Password", password),
    el("div", { class: "form-errors", role: "alert" }),
    el("button", { type: "submit", class: "primary" }, "Log in"),
  );
  fill(root, form);
  username.focus();
}

async function route() {
  if (!session.user) {
    try {
      session.user = await api("GET", "/api/auth/session");
    } catch {
      return loginPage();
    }
  }
  if (location.hash === "#/login" || location.hash === "" || location.hash === "#/") {
    location.hash = homePage();
    return;
  }
  const main = el("main", { id: "page" });
  fill(root, el("div", { class: "shell" }, navigation(), main));
  for (const [pattern, page] of routes) {
    const match = location.hash.match(pattern);
    if (match) {
      try {
        fill(main, await page(...match.slice(1)));
      } catch (error) {
        fill(main, el("div", { class: "form-errors", role: "alert" }, error.message));
      }
      document.body.dataset.ready = String(performance.now());
      return;
    }
  }
  fill(main, el("p", {}, "No such page."));
}

window.addEventListener("hashchange", route);
route();
