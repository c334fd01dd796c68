// A configuration form generated from a node or integration type's descriptor
// (`GET /api/node-types`, `/api/integration-types`): one input per value of the configuration,
// and on exactly the fields that take secrets a key icon. The key opens "Use storage": a dropdown
// of the secrets the user may use (and "Create new"), and "Use" writes `$<secret:name>` into the
// field, shown as a chip with the secret's name.

import { api, can, el, fill, icon, iconButton } from "./dom.js";
import { addSecretDialog } from "./secrets.js";

const PLACEHOLDER = /^\$<secret:([^>]+)>$/;

function decode(segment) {
  return segment.replace(/~1/g, "/").replace(/~0/g, "~");
}

function encode(segment) {
  return String(segment).replace(/~/g, "~0").replace(/\//g, "~1");
}

function segments(pointer) {
  return pointer === "" ? [] : pointer.slice(1).split("/").map(decode);
}

/** Whether a declared pointer (`*` matches one segment) names `pointer`. */
function matches(declared, pointer) {
  const want = segments(declared);
  const have = segments(pointer);
  return want.length === have.length && want.every((s, i) => s === "*" || s === have[i]);
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function get(root, pointer) {
  let node = root;
  for (const s of segments(pointer)) {
    if (!isObject(node) && !Array.isArray(node)) return undefined;
    node = node[s];
  }
  return node;
}

function set(root, pointer, value) {
  const path = segments(pointer);
  let node = root;
  for (const s of path.slice(0, -1)) {
    if (!isObject(node[s])) node[s] = {};
    node = node[s];
  }
  node[path[path.length - 1]] = value;
}

function remove(root, pointer) {
  const path = segments(pointer);
  const parent = get(root, path.length > 1 ? "/" + path.slice(0, -1).map(encode).join("/") : "");
  if (isObject(parent)) delete parent[path[path.length - 1]];
}

/** The secrets the user may use, of the kinds a field accepts. */
async function usableSecrets(accepts) {
  const page = await api("GET", "/api/secrets?pageSize=1000");
  return page.data.filter((s) => accepts === "ANY" || s.type === accepts);
}

/**
 * `descriptor`: the type's view ({fields: [{pointer, secret, template}]}); `value`: the
 * configuration; `base`: the pointer of the configuration in the saved document (problems from
 * the API name full pointers, so every input carries `data-pointer` = base + its pointer).
 * Returns `{element, value()}`.
 */
export function configForm(descriptor, value, base) {
  const fields = (descriptor && descriptor.fields) || [];
  const config = structuredClone(isObject(value) ? value : {});
  // Secret-capable fields the configuration does not have yet are shown empty, and left out of
  // the saved configuration while they stay empty.
  const offered = new Set();
  const madeParents = new Set();
  for (const f of fields) {
    if (!f.secret || f.pointer.includes("*")) continue;
    const path = segments(f.pointer);
    const parent = get(config, "/" + path.slice(0, -1).map(encode).join("/"));
    if (get(config, f.pointer) === undefined && (parent === undefined || isObject(parent))) {
      for (let i = 1; i < path.length; i++) {
        const ancestor = "/" + path.slice(0, i).map(encode).join("/");
        if (get(config, ancestor) === undefined) madeParents.add(ancestor);
      }
      set(config, f.pointer, "");
      offered.add(f.pointer);
    }
  }
  const secretOf = (pointer) => fields.find((f) => f.secret && matches(f.pointer, pointer));
  const templated = (pointer) => fields.some((f) => f.template && matches(f.pointer, pointer));
  const element = el("div", { class: "config-form" });

  const render = () => fill(element, object(config, ""));

  function object(obj, pointer) {
    const rows = Object.keys(obj).map((key) => entry(obj, key, `${pointer}/${encode(key)}`));
    const wildcard = fields.find((f) => f.secret && matches(f.pointer, `${pointer}/x`) && f.pointer.endsWith("*"));
    if (wildcard) rows.push(addEntry(obj, pointer));
    return rows;
  }

  function addEntry(obj, pointer) {
    const name = el("input", { placeholder: "name", "aria-label": `New entry in ${pointer || "configuration"}` });
    return el("div", { class: "add-entry" }, name, el("button", {
      type: "button",
      onclick: () => {
        if (name.value && !(name.value in obj)) {
          obj[name.value] = "";
          render();
        }
      },
    }, "Add entry"));
  }

  function entry(obj, key, pointer) {
    const v = obj[key];
    if (isObject(v)) {
      return el("fieldset", { dataset: { pointer: base + pointer } }, el("legend", {}, key), object(v, pointer));
    }
    const label = el("span", { class: "label" }, key);
    const full = base + pointer;
    if (typeof v === "boolean") {
      return el("label", { class: "field check" }, el("input", {
        type: "checkbox", checked: v, dataset: { pointer: full }, onchange: (e) => (obj[key] = e.target.checked),
      }), label);
    }
    if (typeof v === "number") {
      return el("label", { class: "field" }, label, el("input", {
        type: "number", value: v, dataset: { pointer: full }, onchange: (e) => (obj[key] = Number(e.target.value)),
      }));
    }
    if (typeof v !== "string") {
      const area = el("textarea", {
        rows: 3,
        dataset: { pointer: full },
        onchange: (e) => {
          try {
            obj[key] = JSON.parse(e.target.value);
            area.classList.remove("invalid");
          } catch {
            area.classList.add("invalid");
          }
        },
      });
      area.value = JSON.stringify(v, null, 2);
      return el("label", { class: "field" }, label, area);
    }
    const secret = secretOf(pointer);
    const hint = templated(pointer) ? el("small", {}, "Message templates: ${metadataKey}, $[dataKey]") : null;
    const placeholder = v.match(PLACEHOLDER);
    if (secret && placeholder) {
      const chip = el("span", { class: "chip", dataset: { pointer: full, secret: placeholder[1] }, title: `Secret ${placeholder[1]}` },
        icon("🔑"), el("span", { class: "chip-name" }, placeholder[1]),
        iconButton("×", `Stop using ${placeholder[1]}`, () => {
          obj[key] = "";
          render();
        }));
      return el("div", { class: "field" }, label, chip, hint);
    }
    const input = el("input", {
      value: v,
      dataset: { pointer: full },
      autocomplete: "off",
      oninput: (e) => (obj[key] = e.target.value),
    });
    if (!secret) return el("label", { class: "field" }, label, input, hint);
    const holder = el("div", { class: "field secret-field" }, label, el("div", { class: "with-key" }, input,
      iconButton("🔑", `Use a secret for ${key}`, () => picker(holder, obj, key, secret.secret), { class: "icon key", dataset: { key: full } })), hint);
    return holder;
  }

  async function picker(holder, obj, key, accepts) {
    document.querySelectorAll(".picker").forEach((p) => p.remove());
    const select = el("select", { "aria-label": "Secret", name: "secret" });
    const load = async (selected) => {
      const secrets = await usableSecrets(accepts);
      fill(select, secrets.length ? secrets.map((s) => el("option", { value: s.name, selected: s.name === selected }, s.name)) : el("option", { value: "" }, "No secret yet"));
    };
    const panel = el(
      "div",
      { class: "picker", role: "dialog", "aria-label": "Use storage" },
      el("h3", {}, "Use storage"),
      select,
      can("SECRET", "CREATE") ? el("button", {
        type: "button",
        class: "link",
        onclick: async () => {
          const created = await addSecretDialog({ accepts });
          if (created) await load(created.name);
        },
      }, "Create new") : null,
      el("div", { class: "buttons" },
        el("button", { type: "button", onclick: () => panel.remove() }, "Cancel"),
        el("button", {
          type: "button",
          class: "primary",
          onclick: () => {
            if (!select.value) return;
            obj[key] = `$<secret:${select.value}>`;
            panel.remove();
            render();
          },
        }, "Use")),
    );
    holder.append(panel);
    await load();
    select.focus();
  }

  render();
  return {
    element,
    value() {
      const out = structuredClone(config);
      for (const pointer of offered) if (get(out, pointer) === "") remove(out, pointer);
      const deepestFirst = [...madeParents].sort((a, b) => b.length - a.length);
      for (const pointer of deepestFirst) {
        const v = get(out, pointer);
        if (isObject(v) && !Object.keys(v).length) remove(out, pointer);
      }
      return out;
    },
  };
}
