// Rule chains: the list (with ThingsBoard import), and the editor — a canvas of nodes and
// connections (canvas.js), a palette of node types, a side panel with the form of the node
// opened (config-form.js, generated from the descriptors), a JSON view, and a test message whose
// path lights up on the canvas.

import { allPages, api, can, dialog, el, field, fill, iconButton, jsonView, pageHeader, pager, saveButton as makeSaveButton, session, showErrors, toast, when } from "./dom.js";
import { configForm } from "./config-form.js";
import { autoLayout, chainCanvas, relationDialog, relationsOf } from "./canvas.js";
import { addSecretDialog } from "./secrets.js";

const VIEW_FIELDS = ["id", "createdTime", "updatedTime"];
const GROUPS = [
  ["External", ["rest_api_call", "mqtt", "rabbitmq", "integration_downlink"]],
  ["Scripts", ["script"]],
  ["Action", ["log"]],
];

/** A chain imported and not saved yet, for the editor at `#/chains/new`. */
let imported = null;

/** `#/chains` */
export async function chainsPage() {
  let page = 0;
  const body = el("div", { id: "chains-table" });
  // Names may repeat (as in ThingsBoard, and two imports of one export): the owner and the id
  // tell chains apart.
  const customers = new Map(session.user.customerId ? [[session.user.customerId, session.user.customerName]] : []);
  if (can("CUSTOMER", "READ")) (await allPages("/api/customers")).forEach((c) => customers.set(c.id, c.name));
  const load = async () => {
    const result = await api("GET", `/api/rule-chains?page=${page}&pageSize=50`);
    fill(
      body,
      el("table", {},
        el("thead", {}, el("tr", {}, ["Name", "Owner", "Id", "Updated", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, result.data.length ? result.data.map((c) =>
          el("tr", { dataset: { name: c.name, id: c.id } },
            el("td", {}, el("a", { href: `#/chains/${c.id}` }, c.name)),
            el("td", { class: "owner" }, c.customerId ? `Customer ${customers.get(c.customerId) || c.customerId}` : "Tenant"),
            el("td", {}, el("code", { title: c.id }, c.id.slice(0, 8))),
            el("td", {}, when(c.updatedTime)),
            el("td", { class: "row-actions" }, can("RULE_CHAIN", "DELETE") ? iconButton("🗑", "Delete", async () => {
              if (!(await dialog("Delete rule chain", el("p", {}, `Delete the rule chain '${c.name}'?`), { submit: "Delete" }))) return;
              try {
                await api("DELETE", `/api/rule-chains/${c.id}`);
                load();
              } catch (error) {
                toast(error.message, true);
              }
            }, { class: "icon danger" }) : null))) : el("tr", {}, el("td", { colspan: 5, class: "empty" }, "No rule chains yet.")))),
      pager(page, 50, result, (p) => {
        page = p;
        load();
      }),
    );
  };
  await load();
  const create = can("RULE_CHAIN", "CREATE");
  return el("section", {}, pageHeader("Rule chains",
    create ? el("button", { type: "button", id: "import-chain", onclick: importDialog }, "Import") : null,
    create ? iconButton("+", "Add rule chain", () => (location.hash = "#/chains/new"), { class: "icon add" }) : null), body);
}

/** Import a ThingsBoard export: the report, then the chain in the editor, not saved yet. */
async function importDialog() {
  const file = el("input", { type: "file", name: "export", accept: ".json,application/json" });
  const keep = el("input", { type: "checkbox", name: "keepUnsupported", checked: true });
  const answer = await dialog("Import a ThingsBoard rule chain", el("div", {},
    field("Export (JSON)", file),
    el("label", { class: "field check" }, keep, el("span", {}, "Keep nodes Veil cannot run as placeholders (the chain keeps its shape)"))), {
    submit: "Import",
    id: "import-dialog",
    onsubmit: async () => {
      if (!file.files.length) throw new Error("Choose the export file");
      let doc;
      try {
        doc = JSON.parse(await file.files[0].text());
      } catch {
        throw new Error("The file is not JSON");
      }
      return api("POST", `/api/rule-chains/import?keepUnsupported=${keep.checked}`, doc);
    },
  });
  if (!answer) return;
  imported = answer;
  location.hash = "#/chains/new";
}

/** What the import did, per node, with "Create" for every missing secret. */
function importReport(report) {
  const missing = el("ul", { class: "missing-secrets" }, report.missingSecrets.map((s) => el("li", { dataset: { secret: s.name } },
    `Secret '${s.name}' (${s.type}) does not exist `,
    can("SECRET", "CREATE") ? el("button", { type: "button", class: "link", onclick: async (e) => {
      const created = await addSecretDialog({ accepts: s.type, suggestedName: s.name });
      if (created) e.target.closest("li").replaceChildren(`Secret '${s.name}' created`);
    } }, "Create") : null)));
  return el("section", { class: "card import-report", id: "import-report" },
    el("h2", {}, "Import report"),
    el("table", {}, el("tbody", {}, report.nodes.map((n) => el("tr", { dataset: { outcome: n.outcome } },
      el("td", {}, n.name), el("td", {}, el("code", {}, n.thingsboardType)),
      el("td", {}, n.outcome === "imported" ? `imported as ${n.veilType}` : n.outcome === "placeholder" ? `placeholder: ${n.reason}` : `left out: ${n.reason}`),
      el("td", { class: "details" }, (n.ignoredSettings || []).length ? `settings left out: ${n.ignoredSettings.join(", ")}` : "",
        (n.writtenOutCredentials || []).length ? el("div", { class: "written-out" }, `credentials written out, not secrets (move them into secrets): ${n.writtenOutCredentials.join(", ")}`) : null))))),
    report.leftOut.length ? el("ul", {}, report.leftOut.map((l) => el("li", {}, l))) : null,
    report.missingSecrets.length ? el("div", {}, el("h3", {}, "Secrets to create before saving"), missing) : null);
}

/** `#/chains/new` and `#/chains/<id>` */
export async function chainPage(id) {
  const types = await api("GET", "/api/node-types");
  const descriptor = (type) => types.find((t) => t.type === type);
  const isNew = id === "new";
  const report = isNew && imported ? imported.report : null;
  const doc = isNew ? (imported ? imported.chain : { name: "", firstNodeIndex: 0, nodes: [], connections: [] }) : await api("GET", `/api/rule-chains/${id}`);
  imported = null;
  for (const f of VIEW_FIELDS) delete doc[f];
  doc.connections = doc.connections || [];
  doc.firstNodeIndex = doc.firstNodeIndex || 0;
  const editable = isNew ? can("RULE_CHAIN", "CREATE") : can("RULE_CHAIN", "WRITE");
  let dirty = isNew && doc.nodes.length > 0;
  let problems = [];

  const errors = el("div", { class: "form-errors", role: "alert" });
  const name = el("input", { name: "name", value: doc.name, placeholder: "Rule chain name", dataset: { pointer: "/name" }, disabled: !editable, oninput: (e) => {
    doc.name = e.target.value;
    markDirty();
  } });
  const panel = el("aside", { class: "node-panel", hidden: true, "aria-label": "Node" });
  const stepHolder = el("div", { id: "step-io", class: "step-io" });
  const canvasHolder = el("div", { class: "canvas-holder" });
  let canvas;
  let openIndex = null;

  const markDirty = () => {
    dirty = true;
    saveButton.classList.add("unsaved");
  };

  const makeCanvas = () => {
    canvas = chainCanvas({
      doc,
      types,
      editable,
      onOpen: openNode,
      onChange: () => {
        markDirty();
        if (openIndex !== null && openIndex >= doc.nodes.length) closePanel();
      },
      onInspect: (i, step) => showStep(stepHolder, doc.nodes[i], step),
      askRelation: (from, to) => relationDialog(doc.nodes[from], doc.nodes[to], relationsOf(descriptor(doc.nodes[from].type), doc.nodes[from])),
    });
    fill(canvasHolder, canvas.element);
    canvas.markProblems(problemNodes());
    requestAnimationFrame(() => canvas.fit());
  };

  const problemNodes = () => [...new Set(problems.map((p) => (p.path || "").match(/^\/nodes\/(\d+)/)).filter(Boolean).map((m) => Number(m[1])))];

  function closePanel() {
    openIndex = null;
    panel.hidden = true;
    panel.replaceChildren();
  }

  /** The side panel with the form of node `i`. */
  function openNode(i) {
    openIndex = i;
    const node = doc.nodes[i];
    const base = `/nodes/${i}`;
    let timer = null;
    const record = () => {
      clearTimeout(timer);
      timer = setTimeout(() => canvas.changed(), 400);
    };
    const form = configForm(descriptor(node.type), node.configuration, `${base}/configuration`, () => {
      node.configuration = form.value();
      canvas.render();
      markDirty();
      record();
    });
    const info = node.additionalInfo || {};
    const description = el("textarea", { rows: 2, dataset: { pointer: `${base}/additionalInfo/description` }, disabled: !editable, oninput: (e) => {
      node.additionalInfo = { ...(node.additionalInfo || {}), description: e.target.value };
      markDirty();
      record();
    } });
    description.value = info.description || "";
    const first = el("button", { type: "button", id: "make-first", disabled: !editable || doc.firstNodeIndex === i, onclick: () => {
      doc.firstNodeIndex = i;
      canvas.changed();
      openNode(i);
    } }, doc.firstNodeIndex === i ? "Messages enter here" : "Make it the first node");
    const t = descriptor(node.type);
    fill(panel,
      el("div", { class: "panel-head" }, el("h2", {}, node.name || node.type), iconButton("×", "Close", closePanel)),
      el("p", { class: "help" }, t ? t.description : `Unknown node type ${node.type}`),
      field("Name", el("input", { value: node.name, name: "node-name", dataset: { pointer: `${base}/name` }, disabled: !editable, oninput: (e) => {
        node.name = e.target.value;
        canvas.render();
        markDirty();
        record();
      } })),
      el("label", { class: "field switch" }, el("input", { type: "checkbox", role: "switch", name: "debugMode", checked: node.debugMode, disabled: !editable, onchange: (e) => {
        node.debugMode = e.target.checked;
        canvas.changed();
      } }), el("span", { class: "slider", "aria-hidden": "true" }), el("span", { class: "label" }, "Debug mode")),
      first,
      form.element,
      field("Description", description),
    );
    panel.hidden = false;
    const mine = problems.filter((p) => (p.path || "").startsWith(`${base}/`) || p.path === base);
    if (mine.length) showErrors(panel, { message: "", body: { problems: mine } });
  }

  // ---- the palette ----
  const search = el("input", { type: "search", placeholder: "Search nodes", "aria-label": "Search nodes", oninput: () => drawPalette() });
  const paletteList = el("div", { class: "palette-list" });
  const drawPalette = () => {
    const q = search.value.trim().toLowerCase();
    const match = (t) => !q || t.type.includes(q) || t.description.toLowerCase().includes(q);
    const listed = new Set(GROUPS.flatMap(([, names]) => names));
    const groups = [...GROUPS, ["Other", types.map((t) => t.type).filter((n) => !listed.has(n) && n !== "placeholder")]];
    fill(paletteList, groups.map(([title, names]) => {
      const items = names.map(descriptor).filter((t) => t && match(t));
      return items.length ? el("div", { class: "palette-group" }, el("h3", {}, title), items.map(paletteItem)) : null;
    }));
  };
  const paletteItem = (t) => el("div", {
    class: "palette-item",
    tabindex: 0,
    role: "button",
    title: t.description,
    dataset: { type: t.type },
    onpointerdown: (e) => startDrag(e, t.type),
    onkeydown: (e) => {
      if (e.key === "Enter") {
        const box = canvas.element.getBoundingClientRect();
        canvas.addAt(t.type, { clientX: box.left + box.width / 2, clientY: box.top + box.height / 2 });
      }
    },
  }, el("strong", {}, t.type), el("small", {}, t.description));

  /** A palette item dragged onto the canvas (pointer events, so any pointer drives it). */
  function startDrag(event, type) {
    if (!editable) return;
    event.preventDefault();
    const ghost = el("div", { class: "drag-ghost" }, type);
    document.body.append(ghost);
    const move = (e) => {
      ghost.style.left = `${e.clientX + 8}px`;
      ghost.style.top = `${e.clientY + 8}px`;
    };
    const up = (e) => {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
      ghost.remove();
      if (canvas.covers(e)) canvas.addAt(type, e);
    };
    move(event);
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  }

  // ---- save, JSON view, leaving ----
  const editor = el("div", { class: "chain-editor" }, el("div", { class: "palette", "aria-label": "Node types" }, search, paletteList), canvasHolder, panel);
  const scope = el("form", { class: "chain-form", onsubmit: (e) => e.preventDefault() }, errors, editor);
  const { toggle, current } = jsonView(scope, editor, "Rule chain JSON", () => doc, (parsed) => {
    Object.assign(doc, parsed);
    doc.connections = doc.connections || [];
    if (doc.nodes.some((n) => !n.additionalInfo || !Number.isFinite(Number(n.additionalInfo.layoutX)))) autoLayout(doc);
    fill(editor, el("div", { class: "palette" }, search, paletteList), canvasHolder, panel);
    makeCanvas();
    markDirty();
  });
  const saveButton = makeSaveButton(scope, current, {
    path: "/api/rule-chains",
    id: isNew ? null : id,
    what: "Rule chain",
    saved: (saved) => {
      problems = [];
      dirty = false;
      saveButton.classList.remove("unsaved");
      if (isNew) location.hash = `#/chains/${saved.id}`;
      else {
        // Node ids assigned by the server, for the trace.
        saved.nodes.forEach((n, i) => doc.nodes[i] && (doc.nodes[i].id = n.id));
        canvas.markProblems([]);
      }
    },
    failed: (error) => {
      problems = (error.body && error.body.problems) || [];
      canvas.markProblems(problemNodes());
      const general = problems.filter((p) => !/^\/nodes\/\d+/.test(p.path || ""));
      showErrors(scope, { message: error.message, body: { problems: general } });
      const nodeProblems = problems.filter((p) => /^\/nodes\/\d+/.test(p.path || ""));
      if (nodeProblems.length) {
        fill(errors, ...errors.childNodes, nodeProblems.map((p) => {
          const i = Number(p.path.match(/^\/nodes\/(\d+)/)[1]);
          return el("div", {}, el("button", { type: "button", class: "link", onclick: () => openNode(i) }, doc.nodes[i] ? doc.nodes[i].name : `node ${i}`), `: ${p.path.replace(/^\/nodes\/\d+/, "")} ${p.message}`);
        }));
      }
      if (openIndex !== null) openNode(openIndex);
    },
  });
  saveButton.disabled = !editable;

  // Leaving with unsaved changes asks (another page of the app, or the browser).
  const beforeUnload = (e) => {
    if (dirty) e.preventDefault();
  };
  window.addEventListener("beforeunload", beforeUnload);
  const leave = (e) => {
    if (location.hash === `#/chains/${id}`) return;
    if (dirty && !confirm("Leave the rule chain without saving your changes?")) {
      e.stopImmediatePropagation();
      history.replaceState(null, "", e.oldURL);
      return;
    }
    window.removeEventListener("hashchange", leave, true);
    window.removeEventListener("beforeunload", beforeUnload);
  };
  window.addEventListener("hashchange", leave, true);

  const toolbar = el("div", { class: "toolbar" },
    iconButton("⤢", "Fit to screen", () => canvas.fit(), { id: "fit" }),
    editable ? el("button", { type: "button", id: "auto-layout", onclick: () => canvas.layout() }, "Auto-layout") : null,
    editable ? el("button", { type: "button", id: "undo", title: "Undo (Ctrl+Z)", onclick: () => canvas.undo() }, "Undo") : null,
    editable ? el("button", { type: "button", id: "redo", title: "Redo (Ctrl+Shift+Z)", onclick: () => canvas.redo() }, "Redo") : null,
    isNew ? null : el("button", { type: "button", id: "export-chain", onclick: () => exportChain(id, doc.name) }, "Export"),
  );

  drawPalette();
  makeCanvas();
  return el("section", { class: "chain-page" },
    pageHeader(isNew ? "New rule chain" : `Rule chain '${doc.name}'`, toggle, saveButton),
    el("div", { class: "chain-bar" }, field("Name", name), toolbar),
    report ? importReport(report) : null,
    scope,
    isNew ? null : testPanel(id, () => canvas, doc, stepHolder),
  );
}

/** Downloads the chain as a ThingsBoard export. */
async function exportChain(id, name) {
  try {
    const doc = await api("GET", `/api/rule-chains/${id}/export`);
    const link = el("a", { href: URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" })), download: `${name || "rule-chain"}.json` });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) {
    toast(error.message, true);
  }
}

/** What a node of the lit path got and sent (masked and cut as debug events are). */
function showStep(holder, node, step) {
  const json = (v) => el("pre", { class: "json" }, JSON.stringify(v, null, 2));
  fill(holder,
    el("h3", {}, `${node ? node.name : step.nodeName}: ${(step.relation || []).join(", ") || "—"}${step.error ? ` — ${step.error}` : ""}`),
    el("div", { class: "test-inputs" },
      el("div", { class: "step-input" }, el("strong", {}, "Input"), json(step.input)),
      el("div", { class: "step-outputs" }, el("strong", {}, "Output"), (step.outputs || []).map((o) => el("div", {}, el("span", { class: "help" }, o.relation), json(o.msg))))));
}

/** Send a test message (data and metadata remembered per chain): the path it took lights up;
 * clicking a node of it shows what the node got and sent. */
function testPanel(id, canvas, doc, stepHolder) {
  const remembered = JSON.parse(localStorage.getItem(`veil.test.${id}`) || "null") || { data: '{"temperature": 22}', metadata: "{}" };
  const data = el("textarea", { rows: 4, "aria-label": "Message data", class: "code" });
  data.value = remembered.data;
  const metadata = el("textarea", { rows: 2, "aria-label": "Message metadata", class: "code" });
  metadata.value = remembered.metadata;
  const out = el("div", { class: "trace", id: "trace" });
  const send = async () => {
    let message;
    try {
      message = { data: JSON.parse(data.value), metadata: JSON.parse(metadata.value) };
    } catch (error) {
      return fill(out, el("div", { class: "form-errors" }, `JSON: ${error.message}`));
    }
    localStorage.setItem(`veil.test.${id}`, JSON.stringify({ data: data.value, metadata: metadata.value }));
    try {
      const result = await api("POST", `/api/rule-chains/${id}/messages?wait=true&messages=true`, message);
      canvas().light(result.trace);
      fill(stepHolder, el("p", { class: "help" }, "Click a node of the lit path to see what it got and sent."));
      fill(out, el("table", {},
        el("thead", {}, el("tr", {}, ["Node", "Relation", "Error"].map((h) => el("th", {}, h)))),
        el("tbody", {}, (result.trace || []).map((s) => el("tr", { dataset: { node: s.nodeId } }, el("td", {}, s.nodeName), el("td", {}, (s.relation || []).join(", ")), el("td", {}, s.error || ""))))));
    } catch (error) {
      fill(out, el("div", { class: "form-errors" }, error.message));
    }
  };
  // Debug events, newest first, refreshed every 2 s while the page shows them.
  const eventsHolder = el("div", { id: "events", class: "events-live" });
  let timer = null;
  const events = async () => {
    try {
      const list = await api("GET", `/api/rule-chains/${id}/events`);
      const names = new Map(doc.nodes.map((n) => [n.id, n.name]));
      fill(eventsHolder, list.length ? el("table", { class: "events" },
        el("thead", {}, el("tr", {}, ["Time", "Node", "Relation", "Duration", "Error", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, [...list].reverse().map((e) => el("tr", { dataset: { seq: e.seq } },
          el("td", {}, when(e.ts)),
          el("td", {}, names.get(e.nodeId) || e.nodeName || e.nodeId || ""),
          el("td", {}, (e.outputs || []).map((o) => o.relation).join(", ")),
          el("td", { class: "num" }, `${((e.durationMicros || 0) / 1000).toFixed(1)} ms`),
          el("td", {}, e.error || ""),
          el("td", {}, el("details", {}, el("summary", {}, "Input and output"), el("pre", {}, JSON.stringify({ input: e.input, outputs: e.outputs }, null, 2)))))))) : el("p", { class: "empty" }, "No debug events yet (turn on debug mode with the dot on a node, then save)."));
    } catch (error) {
      fill(eventsHolder, el("div", { class: "form-errors" }, error.message));
    }
  };
  const live = () => {
    events();
    if (timer) return;
    timer = setInterval(() => {
      if (!document.body.contains(eventsHolder)) {
        clearInterval(timer);
        timer = null;
        return;
      }
      events();
    }, 2000);
  };
  return el("section", { class: "card test-panel" }, el("h2", {}, "Test"),
    el("div", { class: "test-inputs" }, field("Data (JSON)", data), field("Metadata (JSON)", metadata)),
    el("div", { class: "buttons" }, el("button", { type: "button", class: "primary", onclick: send }, "Send test message"), el("button", { type: "button", id: "show-events", onclick: live }, "Debug events")),
    stepHolder,
    out,
    eventsHolder);
}
