// Secret providers: where linked secrets' values live (a directory, a program, AWS Secrets
// Manager, a Vault KV v2 engine). The list; add and change in a form per type (a provider's
// credentials are stored secrets, picked by name and written as `$<secret:NAME>`); a provider's
// page with Test, its keys (each can become a linked secret) and the secrets linked to it; delete
// (refused while linked secrets come from it). Everything shown is text, never HTML.

import { allPages, api, can, dialog, el, field, fill, icon, iconButton, pageHeader, toast, when } from "./dom.js";
import { addSecretDialog } from "./secrets.js";

/** The provider types, as the API spells them, with their names in the page. */
export const PROVIDER_TYPES = {
  files: "Files (a directory)",
  exec: "Program (exec)",
  "aws-secrets-manager": "AWS Secrets Manager",
  "vault-kv2": "Vault KV v2",
};

const PLACEHOLDER = /^\$<secret:([^>]+)>$/;

function typeName(kind) {
  return PROVIDER_TYPES[kind] || kind;
}

/** The stored TEXT secrets the user may name as a credential (a linked one cannot be). */
async function credentialSecrets() {
  if (!can("SECRET", "READ")) return [];
  try {
    return (await allPages("/api/secrets")).filter((s) => s.type === "TEXT" && !s.source).map((s) => s.name);
  } catch {
    return [];
  }
}

/** Secrets linked to the provider `name`: [{id, name, source, status}] (empty when unreadable). */
async function linkedSecrets(name) {
  if (!can("SECRET", "READ")) return [];
  try {
    return (await allPages("/api/secrets")).filter((s) => s.source && s.source.provider === name);
  } catch {
    return [];
  }
}

/** A text input of the configuration (`configuration.<key>` names it in the API's problems). */
function textInput(key, value, attrs = {}) {
  return el("input", { name: key, value: value ?? "", autocomplete: "off", dataset: { field: `configuration.${key}` }, ...attrs });
}

/**
 * A credential: a select of the stored TEXT secrets (`secrets`: names), written as
 * `$<secret:NAME>`; "Create new" adds a secret and picks it. Returns `{element, value()}`.
 */
function secretPicker(key, label, current, secrets, { required = false, hint } = {}) {
  const match = typeof current === "string" ? current.trim().match(PLACEHOLDER) : null;
  const chosen = match ? match[1] : "";
  const names = [...secrets];
  if (chosen && !names.includes(chosen)) names.push(chosen);
  const select = el("select", { name: key, dataset: { field: `configuration.${key}`, secretPicker: "" } },
    el("option", { value: "" }, required ? "— choose a secret —" : "— none —"),
    names.map((n) => el("option", { value: n, selected: n === chosen }, n)));
  const create = can("SECRET", "CREATE")
    ? el("button", {
      type: "button",
      class: "link",
      dataset: { action: "create-secret" },
      onclick: async () => {
        const created = await addSecretDialog({ accepts: "TEXT", storedOnly: true });
        if (!created) return;
        if (![...select.options].some((o) => o.value === created.name)) select.append(el("option", { value: created.name }, created.name));
        select.value = created.name;
      },
    }, "Create new")
    : null;
  const element = el("div", { class: "field secret-field" },
    el("span", { class: "label" }, icon("🔑"), ` ${label}`, required ? el("span", { class: "required", title: "required" }, " *") : null),
    el("div", { class: "with-key" }, select, create),
    el("small", {}, hint || "A stored secret; the configuration names it as $<secret:NAME>."));
  return { element, value: () => (select.value ? `$<secret:${select.value}>` : undefined) };
}

/** Leaves out the keys whose value is undefined or "". */
function compact(object) {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined && v !== ""));
}

