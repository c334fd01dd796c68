// Shared by every page: building DOM (text only, never HTML from data), the API client (session
// cookie + CSRF token, kept in memory only), dialogs, field errors and small formatters.

/** The logged-in session: username, permissions, csrfToken. In memory only, never in storage. */
export const session = { user: null };

/** `el("button", {class: "x", onclick: f}, "text", child)`: attributes and children; strings are text. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "value") node.value = value;
    else if (key === "checked") node.checked = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** SVG paths of the icons (24×24), drawn inline: no font or image request needed. */
const ICONS = {
  "+": "M11 5h2v6h6v2h-6v6h-2v-6H5v-2h6z",
  "🗑": "M9 3h6l1 1h4v2H4V4h4l1-1zM6 7h12l-1 13a2 2 0 0 1-2 2H9a2 2 0 0 1-2-2L6 7zm3 3v9h2v-9H9zm4 0v9h2v-9h-2z",
  "✎": "M3 17.25V21h3.75L17.81 9.94l-3.75-3.75L3 17.25zM20.71 7.04a1 1 0 0 0 0-1.41l-2.34-2.34a1 1 0 0 0-1.41 0l-1.83 1.83 3.75 3.75 1.83-1.83z",
  "🔑": "M12.65 10A6 6 0 0 0 7 6a6 6 0 1 0 5.65 8H17v4h4v-4h2v-4H12.65zM7 14a2 2 0 1 1 0-4 2 2 0 0 1 0 4z",
  "⇄": "M18 16.1c-.8 0-1.4.3-2 .8l-7.1-4.2c.1-.2.1-.5.1-.7s0-.5-.1-.7L16 7.2A3 3 0 1 0 15 5c0 .2 0 .5.1.7L8 9.8A3 3 0 1 0 8 14.2l7.2 4.2c-.1.2-.1.4-.1.6a2.9 2.9 0 1 0 2.9-2.9z",
  "⧉": "M16 1H4a2 2 0 0 0-2 2v14h2V3h12V1zm3 4H8a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h11a2 2 0 0 0 2-2V7a2 2 0 0 0-2-2zm0 16H8V7h11v14z",
  "✓": "M9 16.17 4.83 12l-1.42 1.41L9 19 21 7l-1.41-1.41z",
  "×": "M19 6.41 17.59 5 12 10.59 6.41 5 5 6.41 10.59 12 5 17.59 6.41 19 12 13.41 17.59 19 19 17.59 13.41 12z",
};

/** The SVG path of an icon of ICONS (24×24), for drawings that place it themselves. */
export function iconPath(symbol) {
  return ICONS[symbol];
}

/** An icon as inline SVG (`symbol` is a key of ICONS), or the symbol as text. */
export function icon(symbol) {
  const path = ICONS[symbol];
  if (!path) return document.createTextNode(symbol);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "svg-icon");
  const shape = document.createElementNS(ns, "path");
  shape.setAttribute("d", path);
  svg.append(shape);
  return svg;
}

/** An icon button: `label` is its accessible name and tooltip. */
export function iconButton(symbol, label, onclick, extra = {}) {
  return el("button", { type: "button", class: "icon", title: label, "aria-label": label, onclick, ...extra }, icon(symbol));
}

/** An error answered by the API: `status`, `code`, `message`, and the body's `problems` and `references`. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
    this.body = body || {};
  }
}

/** Every item of a paged listing (`path` may have a query), page by page: lists never stop at a page. */
export async function allPages(path) {
  const items = [];
  const join = path.includes("?") ? "&" : "?";
  for (let page = 0; ; page++) {
    const answer = await api("GET", `${path}${join}pageSize=200&page=${page}`);
    items.push(...answer.data);
    if (!answer.hasNext || !answer.data.length) return items;
  }
}

