// Secrets storage: the list (search, paging), add (Text or File; a stored value or linked to a
// secret provider), change value / description (a linked secret: its source), share, delete
// (blocked by a dialog listing the users), and a secret's page with its versions (rollback,
// verify) or its source and fetch status, usages and audit trail. Values go in through password
// inputs that are never prefilled; none comes back.

import { rotationPanel, stagePending } from "./rotation.js";
import {
  KEEP_OPEN, allPages, api, base64File, can, dialog, el, field, fill, iconButton, pageHeader, pager, session, toast,
  when,
} from "./dom.js";

const PAGE_SIZE = 50;

/** Customers by id (empty when the caller may not list them). */
async function customerNames() {
  const own = session.user.customerId ? new Map([[session.user.customerId, session.user.customerName]]) : new Map();
  if (!can("CUSTOMER", "READ")) return own;
  try {
    return new Map((await allPages("/api/customers")).map((c) => [c.id, c.name]));
  } catch {
    return new Map();
  }
}

/** The allowed destinations input: one host pattern per line. */
function destinationsInput(current = []) {
  const area = el("textarea", {
    name: "allowedDestinations",
    rows: 3,
    placeholder: "anywhere — or one per line: api.example.com, *.loriot.io, 10.0.0.5:8443",
    dataset: { field: "allowedDestinations" },
  });
  area.value = current.join("\n");
  return area;
}

function destinationsOf(input) {
  return input.value.split("\n").map((p) => p.trim()).filter(Boolean);
}

/** The value input of a secret form: a password field for TEXT, a file chooser for FILE. */
function valueInput(kind, required) {
  if (kind === "FILE") {
    const chosen = el("span", { class: "file-name", id: "chosen-file" }, "No file chosen");
    const input = el("input", {
      type: "file",
      name: "file",
      required,
      dataset: { field: "file" },
      onchange: () => fill(chosen, input.files[0] ? input.files[0].name : "No file chosen"),
    });
    return { element: el("div", { class: "file-input" }, input, chosen), input };
  }
  const input = el("input", {
    type: "password",
    name: "value",
    autocomplete: "new-password",
    required,
    dataset: { field: "value" },
  });
  return { element: input, input };
}

/** The tenant's secret providers ([{id, name, type, …}]), or null when the user may not list them. */
async function providerList() {
  if (!can("SECRET_PROVIDER", "READ")) return null;
  try {
    return (await api("GET", "/api/secret-providers")).data;
  } catch {
    return null;
  }
}

/** The settings of a source each provider type takes besides its key (unknown types: all). */
const SOURCE_OPTIONS = {
  files: [],
  exec: [],
  "aws-secrets-manager": ["field", "version", "stage"],
  "vault-kv2": ["field", "version"],
};

const SOURCE_LABELS = {
  field: ["Field", "A key of the secret's JSON (AWS) or data (Vault); empty: the whole value, or its only field."],
  version: ["Version", "A fixed version (AWS VersionId, Vault version number); empty: the current one."],
  stage: ["Stage", "AWS version stage; empty: AWSCURRENT."],
};

const KEY_HINTS = {
  files: "A file name in the provider's directory.",
  exec: "The key the program is asked for.",
  "aws-secrets-manager": "A secret id or ARN.",
  "vault-kv2": "The secret's path under the mount.",
};

let keyLists = 0;

/**
 * A linked secret's source: its provider (a select of `providers`; a text input when the user may
 * not list them), its key (offering the keys the provider lists) and the settings the provider's
 * type takes. `current`: the source shown first. Returns `{element, value()}`.
 */
