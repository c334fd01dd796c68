// Rule chains: the list, and the editor — a form per node generated from the node types'
// descriptors (the key icon on exactly the secret-capable fields), connections, a JSON view,
// a test message with its trace, and the debug events.

import { api, can, dialog, el, field, fill, iconButton, jsonView, pageHeader, pager, saveButton, toast, when } from "./dom.js";
import { configForm } from "./config-form.js";

const VIEW_FIELDS = ["id", "createdTime", "updatedTime"];

/** `#/chains` */
export async function chainsPage() {
  let page = 0;
  const body = el("div", { id: "chains-table" });
  const load = async () => {
    const result = await api("GET", `/api/rule-chains?page=${page}&pageSize=50`);
    fill(
      body,
      el("table", {},
        el("thead", {}, el("tr", {}, ["Name", "Updated", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, result.data.length ? result.data.map((c) =>
          el("tr", { dataset: { name: c.name } },
            el("td", {}, el("a", { href: `#/chains/${c.id}` }, c.name)),
            el("td", {}, when(c.updatedTime)),
            el("td", { class: "row-actions" }, can("RULE_CHAIN", "DELETE") ? iconButton("🗑", "Delete", async () => {
              if (!(await dialog("Delete rule chain", el("p", {}, `Delete the rule chain '${c.name}'?`), { submit: "Delete" }))) return;
              try {
                await api("DELETE", `/api/rule-chains/${c.id}`);
                load();
              } catch (error) {
                toast(error.message, true);
              }
            }) : null))) : el("tr", {}, el("td", { colspan: 3, class: "empty" }, "No rule chains yet.")))),
      pager(page, 50, result, (p) => {
        page = p;
        load();
      }),
    );
  };
  await load();
  return el("section", {}, pageHeader("Rule chains",
    can("RULE_CHAIN", "CREATE") ? iconButton("+", "Add rule chain", () => (location.hash = "#/chains/new"), { class: "icon add" }) : null), body);
}

/** `#/chains/new` and `#/chains/<id>` */
export async function chainPage(id) {
  const types = await api("GET", "/api/node-types");
  const descriptor = (type) => types.find((t) => t.type === type);
  const isNew = id === "new";
  const doc = isNew ? { name: "", firstNodeIndex: 0, nodes: [], connections: [] } : await api("GET", `/api/rule-chains/${id}`);
  for (const f of VIEW_FIELDS) delete doc[f];
  doc.connections = doc.connections || [];
  const editable = isNew ? can("RULE_CHAIN", "CREATE") : can("RULE_CHAIN", "WRITE");
  let forms = [];

  const name = el("input", { name: "name", value: doc.name, dataset: { pointer: "/name" }, oninput: (e) => (doc.name = e.target.value) });
  const nodesHolder = el("div", { class: "nodes" });
  const connectionsHolder = el("div", { class: "connections" });
  const formView = el("div", {}, field("Name", name), el("h2", {}, "Nodes"), nodesHolder, el("h2", {}, "Connections"), connectionsHolder);
  const editor = el("form", { class: "chain-form", onsubmit: (e) => e.preventDefault() }, el("div", { class: "form-errors", role: "alert" }), formView);

  /** The document as the form has it now. */
  const fromForm = () => {
    doc.nodes.forEach((node, i) => (node.configuration = forms[i].value()));
    return doc;
  };

  const renderNodes = () => {
    forms = doc.nodes.map((node, i) => configForm(descriptor(node.type), node.configuration, `/nodes/${i}/configuration`));
    fill(nodesHolder, doc.nodes.map((node, i) => el("div", { class: "node card", dataset: { index: i, type: node.type } },
      el("div", { class: "node-head" },
        el("strong", {}, `#${i} ${node.type}`),
        editable ? iconButton("🗑", `Remove node ${node.name || i}`, () => {
          fromForm();
          doc.nodes.splice(i, 1);
          doc.connections = doc.connections
            .filter((c) => c.fromIndex !== i && c.toIndex !== i)
            .map((c) => ({ ...c, fromIndex: c.fromIndex > i ? c.fromIndex - 1 : c.fromIndex, toIndex: c.toIndex > i ? c.toIndex - 1 : c.toIndex }));
          renderNodes();
        }) : null),
      field("Node name", el("input", { value: node.name, dataset: { pointer: `/nodes/${i}/name` }, oninput: (e) => (node.name = e.target.value) })),
      el("label", { class: "field check" }, el("input", { type: "checkbox", checked: node.debugMode, onchange: (e) => (node.debugMode = e.target.checked) }), el("span", { class: "label" }, "Debug mode")),
      forms[i].element)));
    if (editable) {
      const typeSelect = el("select", { "aria-label": "Node type", name: "node-type" }, types.map((t) => el("option", { value: t.type, title: t.description }, t.type)));
      nodesHolder.append(el("div", { class: "add-node" }, typeSelect, el("button", {
        type: "button",
        onclick: () => {
          fromForm();
          const t = descriptor(typeSelect.value);
          doc.nodes.push({ type: t.type, name: `${t.type} ${doc.nodes.length}`, debugMode: false, configuration: structuredClone(t.defaultConfiguration) });
          renderNodes();
        },
      }, "Add node")));
    }
    renderConnections();
  };

  const renderConnections = () => {
    const nodeOptions = (selected) => doc.nodes.map((n, i) => el("option", { value: i, selected: i === selected }, `#${i} ${n.name}`));
    const rows = doc.connections.map((c, k) => el("div", { class: "connection" },
      el("select", { "aria-label": "From", onchange: (e) => (c.fromIndex = Number(e.target.value)) }, nodeOptions(c.fromIndex)),
      el("input", { value: c.type, "aria-label": "Relation", dataset: { pointer: `/connections/${k}/type` }, oninput: (e) => (c.type = e.target.value) }),
      el("select", { "aria-label": "To", onchange: (e) => (c.toIndex = Number(e.target.value)) }, nodeOptions(c.toIndex)),
      editable ? iconButton("×", "Remove connection", () => {
        doc.connections.splice(k, 1);
        renderConnections();
      }) : null));
    fill(connectionsHolder, rows.length ? rows : el("p", { class: "empty" }, "No connections: messages stop after the first node."),
      editable && doc.nodes.length > 1 ? el("button", {
        type: "button",
        onclick: () => {
          doc.connections.push({ fromIndex: 0, toIndex: 1, type: "Success" });
          renderConnections();
        },
      }, "Add connection") : null);
  };

  const showForm = (parsed) => {
    Object.assign(doc, parsed);
    fill(formView, field("Name", name), el("h2", {}, "Nodes"), nodesHolder, el("h2", {}, "Connections"), connectionsHolder);
    name.value = doc.name;
    renderNodes();
  };
  const { toggle, current } = jsonView(editor, formView, "Rule chain JSON", fromForm, showForm);

  const save = saveButton(editor, current, {
    path: "/api/rule-chains",
    id: isNew ? null : id,
    what: "Rule chain",
    saved: (chain) => {
      if (isNew) location.hash = `#/chains/${chain.id}`;
    },
  });

  renderNodes();
  return el("section", {},
    pageHeader(isNew ? "New rule chain" : `Rule chain '${doc.name}'`, toggle, editable ? save : null),
    editor,
    isNew ? null : testPanel(id),
  );
}

/** Send a test message and show its trace; show the debug events. */
function testPanel(id) {
  const data = el("textarea", { rows: 4, "aria-label": "Message data" });
  data.value = '{"temperature": 22}';
  const metadata = el("textarea", { rows: 2, "aria-label": "Message metadata" });
  metadata.value = "{}";
  const out = el("div", { class: "trace", id: "trace" });
  const send = async () => {
    try {
      const result = await api("POST", `/api/rule-chains/${id}/messages?wait=true`, { data: JSON.parse(data.value), metadata: JSON.parse(metadata.value) });
      fill(out, el("table", {},
        el("thead", {}, el("tr", {}, ["Node", "Relation", "Error"].map((h) => el("th", {}, h)))),
        el("tbody", {}, (result.trace || []).map((s) => el("tr", {}, el("td", {}, s.nodeName), el("td", {}, (s.relation || []).join(", ")), el("td", {}, s.error || ""))))));
    } catch (error) {
      fill(out, el("div", { class: "form-errors" }, error.message));
    }
  };
  const events = async () => {
    try {
      const list = await api("GET", `/api/rule-chains/${id}/events`);
      fill(out, list.length ? el("ol", { class: "events" }, list.map((e) => el("li", {}, el("pre", {}, JSON.stringify(e, null, 2))))) : el("p", { class: "empty" }, "No debug events (turn on Debug mode on a node)."));
    } catch (error) {
      fill(out, el("div", { class: "form-errors" }, error.message));
    }
  };
  return el("section", { class: "card test-panel" }, el("h2", {}, "Test"),
    field("Data (JSON)", data), field("Metadata (JSON)", metadata),
    el("div", { class: "buttons" }, el("button", { type: "button", onclick: send }, "Send test message"), el("button", { type: "button", onclick: events }, "Debug events")),
    out);
}