/** Calls the API. `body` is JSON, or a FormData sent as multipart. */
export async function api(method, path, body, extraHeaders = {}) {
  const headers = { ...extraHeaders };
  if (method !== "GET" && session.user) headers["X-CSRF-Token"] = session.user.csrfToken;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, { error: "unreachable", message: "Cannot reach the Veil server: check that it is running, then try again" });
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { message: text };
  }
  if (response.status === 401 && path !== "/api/auth/session") {
    session.user = null;
    location.hash = "#/login";
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

/** Whether the session may do `op` on `resource` (the API decides anyway: this only hides buttons). */
export function can(resource, op) {
  const ops = session.user && session.user.permissions[resource];
  return Boolean(ops && ops.includes(op));
}

/** What a dialog's `onsubmit` returns to stay open (it showed its answer inside). */
export const KEEP_OPEN = Symbol("keep the dialog open");

/** A modal dialog; resolves with what `onsubmit` returns, or null when cancelled. */
export function dialog(title, body, { submit = "OK", cancel = "Cancel", onsubmit, id } = {}) {
  return new Promise((resolve) => {
    const errors = el("div", { class: "form-errors", role: "alert" });
    // Navigating (a link inside it, Back) closes it: a dialog never outlives its page.
    const onNavigate = () => close(null);
    const close = (result) => {
      window.removeEventListener("hashchange", onNavigate);
      window.removeEventListener("popstate", onNavigate);
      overlay.remove();
      resolve(result);
    };
    window.addEventListener("hashchange", onNavigate);
    window.addEventListener("popstate", onNavigate);
    const destructive = /^(Delete|Remove|Stop sharing)/.test(submit || "");
    const submitButton = submit
      ? el("button", { type: "submit", class: destructive ? "primary danger" : "primary", dataset: { action: "submit" } }, submit)
      : null;
    const form = el(
      "form",
      {
        class: "dialog",
        role: "dialog",
        "aria-modal": "true",
        "aria-label": title,
        id,
        onsubmit: async (event) => {
          event.preventDefault();
          clearErrors(form);
          if (!onsubmit) return close(true);
          if (submitButton) submitButton.disabled = true;
          try {
            const result = await onsubmit(form);
            if (result !== KEEP_OPEN) close(result);
          } catch (error) {
            showErrors(form, error);
          } finally {
            if (submitButton) submitButton.disabled = false;
          }
        },
      },
      el("h2", {}, title),
      body,
      errors,
      el(
        "div",
        { class: "buttons" },
        cancel ? el("button", { type: "button", dataset: { action: "cancel" }, onclick: () => close(null) }, cancel) : null,
        submitButton,
      ),
    );
    // Editing a field takes its error away.
    form.addEventListener("input", (event) => {
      const holder = event.target.closest(".field");
      if (holder) holder.querySelectorAll(".field-error").forEach((e) => e.remove());
      event.target.classList.remove("invalid");
    });
    const overlay = el("div", { class: "overlay" }, form);
    overlay.addEventListener("keydown", (event) => {
      if (event.key === "Escape") return close(null);
      if (event.key !== "Tab") return;
      // Focus stays inside the dialog.
      const items = [...form.querySelectorAll("input, select, textarea, button, a[href]")].filter((x) => !x.disabled && x.offsetParent !== null);
      if (!items.length) return;
      const [first, last] = [items[0], items[items.length - 1]];
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first.focus();
      }
    });
    document.body.append(overlay);
    const first = form.querySelector("input:not([disabled]), select, textarea, button.primary");
    if (first) first.focus();
  });
}

/** Removes the errors shown in `scope`. */
export function clearErrors(scope) {
  scope.querySelectorAll(".field-error").forEach((e) => e.remove());
  scope.querySelectorAll(".invalid").forEach((e) => e.classList.remove("invalid"));
  const box = scope.querySelector(".form-errors");
  if (box) box.replaceChildren();
}

/**
 * Shows an API error in `scope`: each problem next to the field its pointer or name names
 * (`data-pointer` / `data-field`), the rest in the form's error box.
 */
export function showErrors(scope, error) {
  const problems = (error.body && error.body.problems) || [];
  const rest = [];
  for (const problem of problems) {
    const where = problem.path !== undefined ? problem.path : problem.field;
    const key = problem.path !== undefined ? "pointer" : "field";
    // `allowedDestinations/2` belongs to the `allowedDestinations` input.
    const target = where !== undefined && (scope.querySelector(`[data-${key}="${CSS.escape(where)}"]`)
      || (key === "field" && scope.querySelector(`[data-field="${CSS.escape(String(where).split("/")[0])}"]`)));
    if (target) {
      target.classList.add("invalid");
      const holder = target.closest(".field") || target;
      holder.append(el("div", { class: "field-error", role: "alert" }, problem.message));
    } else rest.push(where ? `${where}: ${problem.message}` : problem.message);
  }
  if (!problems.length) rest.push(error.message);
  const box = scope.querySelector(".form-errors");
  if (box && rest.length) fill(box, rest.map((m) => el("div", {}, m)));
  else if (rest.length) toast(rest.join("; "), true);
}

