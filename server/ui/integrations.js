// Integrations: the list with status and uplink URL, and the editor — LORIOT and HTTP forms from
// their descriptors, with the key icon on the secret-capable fields.

import { allPages, api, can, dialog, el, field, fill, iconButton, jsonView, pageHeader, pager, saveButton, toast } from "./dom.js";
import { configForm } from "./config-form.js";

const VIEW_FIELDS = ["id", "createdTime", "updatedTime", "status", "uplinkPath", "uplinkUrl"];

function uplinkUrl(integration) {
  return integration.uplinkPath ? location.origin + integration.uplinkPath : "";
}

function copyButton(text) {
  return iconButton("⧉", "Copy uplink URL", async () => {
    try {
      await navigator.clipboard.writeText(text);
      toast("Uplink URL copied");
    } catch {
      toast(text);
    }
  });
}

/** `#/integrations` */
export async function integrationsPage() {
  let page = 0;
  const holder = el("div", {});
  const load = async () => {
    const result = await api("GET", `/api/integrations?page=${page}&pageSize=50`);
    fill(holder, listTable(result), pager(page, 50, result, (p) => {
      page = p;
      load();
    }));
  };
  await load();
  return el("section", {}, pageHeader("Integrations",
    can("INTEGRATION", "CREATE") ? iconButton("+", "Add integration", () => (location.hash = "#/integrations/new"), { class: "icon add" }) : null), holder);
}