function sourceFields(providers, current = {}) {
  const provider = providers
    ? el("select", { name: "provider", dataset: { field: "source.provider" } },
      providers.map((p) => el("option", { value: p.name, selected: p.name === current.provider }, `${p.name} (${p.type})`)),
      current.provider && !providers.some((p) => p.name === current.provider)
        ? el("option", { value: current.provider, selected: true }, `${current.provider} (not found)`)
        : null)
    : el("input", { name: "provider", required: true, value: current.provider || "", autocomplete: "off", dataset: { field: "source.provider" } });
  const listId = `source-keys-${++keyLists}`;
  const offered = el("datalist", { id: listId });
  const key = el("input", { name: "sourceKey", required: true, value: current.key || "", list: listId, autocomplete: "off", dataset: { field: "source.key" } });
  const keyHint = el("small", {});
  const extra = Object.fromEntries(Object.keys(SOURCE_LABELS).map((o) =>
    [o, el("input", { name: `source${o[0].toUpperCase()}${o.slice(1)}`, value: current[o] || "", autocomplete: "off", dataset: { field: `source.${o}` } })]));
  const extraHolder = el("div", {});
  const chosen = () => (providers || []).find((p) => p.name === provider.value);
  const options = () => {
    const p = chosen();
    return p && SOURCE_OPTIONS[p.type] ? SOURCE_OPTIONS[p.type] : Object.keys(SOURCE_LABELS);
  };
  const showExtra = () => {
    const p = chosen();
    fill(keyHint, (p && KEY_HINTS[p.type]) || "The value's name in the provider.");
    fill(extraHolder, options().map((o) => field(SOURCE_LABELS[o][0], extra[o], SOURCE_LABELS[o][1])));
  };
  // The provider's keys, asked for once the key field is used (a listing may take a while).
  let asked = null;
  const offerKeys = async () => {
    const p = chosen();
    if (!p || asked === p.name) return;
    asked = p.name;
    fill(offered);
    try {
      const answer = await api("GET", `/api/secret-providers/${p.id}/keys`);
      if (asked === p.name) fill(offered, (answer.keys || []).slice(0, 2000).map((k) => el("option", { value: k })));
    } catch {
      // No offer: the key is typed.
    }
  };
  key.addEventListener("focus", offerKeys);
  provider.addEventListener("change", () => {
    showExtra();
    asked = null;
    fill(offered);
  });
  showExtra();
  return {
    element: el("div", { class: "source-fields" },
      field("Provider", provider),
      el("label", { class: "field" }, el("span", { class: "label" }, "Key"), key, keyHint),
      offered,
      extraHolder),
    value() {
      const source = { provider: provider.value, key: key.value };
      for (const o of options()) if (extra[o].value !== "") source[o] = extra[o].value;
      return source;
    },
  };
}

function sameSource(a, b) {
  const keys = ["provider", "key", ...Object.keys(SOURCE_LABELS)];
  return keys.every((k) => (a[k] ?? "") === (b[k] ?? ""));
}

/** A linked secret's source as one line of text: `k8s: api-token (field user)`. */
function sourceText(source) {
  const more = Object.keys(SOURCE_LABELS).filter((o) => source[o]).map((o) => `${o} ${source[o]}`);
  return `${source.provider}: ${source.key}${more.length ? ` (${more.join(", ")})` : ""}`;
}

/**
 * The Add secret dialog; resolves with the created secret, or null. `source` ({provider, key})
 * opens it on "Linked to a provider"; `storedOnly` offers no link (a provider's credentials).
 */