/** The configuration form of each type: `{element, value()}` from a configuration. */
const CONFIG_FORMS = {
  files(config) {
    const directory = textInput("directory", config.directory, { required: true, placeholder: "/run/secrets/app" });
    return {
      element: el("div", {}, field("Directory", directory,
        "An absolute path under a directory the server's operator allows (veil serve --provider-dir). Each file is a key; its bytes are the value.")),
      value: () => ({ directory: directory.value }),
    };
  },
  exec(config) {
    const command = el("textarea", {
      name: "command",
      rows: 3,
      spellcheck: "false",
      placeholder: "/usr/local/bin/secrets\n--flag",
      dataset: { field: "configuration.command" },
    });
    command.value = Array.isArray(config.command) ? config.command.join("\n") : "";
    const protocol = el("select", { name: "protocol", dataset: { field: "configuration.protocol" } },
      el("option", { value: "json", selected: config.protocol !== "argument" }, "json — the key on standard input, JSON out (Vector's exec protocol)"),
      el("option", { value: "argument", selected: config.protocol === "argument" }, "argument — the key as the last argument, the value out"));
    const timeout = textInput("timeoutSeconds", config.timeoutSeconds, { type: "number", min: 1, max: 60, placeholder: "10" });
    return {
      element: el("div", {},
        field("Command", command, "One argument per line, the program first; it must be one the operator allows (veil serve --provider-command). No shell."),
        field("Protocol", protocol),
        field("Timeout (seconds)", timeout, "1–60; the program is killed after it.")),
      value: () => compact({
        command: command.value.split("\n").map((line) => line.replace(/\r$/, "")).filter((line) => line !== ""),
        protocol: protocol.value,
        timeoutSeconds: timeout.value === "" ? undefined : Number(timeout.value),
      }),
    };
  },
  "aws-secrets-manager"(config, secrets) {
    const region = textInput("region", config.region, { required: true, placeholder: "eu-west-1" });
    const endpoint = textInput("endpointUrl", config.endpointUrl, { placeholder: "empty: AWS's endpoint of the region" });
    const keyId = secretPicker("accessKeyId", "Access key id", config.accessKeyId, secrets, { required: true });
    const secretKey = secretPicker("secretAccessKey", "Secret access key", config.secretAccessKey, secrets, { required: true });
    const session = secretPicker("sessionToken", "Session token", config.sessionToken, secrets, { hint: "Only for temporary credentials." });
    return {
      element: el("div", {}, field("Region", region), field("Endpoint URL", endpoint, "The service's root URL (https://host[:port], no path) for an endpoint of your own: a VPC endpoint, a stand-in."),
        keyId.element, secretKey.element, session.element),
      value: () => compact({
        region: region.value,
        endpointUrl: endpoint.value,
        accessKeyId: keyId.value(),
        secretAccessKey: secretKey.value(),
        sessionToken: session.value(),
      }),
    };
  },
  "vault-kv2"(config, secrets) {
    const address = textInput("address", config.address, { required: true, placeholder: "https://vault:8200" });
    const mount = textInput("mount", config.mount, { placeholder: "secret" });
    const namespace = textInput("namespace", config.namespace, { placeholder: "none" });
    let auth = config.roleId || config.secretId ? "approle" : "token";
    const token = secretPicker("token", "Token", config.token, secrets, { required: true });
    const roleId = secretPicker("roleId", "Role id", config.roleId, secrets, { required: true });
    const secretId = secretPicker("secretId", "Secret id", config.secretId, secrets, { required: true });
    const approleMount = textInput("approleMount", config.approleMount, { placeholder: "approle" });
    const authHolder = el("div", {});
    const showAuth = () => fill(authHolder, auth === "token"
      ? token.element
      : [roleId.element, secretId.element, field("AppRole mount", approleMount)]);
    showAuth();
    const choice = el("div", { class: "segmented", role: "radiogroup", "aria-label": "Authentication" },
      [["token", "Token"], ["approle", "AppRole"]].map(([value, label]) => el("label", {}, el("input", {
        type: "radio",
        name: "vault-auth",
        value,
        checked: auth === value,
        onchange: () => {
          auth = value;
          showAuth();
        },
      }), label)));
    return {
      element: el("div", {}, field("Address", address, "Vault's or OpenBao's URL."), field("Mount", mount, "The KV v2 engine's mount (default: secret)."),
        el("fieldset", {}, el("legend", {}, "Authentication"), choice, authHolder),
        field("Namespace", namespace, "Vault Enterprise / OpenBao namespaces only.")),
      value: () => compact(auth === "token"
        ? { address: address.value, mount: mount.value, token: token.value(), namespace: namespace.value }
        : { address: address.value, mount: mount.value, roleId: roleId.value(), secretId: secretId.value(), approleMount: approleMount.value, namespace: namespace.value }),
    };
  },
};

