// A configuration form generated from a node or integration type's descriptor
// (`GET /api/node-types`, `/api/integration-types`: its `form`). Each field as its kind asks:
// enums as selects, booleans as switches, numbers with their bounds, maps and lists as rows,
// code in a monospace editor with line numbers; only the fields of the chosen variant (the
// credentials `type`); a key icon on exactly the fields that take secrets. The key opens "Use
// storage": the secrets the user may use (and "Create new"); "Use" inserts `$<secret:name>` at
// the cursor of a field that takes text around it, or fills the field (shown as a chip).

import { allPages, can, el, fill, icon, iconButton } from "./dom.js";
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

function parentOf(pointer) {
  return pointer.slice(0, pointer.lastIndexOf("/"));
}

/** The secrets the user may use, of the kinds a field accepts (every page of them). */
async function usableSecrets(accepts) {
  return (await allPages("/api/secrets")).filter((s) => accepts === "ANY" || s.type === accepts);
}

/** A monospace editor with line numbers (a textarea and a gutter that follows it). */
export function codeEditor(attrs, value) {
  const gutter = el("div", { class: "gutter", "aria-hidden": "true" });
  const area = el("textarea", { spellcheck: "false", wrap: "off", rows: 10, ...attrs });
  area.value = value || "";
  const numbers = () => {
    const lines = area.value.split("\n").length;
    gutter.textContent = Array.from({ length: lines }, (_, i) => i + 1).join("\n");
  };
  area.addEventListener("input", numbers);
  area.addEventListener("scroll", () => (gutter.scrollTop = area.scrollTop));
  numbers();
  return { element: el("div", { class: "code-editor" }, gutter, area), area };
}

/**
 * `descriptor`: the type's view ({form: [{pointer, type, values, required, default, label,
 * description, variant, secret, template, code, minimum, maximum}]}); `value`: the
 * configuration; `base`: the pointer of the configuration in the saved document (problems from
 * the API name full pointers, so every input carries `data-pointer` = base + its pointer).
 * Returns `{element, value()}`.
 */