export async function addSecretDialog({ accepts = "ANY", suggestedName = "", source = null, storedOnly = false } = {}) {
  const kinds = accepts === "ANY" ? ["TEXT", "FILE"] : [accepts];
  let kind = kinds[0];
  const name = el("input", { name: "name", required: true, value: suggestedName, dataset: { field: "name" } });
  const description = el("input", { name: "description", dataset: { field: "description" } });
  const destinations = destinationsInput();
  const providers = storedOnly ? null : await providerList();
  // Linking is offered to those who may see providers (or who came from one).
  const linkable = !storedOnly && (providers !== null || source !== null);
  let mode = linkable && source ? "linked" : "stored";
  const linked = linkable && (providers === null || providers.length) ? sourceFields(providers, source || {}) : null;
  const noProvider = el("p", { class: "empty", id: "no-provider" }, "No secret provider yet: ",
    can("SECRET_PROVIDER", "READ") ? el("a", { href: "#/providers" }, "add one on the Secret providers page") : "ask a tenant administrator to add one", ".");
  const valueHolder = el("div", { class: "field" });
  let value;
  const showValue = () => {
    if (mode === "linked") {
      value = null;
      fill(valueHolder, linked ? linked.element : noProvider);
      return;
    }
    value = valueInput(kind, true);
    fill(valueHolder, el("span", { class: "label" }, kind === "FILE" ? "File" : "Value"), value.element);
  };
  showValue();
  const modeChoice = linkable ? el(
    "div",
    { class: "segmented", role: "radiogroup", "aria-label": "Where the value is" },
    [["stored", "Stored value"], ["linked", "Linked to a provider"]].map(([m, label]) =>
      el("label", {}, el("input", {
        type: "radio",
        name: "mode",
        value: m,
        checked: m === mode,
        onchange: () => {
          mode = m;
          showValue();
        },
      }), label)),
  ) : null;
  const typeChoice = el(
    "div",
    { class: "segmented", role: "radiogroup", "aria-label": "Type" },
    kinds.map((k) =>
      el("label", {}, el("input", {
        type: "radio",
        name: "type",
        value: k,
        checked: k === kind,
        onchange: () => {
          kind = k;
          if (mode === "stored") showValue();
        },
      }), k === "TEXT" ? "Text" : "File"),
    ),
  );
  return dialog(
    "Add secret",
    el("div", {}, typeChoice, field("Name", name), field("Description", description), modeChoice, valueHolder,
      field("Allowed destinations", destinations, "Hosts this value may be sent to; empty: anywhere.")),
    {
      submit: "Add",
      id: "add-secret",
      onsubmit: async () => {
        let created;
        if (mode === "linked") {
          if (!linked) throw new Error("Add a secret provider first");
          const body = { name: name.value, type: kind, source: linked.value() };
          if (description.value) body.description = description.value;
          const allowed = destinationsOf(destinations);
          if (allowed.length) body.allowedDestinations = allowed;
          return api("POST", "/api/secrets", body);
        }
        if (kind === "FILE") {
          const form = new FormData();
          form.append("name", name.value);
          form.append("type", "FILE");
          if (description.value) form.append("description", description.value);
          const file = value.input.files[0];
          if (file) form.append("file", file, file.name);
          for (const pattern of destinationsOf(destinations)) form.append("allowedDestinations", pattern);
          created = await api("POST", "/api/secrets", form);
        } else {
          const body = { name: name.value, type: "TEXT", value: value.input.value };
          if (description.value) body.description = description.value;
          const allowed = destinationsOf(destinations);
          if (allowed.length) body.allowedDestinations = allowed;
          created = await api("POST", "/api/secrets", body);
        }
        value.input.value = "";
        return created;
      },
    },
  );
}

/** When a secret expires: `expiresAt`, else its certificate's `notAfter`. */
function expiry(secret) {
  return secret.expiresAt || (secret.certificate && secret.certificate.notAfter) || null;
}

/** `expired` or `expiring` (within 30 days) for the expiry cell, so it stands out. */
function expiryClass(secret) {
  const at = expiry(secret);
  if (!at) return "expires";
  if (at <= Date.now()) return "expires expired";
  return at - Date.now() < 30 * 86_400_000 ? "expires expiring" : "expires";
}