/**
 * The API names a problem's field with dots (`configuration.command.1`): each goes to the
 * closest field the form has (`configuration.command`); the rest to the form's error box.
 */
function nearestFields(scope, error) {
  for (const problem of (error && error.body && error.body.problems) || []) {
    if (typeof problem.field !== "string") continue;
    let name = problem.field;
    while (name.includes(".") && !scope.querySelector(`[data-field="${CSS.escape(name)}"]`)) name = name.slice(0, name.lastIndexOf("."));
    if (name !== problem.field && scope.querySelector(`[data-field="${CSS.escape(name)}"]`)) {
      problem.message = `${problem.field.slice(name.length + 1)}: ${problem.message}`;
      problem.field = name;
    }
  }
  return error;
}

/** Add (no `existing`) or change a provider; resolves with the saved provider, or null. */
export async function providerDialog(existing) {
  const isNew = !existing;
  const secrets = await credentialSecrets();
  let kind = isNew ? "files" : existing.type;
  const config = isNew ? {} : structuredClone(existing.configuration || {});
  const name = el("input", { name: "name", required: true, value: isNew ? "" : existing.name, disabled: !isNew, autocomplete: "off", dataset: { field: "name" } });
  const holder = el("div", { class: "provider-config" });
  let form;
  const render = () => {
    form = (CONFIG_FORMS[kind] || CONFIG_FORMS.files)(kind === (isNew ? null : existing.type) ? config : {}, secrets);
    fill(holder, form.element);
  };
  const type = el("select", {
    name: "type",
    disabled: !isNew,
    dataset: { field: "type" },
    onchange: () => {
      kind = type.value;
      render();
    },
  }, Object.entries(PROVIDER_TYPES).map(([value, label]) => el("option", { value, selected: value === kind }, label)));
  render();
  const cache = el("input", {
    type: "number",
    name: "cacheSeconds",
    min: 0,
    max: 86400,
    placeholder: "60",
    value: isNew ? "" : existing.cacheSeconds,
    dataset: { field: "cacheSeconds" },
  });
  return dialog(
    isNew ? "Add secret provider" : `Change provider '${existing.name}'`,
    el("div", {},
      field("Name", name, isNew ? "Linked secrets name their provider: the name and the type cannot be changed later." : "A provider's name and type cannot be changed: linked secrets name it."),
      field("Type", type),
      holder,
      field("Cache (seconds)", cache, "How long a fetched value is used before it is fetched again (0–86400; empty: 60).")),
    {
      submit: isNew ? "Add" : "Save",
      id: "provider-form",
      onsubmit: async (scope) => {
        const body = { name: name.value, type: kind, configuration: form.value() };
        if (cache.value !== "") body.cacheSeconds = Number(cache.value);
        try {
          return isNew ? await api("POST", "/api/secret-providers", body) : await api("PUT", `/api/secret-providers/${existing.id}`, body);
        } catch (error) {
          throw nearestFields(scope, error);
        }
      },
    },
  );
}

/** Confirms and deletes; while linked secrets come from it, shows the server's answer. True when deleted. */
async function deleteProvider(provider) {
  const confirmed = await dialog("Delete secret provider", el("p", {}, `Delete the secret provider '${provider.name}'? This cannot be undone.`), {
    submit: "Delete",
    id: "confirm-delete",
  });
  if (!confirmed) return false;
  try {
    await api("DELETE", `/api/secret-providers/${provider.id}`);
    toast(`Secret provider '${provider.name}' deleted`);
    return true;
  } catch (error) {
    if (error.code !== "provider_in_use") {
      toast(error.message, true);
      return false;
    }
    await dialog("Secret provider is in use", el("p", {}, error.message), { submit: null, cancel: "Close", id: "provider-in-use" });
    return false;
  }
}