/** One page of integrations as a table. */
function listTable(result) {
  return el("table", { id: "integrations-table" },
    el("thead", {}, el("tr", {}, ["Name", "Type", "Status", "Uplink URL", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, result.data.length ? result.data.map((i) => el("tr", { dataset: { name: i.name } },
      el("td", {}, el("a", { href: `#/integrations/${i.id}` }, i.name)),
      el("td", {}, i.type),
      el("td", { class: `status ${String(i.status).split(":")[0]}` }, i.status),
      el("td", {}, el("code", {}, uplinkUrl(i)), " ", uplinkUrl(i) ? copyButton(uplinkUrl(i)) : null),
      el("td", { class: "row-actions" }, can("INTEGRATION", "DELETE") ? iconButton("🗑", "Delete", async () => {
        if (!(await dialog("Delete integration", el("p", {}, `Delete the integration '${i.name}'?`), { submit: "Delete" }))) return;
        try {
          await api("DELETE", `/api/integrations/${i.id}`);
          location.reload();
        } catch (error) {
          toast(error.message, true);
        }
      }) : null))) : el("tr", {}, el("td", { colspan: 5, class: "empty" }, "No integrations yet."))));
}

/** What a new integration's uplink converter starts with: a working example for its type. */
const CONVERTER_TEMPLATES = {
  LORIOT: `// payload: LORIOT's uplink ({EUI, port, data (hex), ...}); the result: one message or a list.
// A 4-byte payload: temperature (int16, 0.1 °C) then humidity (uint16, 0.1 %).
let bytes = payload.data;
let t = parse_int(bytes.sub_string(0, 4), 16);
if t > 32767 { t -= 65536; }
let h = parse_int(bytes.sub_string(4, 4), 16);
#{ deviceName: "loriot-" + payload.EUI, telemetry: #{ temperature: t / 10.0, humidity: h / 10.0 } }`,
  HTTP: `// payload: the request body (JSON when it parses, else text); the result: one message or a list.
#{ deviceName: payload.device, telemetry: payload.values }`,
};

/** `#/integrations/new` and `#/integrations/<id>` */
export async function integrationPage(id) {
  const types = await api("GET", "/api/integration-types");
  const chains = can("RULE_CHAIN", "READ") ? await allPages("/api/rule-chains") : [];
  const isNew = id === "new";
  const doc = isNew
    ? { name: "", type: types[0].type, enabled: true, ruleChainId: chains[0] ? chains[0].id : "", configuration: structuredClone(types[0].defaultConfiguration), uplinkConverter: CONVERTER_TEMPLATES[types[0].type] }
    : await api("GET", `/api/integrations/${id}`);
  const status = doc.status;
  const url = uplinkUrl(doc);
  for (const f of VIEW_FIELDS) delete doc[f];
  const editable = isNew ? can("INTEGRATION", "CREATE") : can("INTEGRATION", "WRITE");

  const configHolder = el("div", {});
  let form;
  const renderConfig = () => {
    form = configForm(types.find((t) => t.type === doc.type), doc.configuration, "/configuration");
    fill(configHolder, form.element);
  };
  const typeSelect = () => el("select", {
    name: "type",
    disabled: !isNew,
    dataset: { pointer: "/type" },
    onchange: (e) => {
      const untouched = !doc.uplinkConverter || Object.values(CONVERTER_TEMPLATES).includes(doc.uplinkConverter);
      doc.type = e.target.value;
      doc.configuration = structuredClone(types.find((t) => t.type === doc.type).defaultConfiguration);
      if (untouched) {
        doc.uplinkConverter = CONVERTER_TEMPLATES[doc.type];
        const area = formBody.querySelector("textarea[name=uplinkConverter]");
        if (area) area.value = doc.uplinkConverter || "";
      }
      renderConfig();
    },
  }, types.map((t) => el("option", { value: t.type, selected: t.type === doc.type }, t.type)));
  const text = (key, label, options = {}) => field(label, el("input", {
    name: key, value: doc[key] || "", dataset: { pointer: `/${key}` }, oninput: (e) => (doc[key] = e.target.value || undefined), ...options,
  }));
  const script = (key, label) => {
    const area = el("textarea", { rows: 5, name: key, dataset: { pointer: `/${key}` }, oninput: (e) => (doc[key] = e.target.value || undefined) });
    area.value = doc[key] || "";
    return field(label, area);
  };
  const fields = () => [
    text("name", "Name"),
    field("Type", typeSelect()),
    el("label", { class: "field check" }, el("input", { type: "checkbox", checked: doc.enabled !== false, onchange: (e) => (doc.enabled = e.target.checked) }), el("span", { class: "label" }, "Enabled")),
    field("Rule chain", el("select", { name: "ruleChainId", dataset: { pointer: "/ruleChainId" }, onchange: (e) => (doc.ruleChainId = e.target.value) },
      chains.map((c) => el("option", { value: c.id, selected: c.id === doc.ruleChainId }, c.name)))),
    text("routingKey", "Routing key", { placeholder: "generated when empty" }),
    el("h2", {}, "Configuration"),
    configHolder,
    script("uplinkConverter", "Uplink converter (Rhai)"),
    script("downlinkConverter", "Downlink converter (Rhai)"),
    text("description", "Description"),
  ];
  const formBody = el("div", {}, fields());
  const editor = el("form", { class: "integration-form", onsubmit: (e) => e.preventDefault() },
    el("div", { class: "form-errors", role: "alert" }), formBody);
  renderConfig();

  // The whole document as JSON: every key, also those the form does not show (apiBaseUrl, …).
  const showForm = (parsed) => {
    for (const key of Object.keys(doc)) delete doc[key];
    Object.assign(doc, parsed);
    fill(formBody, fields());
    renderConfig();
  };
  const { toggle, current } = jsonView(editor, formBody, "Integration JSON", () => ({ ...doc, configuration: form.value() }), showForm);

  const save = saveButton(editor, current, {
    path: "/api/integrations",
    id: isNew ? null : id,
    what: "Integration",
    saved: (integration) => {
      location.hash = `#/integrations/${integration.id}`;
      if (!isNew) location.reload();
    },
  });
  return el("section", {},
    pageHeader(isNew ? "New integration" : `Integration '${doc.name}'`, toggle, editable ? save : null),
    isNew ? null : el("dl", { class: "facts" },
      el("dt", {}, "Status"), el("dd", { id: "integration-status" }, status),
      el("dt", {}, "Uplink URL"), el("dd", {}, el("code", {}, url), " ", url ? copyButton(url) : null)),
    editor);
}