/** A time as the value of a datetime-local input (local time), or "". */
function localInput(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

/** A toast for a saved secret, with what looks wrong with the value it was sent (`warnings`). */
function savedToast(message, saved) {
  const warnings = (saved && saved.warnings) || [];
  if (!warnings.length) return toast(message);
  toast(`${message}. Check the value: it ${warnings.map((w) => w.message).join("; it ")}.`, true);
}

/** What a change of `secret` reaches (GET …/impact), as a short list; nothing when the user
 *  may not change it or nothing uses it. */
async function impactOf(secret) {
  if (!can("SECRET", "WRITE") || session.user.customerId) return null;
  let impact;
  try {
    impact = await api("GET", `/api/secrets/${secret.id}/impact`);
  } catch {
    return null;
  }
  const rows = impact.consumers.map((c) => el("li", { dataset: { reconnects: c.reconnects } },
    c.type === "RULE_CHAIN" ? "Rule chain " : "Integration ", el("strong", {}, c.name),
    c.node ? ` — node '${c.node}'` : "", el("code", {}, ` ${c.field}`),
    c.reconnects ? el("span", { class: "badge" }, " reconnects") : "",
    el("small", {}, ` · ${c.messagesPerMinute.toFixed(1)}/min in the last hour`)));
  const shared = impact.customers.length ? el("p", {}, `Shared with ${impact.customers.map((c) => c.name).join(", ")}.`) : null;
  if (!rows.length && !shared) return el("p", { class: "impact", id: "impact" }, "Nothing uses this secret.");
  return el("div", { class: "impact", id: "impact" },
    rows.length ? el("p", {}, `A new value reaches ${rows.length} place${rows.length === 1 ? "" : "s"}${impact.reconnecting ? `, ${impact.reconnecting} of them reconnect` : ""}:`) : null,
    rows.length ? el("ul", {}, rows) : null, shared);
}

/** Check-and-set: a change based on `secret` as it was read (someone else's change in between is
 *  refused with 412, shown in the dialog, instead of being overwritten). */
function basedOn(secret) {
  return { "If-Match": `"${secret.version}"` };
}

/** Change value (and description): the name is shown but cannot be changed. */
async function changeDialog(secret) {
  if (secret.source) return changeLinkedDialog(secret);
  const name = el("input", { name: "name", value: secret.name, disabled: true, "aria-readonly": "true" });
  const description = el("input", { name: "description", value: secret.description || "", dataset: { field: "description" } });
  const value = valueInput(secret.type, false);
  const destinations = destinationsInput(secret.allowedDestinations || []);
  const maxVersions = el("input", { type: "number", name: "maxVersions", min: 1, max: 100, value: secret.maxVersions, dataset: { field: "maxVersions" } });
  const expiresAt = el("input", { type: "datetime-local", name: "expiresAt", value: localInput(secret.expiresAt), dataset: { field: "expiresAt" } });
  // "Test first": the new value becomes a pending one, tried on every consumer before promotion.
  let testFirst = false;
  // A plain button (Enter still means "Change now"), which submits the form marked as a test.
  const testButton = el("button", { type: "button", dataset: { action: "test-first" }, onclick: (event) => {
    testFirst = true;
    event.target.closest("form").requestSubmit();
  } }, "Test first");
  const staged = await dialog(
    `Change secret '${secret.name}'`,
    el(
      "div",
      {},
      field("Name", name, "A secret's name cannot be changed: configurations refer to it by name."),
      field("Description", description),
      field(secret.type === "FILE" ? "New file" : "New value", value.element, "Leave empty to keep the current value."),
      field("Allowed destinations", destinations, "Hosts this value may be sent to; empty: anywhere."),
      field("Versions kept", maxVersions, "How many versions keep their value (1–100), the current one included."),
      field("Expires", expiresAt, "When the value stops working (a token's known expiry); empty: never, or the certificate's end."),
      await impactOf(secret),
      el("p", { class: "hint" }, "Change now: every consumer uses the new value from its next message on. Test first: every consumer tries it (connect, log in, a TLS handshake) while keeping the current one; you promote it from the secret's page."),
      testButton,
    ),
    {
      submit: "Change now",
      id: "change-secret",
      onsubmit: async () => {
        const first = testFirst;
        testFirst = false;
        const body = {};
        if (description.value !== (secret.description || "")) body.description = description.value;
        if (secret.type === "FILE" && value.input.files[0]) {
          body.value = await base64File(value.input.files[0]);
          body.fileName = value.input.files[0].name;
        } else if (secret.type === "TEXT" && value.input.value) body.value = value.input.value;
        const allowed = destinationsOf(destinations);
        if (allowed.join(",") !== (secret.allowedDestinations || []).join(",")) body.allowedDestinations = allowed;
        if (Number(maxVersions.value) !== secret.maxVersions) body.maxVersions = Number(maxVersions.value);
        if (expiresAt.value !== localInput(secret.expiresAt)) body.expiresAt = expiresAt.value ? new Date(expiresAt.value).getTime() : null;
        value.input.value = "";
        if (first) return { staged: await stagePending(secret, body) };
        if (!Object.keys(body).length) return null;
        return api("PATCH", `/api/secrets/${secret.id}`, body, basedOn(secret));
      },
    },
  );
  if (staged && staged.staged) {
    toast(`Version ${staged.staged.pending.version} is being tested on every consumer`);
    const page = `#/secrets/${secret.id}`;
    if (location.hash === page) location.reload();
    else location.hash = page;
    return null;
  }
  return staged;
}

/** A linked secret's change: its source (another key or provider), description, destinations,
 *  how many earlier values stay masked, expiry. Its value is changed in its provider, not here. */
async function changeLinkedDialog(secret) {
  const name = el("input", { name: "name", value: secret.name, disabled: true, "aria-readonly": "true" });
  const description = el("input", { name: "description", value: secret.description || "", dataset: { field: "description" } });
  const source = sourceFields(await providerList(), secret.source);
  const destinations = destinationsInput(secret.allowedDestinations || []);
  const maxVersions = el("input", { type: "number", name: "maxVersions", min: 1, max: 100, value: secret.maxVersions, dataset: { field: "maxVersions" } });
  const expiresAt = el("input", { type: "datetime-local", name: "expiresAt", value: localInput(secret.expiresAt), dataset: { field: "expiresAt" } });
  return dialog(
    `Change secret '${secret.name}'`,
    el(
      "div",
      {},
      field("Name", name, "A secret's name cannot be changed: configurations refer to it by name."),
      el("p", { class: "hint", id: "linked-note" }, `Its value stays in provider '${secret.source.provider}' and is changed there, not in Veil. Another key or provider here is fetched at the secret's next use.`),
      source.element,
      field("Description", description),
      field("Allowed destinations", destinations, "Hosts this value may be sent to; empty: anywhere."),
      field("Values kept masked", maxVersions, "How many fetched values (1–100), the current one included, stay masked in logs and debug events."),
      field("Expires", expiresAt, "When the value stops working (a token's known expiry); empty: never, or the certificate's end."),
      await impactOf(secret),
    ),
    {
      submit: "Save",
      id: "change-secret",
      onsubmit: async () => {
        const body = {};
        const next = source.value();
        if (!sameSource(next, secret.source)) body.source = next;
        if (description.value !== (secret.description || "")) body.description = description.value;
        const allowed = destinationsOf(destinations);
        if (allowed.join(",") !== (secret.allowedDestinations || []).join(",")) body.allowedDestinations = allowed;
        if (Number(maxVersions.value) !== secret.maxVersions) body.maxVersions = Number(maxVersions.value);
        if (expiresAt.value !== localInput(secret.expiresAt)) body.expiresAt = expiresAt.value ? new Date(expiresAt.value).getTime() : null;
        if (!Object.keys(body).length) return null;
        // The server refuses a change of `source` alone ("nothing to change"): the description
        // as it is goes with it (unchanged, it changes and audits nothing).
        if (!("description" in body)) body.description = secret.description || "";
        // No If-Match: a linked secret's version counts values fetched, not changes made here.
        return api("PATCH", `/api/secrets/${secret.id}`, body);
      },
    },
  );
}

/** A linked secret's source and fetch status in the list: `Linked to k8s: api-token · fetched …`. */
function linkedLine(secret) {
  const status = secret.status || {};
  return el("div", { class: "linked-source", dataset: { provider: secret.source.provider } },
    "Linked to ", sourceText(secret.source),
    status.lastFetchedTime ? ` · fetched ${when(status.lastFetchedTime)}` : " · not fetched yet",
    status.error ? el("div", { class: "fetch-error" }, `Last fetch failed: ${status.error}`) : null);
}

/** What uses a secret, as links to the chain (and node) or integration. */
/** " · last used …" for a configuration in a usage list (nothing when the answer has no time). */
function lastUsed(owner) {
  if (!("lastUsedTime" in owner)) return null;
  return el("small", { class: "last-used" }, ` · last used ${owner.lastUsedTime ? when(owner.lastUsedTime) : "never"}`);
}

export function usageList(usages) {
  const items = [];
  for (const chain of usages.RULE_CHAIN || []) {
    const nodes = (chain.nodes || []).map((n) => n.name || n.id).filter(Boolean);
    items.push(el("li", {}, "Rule chain ", el("a", { href: `#/chains/${chain.id}` }, chain.name),
      nodes.length ? ` — node ${nodes.map((n) => `'${n}'`).join(", ")}` : "", lastUsed(chain)));
  }
  for (const integration of usages.INTEGRATION || []) {
    items.push(el("li", {}, "Integration ", el("a", { href: `#/integrations/${integration.id}` }, integration.name), lastUsed(integration)));
  }
  return el("ul", { class: "usages" }, items);
}

/** Confirms and deletes; when the secret is in use, shows what uses it instead. True when deleted. */
export async function deleteSecret(secret) {
  const confirmed = await dialog("Delete secret", el("div", {}, el("p", {}, `Delete the secret '${secret.name}'? This cannot be undone.`), await impactOf(secret)), {
    submit: "Delete",
    id: "confirm-delete",
  });
  if (!confirmed) return false;
  try {
    await api("DELETE", `/api/secrets/${secret.id}`);
    toast(`Secret '${secret.name}' deleted`);
    return true;
  } catch (error) {
    if (error.code !== "secret_in_use") throw error;
    await dialog(
      "Secret is in use",
      el("div", {}, el("p", {}, `'${secret.name}' cannot be deleted while these configurations use it:`), usageList(error.body.references || {})),
      { submit: null, cancel: "Close", id: "in-use" },
    );
    return false;
  }
}

/** Share with a customer, or stop sharing. */
async function shareDialog(secret, customers) {
  const shared = new Set(secret.sharedWith || []);
  const select = el("select", { name: "customer", dataset: { field: "customerId" } },
    [...customers].filter(([id]) => !shared.has(id)).map(([id, name]) => el("option", { value: id }, name)));
  const current = el("ul", { class: "shares" }, [...shared].map((id) =>
    el("li", {}, customers.get(id) || id, " ", iconButton("×", `Stop sharing with ${customers.get(id) || id}`, async () => {
      await api("DELETE", `/api/secrets/${secret.id}/shares/${id}`);
      shared.delete(id);
      document.querySelector("#share-secret [data-action=cancel]").click();
      toast(`No longer shared with ${customers.get(id) || id}`);
    }))));
  return dialog(
    `Share '${secret.name}'`,
    el("div", {}, el("p", {}, "Customers a secret is shared with may use it in their configurations; nobody can read its value."), current, field("Share with", select)),
    {
      submit: "Share",
      id: "share-secret",
      onsubmit: async () => select.value && api("POST", `/api/secrets/${secret.id}/shares`, { customerId: select.value }),
    },
  );
}

/** `#/secrets`: Secrets storage. */
export async function secretsPage() {
  let page = 0;
  let search = "";
  const customers = await customerNames();
  const body = el("div", { id: "secrets-table" });
  const load = async () => {
    const query = new URLSearchParams({ page, pageSize: PAGE_SIZE });
    if (search) query.set("textSearch", search);
    const result = await api("GET", `/api/secrets?${query}`);
    const rows = result.data.map((s) =>
      el(
        "tr",
        { dataset: { name: s.name } },
        el("td", {}, el("a", { href: `#/secrets/${s.id}` }, s.name), s.source ? linkedLine(s) : null),
        el("td", {}, s.type === "FILE" ? "File" : "Text"),
        el("td", {}, s.description || ""),
        el("td", { class: "num" }, s.version),
        el("td", {}, when(s.updatedTime)),
        el("td", { class: "last-used" }, s.lastUsedTime ? when(s.lastUsedTime) : "never"),
        el("td", { class: expiryClass(s) }, expiry(s) ? when(expiry(s)) : ""),
        el("td", {}, (s.sharedWith || []).map((id) => customers.get(id) || id).join(", ")),
        el(
          "td",
          { class: "row-actions" },
          can("SECRET", "WRITE") ? iconButton("✎", s.source ? "Change source" : "Change value", async () => {
            const changed = await changeDialog(s);
            if (changed) {
              savedToast(`Secret '${s.name}' changed`, changed);
              load();
            }
          }) : null,
          can("SECRET", "WRITE") && customers.size ? iconButton("⇄", "Share", async () => { await shareDialog(s, customers); load(); }) : null,
          can("SECRET", "DELETE") ? iconButton("🗑", "Delete", async () => (await deleteSecret(s)) && load(), { class: "icon danger" }) : null,
        ),
      ),
    );
    fill(
      body,
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, ["Name", "Type", "Description", "Version", "Updated", "Last used", "Expires", "Shared with", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 9, class: "empty" }, search ? "No secret matches." : "No secrets yet."))),
      ),
      pager(page, PAGE_SIZE, result, (p) => {
        page = p;
        load();
      }),
    );
  };
  let typing;
  const searchInput = el("input", {
    type: "search",
    placeholder: "Search by name",
    "aria-label": "Search secrets",
    oninput: () => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        search = searchInput.value.trim();
        page = 0;
        load();
      }, 200);
    },
  });
  await load();
  return el(
    "section",
    {},
    pageHeader(
      "Secrets storage",
      searchInput,
      can("SECRET", "CREATE") ? iconButton("+", "Add secret", async () => {
        const added = await addSecretDialog();
        if (added) {
          savedToast(`Secret '${added.name}' added`, added);
          load();
        }
      }, { class: "icon add" }) : null,
    ),
    body,
  );
}