/** A short message at the bottom of the page. */
export function toast(message, isError = false) {
  document.querySelectorAll(".toast").forEach((t) => t.remove());
  const note = el("div", { class: isError ? "toast error" : "toast", role: "status" }, message);
  window.addEventListener("hashchange", () => note.remove(), { once: true });
  document.body.append(note);
  setTimeout(() => note.remove(), 4000);
}

/** A labelled field. */
export function field(label, input, hint) {
  return el("label", { class: "field" }, el("span", { class: "label" }, label), input, hint ? el("small", {}, hint) : null);
}

/** Milliseconds since the epoch as local date and time. */
export function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "";
}

/** The bytes of a File as base64. */
export async function base64File(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** A page header with a title and buttons at the right. */
export function pageHeader(title, ...buttons) {
  return el("div", { class: "page-header" }, el("h1", {}, title), el("div", { class: "actions" }, buttons));
}

/** Prev/next paging for an API page (`totalElements`, `hasNext`). */
export function pager(page, pageSize, result, go) {
  const from = result.totalElements ? page * pageSize + 1 : 0;
  const to = page * pageSize + result.data.length;
  return el(
    "div",
    { class: "pager" },
    el("span", { class: "range" }, `${from}–${to} of ${result.totalElements}`),
    iconButton("‹", "Previous page", () => go(page - 1), { disabled: page === 0 }),
    iconButton("›", "Next page", () => go(page + 1), { disabled: !result.hasNext }),
  );
}

/**
 * A "{ }" button that switches `holder` (inside `scope`) between a form and the whole document as
 * JSON. `fromForm()` reads the document from the form; `toForm(doc)` shows a document in the form
 * again (rendering it into `holder`). `current()` is the document of either view; it throws
 * `"JSON: …"` when the text does not parse (show it with `showJsonError`).
 */
export function jsonView(scope, holder, label, fromForm, toForm) {
  let showing = false;
  const area = el("textarea", { class: "json-view", rows: 24, "aria-label": label, dataset: { pointer: "" } });
  const parse = () => {
    try {
      return JSON.parse(area.value);
    } catch (error) {
      throw new Error(`JSON: ${error.message}`);
    }
  };
  const current = () => (showing ? parse() : fromForm());
  const toggle = iconButton("{ }", "JSON view", () => {
    clearErrors(scope);
    try {
      if (showing) {
        const doc = parse();
        showing = false;
        toForm(doc);
      } else {
        area.value = JSON.stringify(fromForm(), null, 2);
        fill(holder, area);
        showing = true;
      }
    } catch (error) {
      showJsonError(scope, error);
    }
  }, { class: "icon json-toggle" });
  return { toggle, current };
}

/**
 * The Save button of an editor: `current()` (the form or its JSON view) is created at `path`
 * (POST) or replaces `${path}/${id}` (PUT); problems show at their fields in `scope`.
 * `saved(result)` runs after a save, with a toast naming `what`; `failed(error)`, when given,
 * shows a refusal instead.
 */
export function saveButton(scope, current, { path, id, what, saved, failed }) {
  return el("button", {
    type: "button",
    class: "primary",
    dataset: { action: "save" },
    onclick: async () => {
      clearErrors(scope);
      let body;
      try {
        body = current();
      } catch (error) {
        return showJsonError(scope, error);
      }
      try {
        const result = id ? await api("PUT", `${path}/${id}`, body) : await api("POST", path, body);
        toast(`${what} '${result.name}' saved`);
        saved(result);
      } catch (error) {
        if (failed) failed(error);
        else showErrors(scope, error);
      }
    },
  }, "Save");
}

/** Shows a `current()` parse error of a JSON view in the form's error box. */
export function showJsonError(scope, error) {
  showErrors(scope, { message: error.message, body: {} });
}