function cacheText(seconds) {
  return seconds === 1 ? "1 second" : `${seconds} seconds`;
}

/** `#/providers`: the tenant's secret providers. */
export async function providersPage() {
  const providers = (await api("GET", "/api/secret-providers")).data;
  const rows = providers.map((p) => el("tr", { dataset: { name: p.name } },
    el("td", {}, el("a", { href: `#/providers/${p.id}` }, p.name)),
    el("td", {}, typeName(p.type)),
    el("td", { class: "num" }, cacheText(p.cacheSeconds)),
    el("td", {}, when(p.updatedTime)),
    el("td", { class: "row-actions" },
      can("SECRET_PROVIDER", "WRITE") ? iconButton("✎", "Change", async () => {
        const saved = await providerDialog(p);
        if (saved) {
          toast(`Secret provider '${saved.name}' saved`);
          location.reload();
        }
      }) : null,
      can("SECRET_PROVIDER", "DELETE") ? iconButton("🗑", "Delete", async () => (await deleteProvider(p)) && location.reload(), { class: "icon danger" }) : null)));
  return el("section", {},
    pageHeader("Secret providers",
      can("SECRET_PROVIDER", "CREATE") ? iconButton("+", "Add provider", async () => {
        const saved = await providerDialog(null);
        if (saved) {
          toast(`Secret provider '${saved.name}' added`);
          location.hash = `#/providers/${saved.id}`;
        }
      }, { class: "icon add" }) : null),
    el("p", { class: "hint" }, "A linked secret's value stays in its provider: Veil fetches it when a rule chain or an integration uses it, keeps it in memory for the provider's cache period, and never stores it."),
    el("table", { id: "providers-table" },
      el("thead", {}, el("tr", {}, ["Name", "Type", "Cache", "Updated", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 5, class: "empty" }, "No secret providers yet.")))));
}

/** A configuration's settings as facts (credentials show the secret they name, never a value). */
function configurationFacts(configuration) {
  const entries = Object.entries(configuration || {});
  if (!entries.length) return "—";
  return el("ul", { class: "config-facts" }, entries.map(([key, value]) => el("li", {}, `${key}: `,
    el("code", {}, Array.isArray(value) ? value.join(" ") : typeof value === "object" ? JSON.stringify(value) : String(value)))));
}