/** Asks before bringing version `version`'s value back; resolves with the secret after it. */
function rollbackDialog(secret, version) {
  return dialog(
    `Roll back '${secret.name}'`,
    el("p", {}, `Version ${version.version}'s value (fingerprint ${version.fingerprint || "—"}) becomes version ${secret.version + 1}. Every chain and integration that uses the secret uses it from its next message on.`),
    {
      submit: "Roll back",
      id: "rollback-secret",
      onsubmit: () => api("POST", `/api/secrets/${secret.id}/rollback`, { version: version.version }, basedOn(secret)),
    },
  );
}

/** Checks a candidate value against the versions; shows which one had it. */
function verifyDialog(secret) {
  const value = valueInput(secret.type, true);
  const answer = el("p", { id: "verify-answer", role: "status" });
  return dialog(
    `Check a value of '${secret.name}'`,
    el("div", {}, field(secret.type === "FILE" ? "File" : "Value", value.element, "Compared by fingerprint; nothing is shown or stored."), answer),
    {
      submit: "Check",
      cancel: "Close",
      id: "verify-secret",
      onsubmit: async () => {
        const candidate = secret.type === "FILE" ? await base64File(value.input.files[0]) : value.input.value;
        value.input.value = "";
        const result = await api("POST", `/api/secrets/${secret.id}/verify`, { value: candidate });
        fill(answer, result.matches ? `It is the value of version ${result.version}.` : "It matches no version of this secret.");
        return KEEP_OPEN;
      },
    },
  );
}