export function configForm(descriptor, value, base, onChange = () => {}) {
  const form = (descriptor && descriptor.form) || [];
  const config = structuredClone(isObject(value) ? value : {});
  const element = el("div", { class: "config-form" });
  const changed = () => onChange();
  const shown = (f) => !f.variant || get(config, f.variant.pointer) === f.variant.value;
  const described = new Set(form.map((f) => f.pointer));
  const render = () => {
    const groups = new Map();
    const rows = [];
    const rendered = new Set();
    for (const f of form) {
      if (f.pointer.includes("*") || !shown(f) || rendered.has(f.pointer)) continue;
      rendered.add(f.pointer);
      const row = fieldFor(f);
      const parent = parentOf(f.pointer);
      if (!parent) {
        rows.push(row);
        continue;
      }
      if (!groups.has(parent)) {
        const fieldset = el("fieldset", { dataset: { pointer: base + parent } }, el("legend", {}, humanize(segments(parent).pop())));
        groups.set(parent, fieldset);
        rows.push(fieldset);
      }
      groups.get(parent).append(row);
    }
    // Settings the form does not describe stay as they are (the JSON view edits them).
    const others = Object.keys(config).filter((k) => !described.has(`/${encode(k)}`) && ![...described].some((p) => p.startsWith(`/${encode(k)}/`)));
    if (others.length) rows.push(el("p", { class: "others" }, `Other settings (edit them in the JSON view): ${others.join(", ")}`));
    fill(element, rows);
  };

  function humanize(key) {
    const words = String(key).replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/[_.]/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function fieldFor(f) {
    const full = base + f.pointer;
    const label = el("span", { class: "label" }, f.label || humanize(segments(f.pointer).pop()), f.required ? el("span", { class: "required", title: "required" }, " *") : null);
    const help = f.description ? el("small", { class: "help" }, f.description) : null;
    const current = get(config, f.pointer);
    const setValue = (v) => {
      if (v === undefined) remove(config, f.pointer);
      else set(config, f.pointer, v);
      changed();
    };
    if (f.type === "enum") {
      const options = [!f.required ? el("option", { value: "" }, f.default !== undefined ? `(default: ${f.default})` : "—") : null,
        ...f.values.map((v) => el("option", { value: v, selected: current === v }, v))];
      const select = el("select", {
        dataset: { pointer: full },
        name: f.pointer.slice(1),
        onchange: (e) => {
          setValue(e.target.value === "" ? undefined : e.target.value);
          if (form.some((g) => g.variant && g.variant.pointer === f.pointer)) render();
        },
      }, options);
      if (current === undefined && f.required && f.values.length) select.value = f.values[0];
      return el("label", { class: "field" }, label, select, help);
    }
    if (f.type === "boolean") {
      const on = current === undefined ? Boolean(f.default) : Boolean(current);
      return el("label", { class: "field switch" },
        el("input", { type: "checkbox", role: "switch", checked: on, dataset: { pointer: full }, onchange: (e) => setValue(e.target.checked) }),
        el("span", { class: "slider", "aria-hidden": "true" }), label, help);
    }
    if (f.type === "number") {
      return el("label", { class: "field" }, label, el("input", {
        type: "number",
        min: f.minimum,
        max: f.maximum,
        value: current ?? "",
        placeholder: f.default !== undefined ? String(f.default) : "",
        dataset: { pointer: full },
        onchange: (e) => setValue(e.target.value === "" ? undefined : Number(e.target.value)),
      }), help);
    }
    if (f.type === "map") return mapField(f, label, help);
    if (f.type === "list") return listField(f, label, help);
    if (f.type === "any") {
      const area = el("textarea", {
        rows: 3,
        dataset: { pointer: full },
        onchange: (e) => {
          try {
            setValue(e.target.value.trim() ? JSON.parse(e.target.value) : undefined);
            area.classList.remove("invalid");
          } catch {
            area.classList.add("invalid");
          }
        },
      });
      area.value = current === undefined ? "" : JSON.stringify(current, null, 2);
      return el("label", { class: "field" }, label, area, help);
    }
    if (f.code) {
      const editor = codeEditor({ dataset: { pointer: full, code: f.code }, name: f.pointer.slice(1), oninput: (e) => setValue(e.target.value) }, current);
      if (!f.secret) return el("label", { class: "field" }, label, editor.element, help);
      const holder = el("div", { class: "field secret-field" }, el("div", { class: "code-head" }, label,
        iconButton("🔑", `Use a secret in ${segments(f.pointer).pop()}`, () => picker(holder, editor.area, () => get(config, f.pointer), setValue, f.secret), { class: "icon key", dataset: { key: full } })),
      editor.element, help);
      return holder;
    }
    return textField(f.pointer, f, label, help, () => get(config, f.pointer), setValue);
  }

  /** A text field; with `f.secret` the key icon and the picker, a placeholder alone as a chip. */
  function textField(pointer, f, label, help, read, write) {
    const full = base + pointer;
    const v = read() ?? "";
    const hint = f.template ? el("small", { class: "help" }, "Message templates: ${metadataKey}, $[dataKey]") : null;
    const placeholder = typeof v === "string" && v.match(PLACEHOLDER);
    if (f.secret && placeholder) {
      const chip = el("span", { class: "chip", dataset: { pointer: full, secret: placeholder[1] }, title: `Secret ${placeholder[1]}` },
        icon("🔑"), el("span", { class: "chip-name" }, placeholder[1]),
        iconButton("×", `Stop using ${placeholder[1]}`, () => {
          write("");
          render();
        }));
      return el("div", { class: "field" }, label, chip, help, hint);
    }
    const input = el("input", { value: typeof v === "string" ? v : JSON.stringify(v), dataset: { pointer: full }, autocomplete: "off", oninput: (e) => write(e.target.value) });
    if (!f.secret) return el("label", { class: "field" }, label, input, help, hint);
    const holder = el("div", { class: "field secret-field" }, label, el("div", { class: "with-key" }, input,
      iconButton("🔑", `Use a secret for ${segments(pointer).pop()}`, () => picker(holder, input, read, write, f.secret), { class: "icon key", dataset: { key: full } })), help, hint);
    return holder;
  }

  function mapField(f, label, help) {
    const entries = f.pointer + "/*";
    const valueSpec = form.find((g) => g.pointer === entries) || { type: "text" };
    const rows = el("div", { class: "rows" });
    const draw = () => {
      const map = isObject(get(config, f.pointer)) ? get(config, f.pointer) : {};
      fill(rows, Object.keys(map).map((key) => {
        const pointer = `${f.pointer}/${encode(key)}`;
        const entryLabel = el("span", { class: "label entry-key" }, key);
        const row = textField(pointer, valueSpec, entryLabel, null, () => get(config, pointer), (v) => {
          set(config, pointer, v);
          changed();
        });
        return el("div", { class: "row" }, row, iconButton("×", `Remove ${key}`, () => {
          remove(config, pointer);
          changed();
          draw();
        }));
      }));
    };
    const name = el("input", { placeholder: "name", "aria-label": `New entry in ${f.pointer.slice(1)}` });
    const add = el("div", { class: "add-entry" }, name, el("button", {
      type: "button",
      onclick: () => {
        const map = isObject(get(config, f.pointer)) ? get(config, f.pointer) : {};
        if (!name.value || name.value in map) return;
        set(config, f.pointer, { ...map, [name.value]: "" });
        name.value = "";
        changed();
        draw();
      },
    }, "Add entry"));
    draw();
    return el("fieldset", { class: "map", dataset: { pointer: base + f.pointer } }, el("legend", {}, label), help, rows, add);
  }

  function listField(f, label, help) {
    const rows = el("div", { class: "rows" });
    const list = () => (Array.isArray(get(config, f.pointer)) ? get(config, f.pointer) : []);
    const draw = () => fill(rows, list().map((item, i) => el("div", { class: "row" },
      el("input", { value: typeof item === "string" ? item : JSON.stringify(item), dataset: { pointer: `${base}${f.pointer}/${i}` }, oninput: (e) => {
        const items = list();
        items[i] = e.target.value;
        set(config, f.pointer, items);
        changed();
      } }),
      iconButton("×", "Remove", () => {
        const items = list();
        items.splice(i, 1);
        set(config, f.pointer, items);
        changed();
        draw();
      }))));
    draw();
    return el("fieldset", { class: "list", dataset: { pointer: base + f.pointer } }, el("legend", {}, label), help, rows,
      el("button", { type: "button", onclick: () => {
        set(config, f.pointer, [...list(), ""]);
        changed();
        draw();
      } }, "Add"));
  }

  async function picker(holder, input, read, write, accepts) {
    document.querySelectorAll(".picker").forEach((p) => p.remove());
    // Where the cursor was: text around it stays (`Bearer $<secret:x>`).
    const at = input.selectionStart ?? input.value.length;
    const end = input.selectionEnd ?? at;
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
            const text = String(read() ?? "");
            const placeholder = `$<secret:${select.value}>`;
            write(text.slice(0, at) + placeholder + text.slice(end));
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
      // Keys of the variants not chosen go (a form that switched types leaves them).
      for (const f of form) {
        if (!f.variant || shown(f)) continue;
        if (!form.some((g) => g.pointer === f.pointer && shown(g))) remove(out, f.pointer);
      }
      // Empty optional text fields are absent values.
      for (const f of form) {
        if (f.type === "text" && !f.required && get(out, f.pointer) === "") remove(out, f.pointer);
      }
      return out;
    },
  };
}