/** `#/providers/<id>`: a provider, Test, its keys (each can become a linked secret) and its linked secrets. */
export async function providerPage(id) {
  const provider = await api("GET", `/api/secret-providers/${id}`);
  let linked = await linkedSecrets(provider.name);
  const linkedList = el("div", { id: "provider-linked" });
  const showLinked = () => fill(linkedList, linked.length
    ? el("ul", { class: "usages" }, linked.map((s) => el("li", {}, el("a", { href: `#/secrets/${s.id}` }, s.name), " ← key ", el("code", {}, s.source.key))))
    : el("p", { class: "empty" }, "No secret is linked to this provider yet."));
  showLinked();

  const testAnswer = el("p", { id: "provider-test", class: "probe", role: "status" });
  const testButton = el("button", {
    type: "button",
    dataset: { action: "test" },
    onclick: async () => {
      testButton.disabled = true;
      testAnswer.className = "probe probing";
      fill(testAnswer, "Testing…");
      try {
        const answer = await api("POST", `/api/secret-providers/${id}/test`);
        testAnswer.className = answer.ok ? "probe ok" : "probe failed";
        fill(testAnswer, answer.ok ? "OK: " : "Failed: ", answer.message);
      } catch (error) {
        testAnswer.className = "probe failed";
        fill(testAnswer, "Failed: ", error.message);
      } finally {
        testButton.disabled = false;
      }
    },
  }, "Test");

  const keysHolder = el("div", { id: "provider-keys" });
  let keys = [];
  const keyRows = (filter) => keys.filter((k) => !filter || k.toLowerCase().includes(filter.toLowerCase())).map((key) => {
    const names = linked.filter((s) => s.source.key === key);
    return el("tr", { dataset: { key } },
      el("td", {}, el("code", {}, key)),
      el("td", { class: "linked-as" }, names.length ? names.map((s, i) => [i ? ", " : "", el("a", { href: `#/secrets/${s.id}` }, s.name)]) : "—"),
      el("td", { class: "row-actions" }, can("SECRET", "CREATE") ? el("button", {
        type: "button",
        dataset: { action: "link", key },
        title: `Create a secret linked to '${key}'`,
        onclick: async () => {
          const created = await addSecretDialog({ suggestedName: key, source: { provider: provider.name, key } });
          if (!created) return;
          toast(`Secret '${created.name}' added, linked to '${key}'`);
          linked = await linkedSecrets(provider.name);
          showLinked();
          showKeys();
        },
      }, "Create linked secret") : null));
  });
  let search = "";
  const body = el("tbody", {});
  const showKeys = () => {
    const rows = keyRows(search);
    fill(body, rows.length ? rows : el("tr", {}, el("td", { colspan: 3, class: "empty" }, keys.length ? "No key matches." : "The provider lists no key.")));
  };
  const keysButton = el("button", {
    type: "button",
    dataset: { action: "keys" },
    onclick: async () => {
      keysButton.disabled = true;
      fill(keysHolder, el("p", { class: "empty" }, "Asking the provider…"));
      try {
        keys = (await api("GET", `/api/secret-providers/${id}/keys`)).keys || [];
        const filter = keys.length > 20 ? el("input", {
          type: "search",
          placeholder: "Filter keys",
          "aria-label": "Filter keys",
          oninput: (e) => {
            search = e.target.value.trim();
            showKeys();
          },
        }) : null;
        showKeys();
        fill(keysHolder,
          el("p", {}, `${keys.length} key${keys.length === 1 ? "" : "s"}`, filter ? [" ", filter] : null),
          el("table", { id: "provider-keys-table" },
            el("thead", {}, el("tr", {}, ["Key", "Linked as", ""].map((h) => el("th", {}, h)))),
            body));
      } catch (error) {
        fill(keysHolder, el("p", { class: "form-errors", role: "alert" }, error.message));
      } finally {
        keysButton.disabled = false;
      }
    },
  }, "Keys");

  return el("section", {},
    pageHeader(`Secret provider '${provider.name}'`,
      can("SECRET_PROVIDER", "WRITE") ? iconButton("✎", "Change", async () => {
        const saved = await providerDialog(provider);
        if (saved) {
          toast(`Secret provider '${saved.name}' saved`);
          location.reload();
        }
      }) : null,
      can("SECRET_PROVIDER", "DELETE") ? iconButton("🗑", "Delete", async () => (await deleteProvider(provider)) && (location.hash = "#/providers"), { class: "icon danger" }) : null),
    el("dl", { class: "facts", id: "provider-facts" },
      el("dt", {}, "Type"), el("dd", {}, typeName(provider.type)),
      el("dt", {}, "Configuration"), el("dd", { id: "provider-configuration" }, configurationFacts(provider.configuration)),
      el("dt", {}, "Cache"), el("dd", {}, cacheText(provider.cacheSeconds)),
      el("dt", {}, "Created"), el("dd", {}, when(provider.createdTime)),
      el("dt", {}, "Updated"), el("dd", {}, when(provider.updatedTime))),
    el("div", { class: "provider-actions" }, testButton, keysButton),
    testAnswer,
    el("h2", {}, "Keys"),
    el("p", { class: "hint" }, "Keys lists what the provider can give; Create linked secret adds a secret whose value stays there."),
    keysHolder,
    el("h2", {}, "Linked secrets"),
    linkedList);
}