/** The versions table of a secret's page (newest first, paged), with Roll back on kept ones. */
async function versionsTable(secret) {
  const versions = await allPages(`/api/secrets/${secret.id}/versions`);
  const label = { PENDING: "Pending", CURRENT: "Current", PREVIOUS: "Kept", DESTROYED: "Destroyed" };
  return el(
    "table",
    { id: "secret-versions" },
    el("thead", {}, el("tr", {}, ["Version", "State", "Created", "By", "Fingerprint", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, versions.map((v) =>
      el("tr", { dataset: { version: v.version, state: v.state } },
        el("td", {}, v.version),
        el("td", {}, label[v.state] || v.state),
        el("td", {}, when(v.createdTime)),
        el("td", {}, v.createdBy || "—"),
        el("td", {}, el("code", {}, v.fingerprint || "—")),
        el("td", {}, v.state === "PREVIOUS" && can("SECRET", "WRITE")
          ? el("button", { type: "button", dataset: { action: "rollback" }, onclick: async () => {
            if (await rollbackDialog(secret, v)) {
              toast(`Rolled back to version ${v.version}'s value`);
              location.reload();
            }
          } }, "Roll back")
          : null)))),
  );
}

/** A linked secret's facts: its source (the provider linked to its page) and how its fetches went. */
async function linkedFacts(secret) {
  const providers = await providerList();
  const provider = (providers || []).find((p) => p.name === secret.source.provider);
  const status = secret.status || {};
  const more = Object.keys(SOURCE_LABELS).filter((o) => secret.source[o]).map((o) => [`, ${o} `, el("code", {}, secret.source[o])]);
  return [
    el("dt", {}, "Source"),
    el("dd", { id: "secret-source" }, "Provider ",
      provider ? el("a", { href: `#/providers/${provider.id}` }, secret.source.provider) : secret.source.provider,
      ", key ", el("code", {}, secret.source.key), more),
    el("dt", {}, "Last fetched"),
    el("dd", { id: "last-fetched" }, status.lastFetchedTime ? when(status.lastFetchedTime) : "not yet (it is fetched when a rule chain or an integration uses it)"),
    el("dt", {}, "Fetched values"),
    el("dd", { id: "fetched-values" }, status.fetchedValues ?? 0),
    status.error ? [el("dt", {}, "Last fetch error"), el("dd", { id: "fetch-error", class: "status error" }, status.error)] : null,
  ];
}

/** `#/secrets/<id>`: a secret, its versions, what uses it, and its audit trail. */
export async function secretPage(id) {
  const secret = await api("GET", `/api/secrets/${id}`);
  const customers = await customerNames();
  const usages = await api("GET", `/api/secrets/${id}/usages`);
  // A linked secret's value is changed in its provider: no versions to roll back to, nothing to stage.
  const linked = Boolean(secret.source);
  const versions = linked ? null : await versionsTable(secret);
  const rotation = linked ? null : await rotationPanel(secret);
  const sourceFacts = linked ? await linkedFacts(secret) : null;
  let trail = null;
  if (can("AUDIT_LOG", "READ")) {
    const page = await api("GET", `/api/audit-logs?secretId=${id}&pageSize=50`);
    trail = el(
      "table",
      { id: "secret-audit" },
      el("thead", {}, el("tr", {}, ["Time", "Actor", "Action", "Outcome", "Details"].map((h) => el("th", {}, h)))),
      el("tbody", {}, page.data.map((e) =>
        el("tr", {}, el("td", {}, when(e.time)), el("td", {}, e.actorName), el("td", {}, e.action), el("td", {}, e.outcome), el("td", {}, typeof e.details === "string" ? e.details : JSON.stringify(e.details ?? ""))))),
    );
  }
  const empty = !(usages.RULE_CHAIN || []).length && !(usages.INTEGRATION || []).length;
  return el(
    "section",
    {},
    pageHeader(
      `Secret '${secret.name}'`,
      can("SECRET", "WRITE") ? iconButton("✎", linked ? "Change source" : "Change value", async () => (await changeDialog(secret)) && (location.hash = `#/secrets/${id}`, location.reload())) : null,
      can("SECRET", "WRITE") && !session.user.customerId && !linked ? iconButton("✓", "Check a value", () => verifyDialog(secret)) : null,
      can("SECRET", "DELETE") ? iconButton("🗑", "Delete", async () => (await deleteSecret(secret)) && (location.hash = "#/secrets")) : null,
    ),
    el(
      "dl",
      { class: "facts" },
      el("dt", {}, "Type"), el("dd", {}, secret.type === "FILE" ? `File${secret.fileName ? ` (${secret.fileName})` : ""}` : "Text"),
      el("dt", {}, "Description"), el("dd", {}, secret.description || ""),
      sourceFacts,
      el("dt", {}, "Version"), el("dd", { id: "secret-version" }, secret.version),
      el("dt", {}, linked ? "Values kept masked" : "Versions kept"), el("dd", {}, secret.maxVersions),
      el("dt", {}, "Created"), el("dd", {}, when(secret.createdTime)),
      el("dt", {}, "Updated"), el("dd", {}, when(secret.updatedTime)),
      el("dt", {}, "Last used"), el("dd", { id: "last-used" }, secret.lastUsedTime ? when(secret.lastUsedTime) : "never"),
      el("dt", {}, "Expires"), el("dd", { id: "expires", class: expiryClass(secret) }, expiry(secret) ? when(expiry(secret)) : "never"),
      secret.certificate ? [el("dt", {}, "Certificate"), el("dd", { id: "certificate" },
        `${secret.certificate.subject} — issued by ${secret.certificate.issuer}, valid ${when(secret.certificate.notBefore)} to ${when(secret.certificate.notAfter)}`,
        secret.certificate.certificates > 1 ? ` (${secret.certificate.certificates} certificates in the file)` : "",
        el("br"), el("small", {}, `SHA-256 ${secret.certificate.sha256Fingerprint}`))] : null,
      secret.privateKey ? [el("dt", {}, "Private key"), el("dd", { id: "private-key" }, `${secret.privateKey.algorithm}${secret.privateKey.encrypted ? ", encrypted" : ""}`)] : null,
      el("dt", {}, "Shared with"), el("dd", {}, (secret.sharedWith || []).map((c) => customers.get(c) || c).join(", ") || "—"),
      el("dt", {}, "Allowed destinations"), el("dd", { id: "allowed-destinations" }, (secret.allowedDestinations || []).join(", ") || "anywhere"),
      el("dt", {}, "Placeholder"), el("dd", {}, el("code", {}, `$<secret:${secret.name}>`)),
    ),
    rotation,
    el("h2", {}, "Versions"),
    linked
      ? el("p", { class: "empty", id: "linked-versions" }, `Its value stays in provider '${secret.source.provider}' and is changed there: Veil keeps no copy, so it has no versions to roll back to and nothing to stage. A value changed there is used once the provider's cache period is over.`)
      : versions,
    el("h2", {}, "Used by"),
    empty ? el("p", { class: "empty" }, "No rule chain or integration uses this secret.") : usageList(usages),
    trail ? el("h2", {}, "Audit trail") : null,
    trail,
  );
}
