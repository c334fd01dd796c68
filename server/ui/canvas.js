// The rule chain canvas: nodes where `additionalInfo.layoutX/layoutY` put them (ThingsBoard's
// shape), connections as arrows labelled with their relation. Pointer events only (no HTML
// drag and drop), so a mouse, a pen and WebDriver's actions all drive it the same way.
//
// Drag the background to pan, the wheel to zoom; click a node to select it (Shift or Ctrl adds),
// Shift+drag the background to select a rectangle, drag selected nodes to move them; drag from a
// node's port (the dot on its right) to another node to connect them, choosing the relation;
// click an arrow to select it; Delete removes the selection (nodes after a confirmation);
// Ctrl+Z / Ctrl+Shift+Z undo and redo; double-click a node to open its form.

import { dialog, el, iconPath } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const NODE_W = 190;
const NODE_H = 52;
const GRID_X = 250;
const GRID_Y = 100;

/** What a node of `type` may answer, for the relation chooser; `custom`: any name (a switch). */
export function relationsOf(descriptor, node) {
  if (!descriptor) return { names: ["Success", "Failure"], custom: true };
  if (node.type === "script") {
    const mode = node.configuration && node.configuration.mode;
    if (mode === "filter") return { names: ["True", "False", "Failure"], custom: false };
    if (mode === "switch") return { names: ["Failure"], custom: true };
  }
  return { names: descriptor.relations || ["Success", "Failure"], custom: Boolean(descriptor.customRelations) };
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Whether a node's configuration names a secret (the key badge). */
function usesSecrets(node) {
  return JSON.stringify(node.configuration || {}).includes("$<secret:");
}

function position(node) {
  const info = node.additionalInfo || {};
  return { x: Number(info.layoutX), y: Number(info.layoutY) };
}

function hasPosition(node) {
  const { x, y } = position(node);
  return Number.isFinite(x) && Number.isFinite(y);
}

function place(node, x, y) {
  node.additionalInfo = { ...(node.additionalInfo || {}), layoutX: Math.round(x), layoutY: Math.round(y) };
}

/**
 * Lays out every node in columns by its distance from the first node along the connections
 * (nodes no connection reaches go in a last column): for chains without positions.
 */
export function autoLayout(doc) {
  const depth = new Map();
  const start = doc.nodes.length ? Math.min(doc.firstNodeIndex || 0, doc.nodes.length - 1) : 0;
  const queue = doc.nodes.length ? [start] : [];
  depth.set(start, 0);
  while (queue.length) {
    const i = queue.shift();
    for (const c of doc.connections) {
      if (c.fromIndex === i && !depth.has(c.toIndex) && c.toIndex < doc.nodes.length) {
        depth.set(c.toIndex, depth.get(i) + 1);
        queue.push(c.toIndex);
      }
    }
  }
  const last = Math.max(0, ...depth.values()) + 1;
  const rows = new Map();
  doc.nodes.forEach((node, i) => {
    const column = depth.has(i) ? depth.get(i) : last;
    const row = rows.get(column) || 0;
    rows.set(column, row + 1);
    place(node, 60 + column * GRID_X, 60 + row * GRID_Y);
  });
}

/**
 * The canvas over `doc` (the chain document, changed in place). `types`: the node types;
 * `editable`: whether the user may change it; `onOpen(i)`: a node double-clicked; `onInspect(i,
 * step)`: a node of the lit path clicked, with its step of the trace; `onChange()`:
 * after every change (for the unsaved marker); `askRelation(from, to)`: resolves with the
 * relation for a new connection, or null.
 */
export function chainCanvas({ doc, types, editable, onOpen, onChange, askRelation, onInspect = () => {} }) {
  const descriptor = (type) => types.find((t) => t.type === type);
  if (doc.nodes.some((n) => !hasPosition(n))) autoLayout(doc);
  const view = { x: 0, y: 0, k: 1 };
  let selected = new Set();
  let selectedEdge = null;
  let lit = null; // {nodes: Map(index → step), edges: Set("from>to>relation")}
  let problems = new Set();
  const history = [JSON.stringify(doc)];
  let future = [];

  const edges = svg("g", { class: "edges" });
  const nodes = svg("g", { class: "nodes" });
  const overlay = svg("g", { class: "drafts" });
  const viewport = svg("g", { class: "viewport" }, edges, nodes, overlay);
  const defs = svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 10, markerHeight: 10, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" },
    svg("path", { d: "M0 0L10 5L0 10z", class: "arrow-head" })));
  const root = svg("svg", { class: "chain-canvas", tabindex: 0, role: "application", "aria-label": "Rule chain canvas" }, defs, viewport);

  const applyView = () => viewport.setAttribute("transform", `translate(${view.x} ${view.y}) scale(${view.k})`);

  /** Screen point → canvas point. */
  const toCanvas = (event) => {
    const box = root.getBoundingClientRect();
    return { x: (event.clientX - box.left - view.x) / view.k, y: (event.clientY - box.top - view.y) / view.k };
  };

  const changed = () => {
    history.push(JSON.stringify(doc));
    if (history.length > 200) history.shift();
    future = [];
    render();
    onChange();
  };

  const restore = (text) => {
    const state = JSON.parse(text);
    doc.name = state.name;
    doc.firstNodeIndex = state.firstNodeIndex;
    doc.nodes = state.nodes;
    doc.connections = state.connections;
    selected = new Set([...selected].filter((i) => i < doc.nodes.length));
    selectedEdge = null;
    render();
    onChange();
  };

  function undo() {
    if (history.length < 2) return;
    future.push(history.pop());
    restore(history[history.length - 1]);
  }

  function redo() {
    if (!future.length) return;
    const next = future.pop();
    history.push(next);
    restore(next);
  }

  function edgePath(from, to) {
    const a = position(from);
    const b = position(to);
    const sx = a.x + NODE_W;
    const sy = a.y + NODE_H / 2;
    const tx = b.x;
    const ty = b.y + NODE_H / 2;
    const bend = Math.max(40, Math.abs(tx - sx) / 2);
    return { d: `M${sx} ${sy}C${sx + bend} ${sy} ${tx - bend} ${ty} ${tx} ${ty}`, mx: (sx + tx) / 2, my: (sy + ty) / 2 };
  }

  function render() {
    renderEdges();
    nodes.replaceChildren(...doc.nodes.map((node, i) => nodeItem(node, i)));
  }

  function renderEdges() {
    const edgeItems = [];
    const seen = new Map();
    doc.connections.forEach((c, k) => {
      const from = doc.nodes[c.fromIndex];
      const to = doc.nodes[c.toIndex];
      if (!from || !to) return;
      const pair = `${c.fromIndex}>${c.toIndex}`;
      const nth = seen.get(pair) || 0;
      seen.set(pair, nth + 1);
      const { d, mx, my } = edgePath(from, to);
      const key = `${c.fromIndex}>${c.toIndex}>${c.type}`;
      const classes = ["edge", selectedEdge === k ? "selected" : "", lit && lit.edges.has(key) ? "lit" : ""].join(" ");
      edgeItems.push(svg("g", {
        class: classes,
        dataset: { index: k, from: c.fromIndex, to: c.toIndex, relation: c.type },
        onpointerdown: (e) => {
          e.stopPropagation();
          selectedEdge = k;
          selected = new Set();
          showSelection();
          root.focus();
        },
      },
      svg("path", { d, class: "hit" }),
      svg("path", { d, class: "line", "marker-end": "url(#arrow)" }),
      svg("text", { x: mx, y: my - 6 + nth * 14, class: "relation", "text-anchor": "middle" }, c.type)));
    });
    edges.replaceChildren(...edgeItems);
  }

  function nodeItem(node, i) {
    const { x, y } = position(node);
    const t = descriptor(node.type);
    const step = lit && lit.nodes.get(i);
    const classes = ["node",
      selected.has(i) ? "selected" : "",
      node.type === "placeholder" ? "disabled" : "",
      problems.has(i) ? "error" : "",
      step ? (step.error ? "lit failed" : "lit") : "",
      i === doc.firstNodeIndex ? "first" : ""].join(" ");
    const badges = [];
    if (usesSecrets(node)) {
      badges.push(svg("path", { d: iconPath("🔑"), class: "badge key", transform: `translate(${NODE_W - 40} 6) scale(0.7)` }, svg("title", {}, "Uses secrets")));
    }
    // Debug mode is a toggle on the node itself (saved with the chain).
    badges.push(svg("g", {
      class: node.debugMode ? "debug-toggle on" : "debug-toggle",
      dataset: { debug: i },
      onpointerdown: (e) => {
        e.stopPropagation();
        if (!editable) return;
        node.debugMode = !node.debugMode;
        changed();
      },
    }, svg("circle", { cx: NODE_W - 14, cy: 14, r: 6 }), svg("title", {}, node.debugMode ? "Debug mode on: click to turn it off" : "Debug mode off: click to turn it on")));
    const group = svg("g", {
      class: classes,
      transform: `translate(${x} ${y})`,
      dataset: { index: i, type: node.type, name: node.name },
      onpointerdown: (e) => nodeDown(e, i),
    },
    svg("rect", { width: NODE_W, height: NODE_H, rx: 6, class: "box" }),
    svg("rect", { width: 6, height: NODE_H, rx: 2, class: "stripe" }),
    i === doc.firstNodeIndex ? svg("path", { d: `M-14 ${NODE_H / 2 - 7}L-4 ${NODE_H / 2}L-14 ${NODE_H / 2 + 7}z`, class: "first-marker" }) : null,
    svg("text", { x: 14, y: 20, class: "type" }, t ? node.type : `${node.type} (unknown)`),
    svg("text", { x: 14, y: 40, class: "name" }, node.name || "(no name)"),
    badges,
    step ? svg("text", { x: 14, y: NODE_H + 14, class: "step" }, `${(step.relation || []).join(", ") || "—"}${step.error ? ": " + step.error : ""}`) : null,
    editable ? svg("circle", { cx: NODE_W, cy: NODE_H / 2, r: 7, class: "port", dataset: { port: i }, onpointerdown: (e) => portDown(e, i) }) : null);
    return group;
  }

  // ---- pointer gestures ----

  let gesture = null;

  /** Keeps the pointer's events on the canvas while a gesture lasts (when the pointer is real). */
  const capture = (event) => {
    try {
      root.setPointerCapture(event.pointerId);
    } catch {
      // A synthetic pointer has nothing to capture.
    }
  };

  /** The selection's classes on the drawn nodes and arrows (nothing is drawn anew, so a
   * double click lands on the element its first click did). */
  function showSelection() {
    for (const g of nodes.children) g.classList.toggle("selected", selected.has(Number(g.dataset.index)));
    for (const g of edges.children) g.classList.toggle("selected", Number(g.dataset.index) === selectedEdge);
  }

  let lastDown = { i: null, t: 0 };

  function nodeDown(event, i) {
    event.stopPropagation();
    root.focus();
    // Two presses on a node within 400 ms open it (as a double click, for any pointer).
    const now = performance.now();
    if (lastDown.i === i && now - lastDown.t < 400) {
      lastDown = { i: null, t: 0 };
      onOpen(i);
      return;
    }
    lastDown = { i, t: now };
    selectedEdge = null;
    if (event.shiftKey || event.ctrlKey || event.metaKey) {
      if (selected.has(i)) selected.delete(i);
      else selected.add(i);
    } else if (!selected.has(i)) {
      selected = new Set([i]);
    }
    showSelection();
    // A node the last test message went through: what it got and sent.
    if (lit && lit.nodes.has(i)) onInspect(i, lit.nodes.get(i));
    if (!editable) return;
    const start = toCanvas(event);
    const origins = new Map([...selected].map((j) => [j, position(doc.nodes[j])]));
    gesture = { kind: "move", start, origins, moved: false };
    capture(event);
  }

  function portDown(event, i) {
    event.stopPropagation();
    const p = toCanvas(event);
    const line = svg("path", { class: "draft" });
    overlay.append(line);
    gesture = { kind: "connect", from: i, line, start: p };
    capture(event);
  }

  root.addEventListener("pointerdown", (event) => {
    root.focus();
    if (event.button !== 0) return;
    const start = toCanvas(event);
    if (event.shiftKey) {
      const band = svg("rect", { class: "band" });
      overlay.append(band);
      gesture = { kind: "band", start, band };
    } else {
      selected = new Set();
      selectedEdge = null;
      showSelection();
      gesture = { kind: "pan", sx: event.clientX, sy: event.clientY, vx: view.x, vy: view.y };
    }
    capture(event);
  });

  root.addEventListener("pointermove", (event) => {
    if (!gesture) return;
    if (gesture.kind === "pan") {
      view.x = gesture.vx + event.clientX - gesture.sx;
      view.y = gesture.vy + event.clientY - gesture.sy;
      applyView();
    } else if (gesture.kind === "move") {
      const p = toCanvas(event);
      const dx = p.x - gesture.start.x;
      const dy = p.y - gesture.start.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) gesture.moved = true;
      // The nodes drawn stay (a pointer on one keeps its target); only their places change.
      for (const [j, o] of gesture.origins) {
        place(doc.nodes[j], o.x + dx, o.y + dy);
        const q = position(doc.nodes[j]);
        nodes.children[j].setAttribute("transform", `translate(${q.x} ${q.y})`);
      }
      renderEdges();
    } else if (gesture.kind === "connect") {
      const from = position(doc.nodes[gesture.from]);
      const p = toCanvas(event);
      gesture.line.setAttribute("d", `M${from.x + NODE_W} ${from.y + NODE_H / 2}L${p.x} ${p.y}`);
    } else if (gesture.kind === "band") {
      const p = toCanvas(event);
      const x = Math.min(p.x, gesture.start.x);
      const y = Math.min(p.y, gesture.start.y);
      Object.entries({ x, y, width: Math.abs(p.x - gesture.start.x), height: Math.abs(p.y - gesture.start.y) })
        .forEach(([k, v]) => gesture.band.setAttribute(k, v));
    }
  });

  root.addEventListener("pointerup", async (event) => {
    const g = gesture;
    gesture = null;
    if (!g) return;
    if (g.kind === "move" && g.moved) changed();
    if (g.kind === "band") {
      const p = toCanvas(event);
      const [x1, x2] = [Math.min(p.x, g.start.x), Math.max(p.x, g.start.x)];
      const [y1, y2] = [Math.min(p.y, g.start.y), Math.max(p.y, g.start.y)];
      selected = new Set(doc.nodes.map((n, i) => [position(n), i])
        .filter(([q]) => q.x >= x1 && q.x + NODE_W <= x2 && q.y >= y1 && q.y + NODE_H <= y2)
        .map(([, i]) => i));
      g.band.remove();
      showSelection();
    }
    if (g.kind === "connect") {
      g.line.remove();
      const target = nodeAt(toCanvas(event));
      if (target === null || target === g.from) return;
      const relation = await askRelation(g.from, target);
      if (!relation) return;
      if (doc.connections.some((c) => c.fromIndex === g.from && c.toIndex === target && c.type === relation)) return;
      doc.connections.push({ fromIndex: g.from, toIndex: target, type: relation });
      changed();
    }
  });

  function nodeAt(p) {
    for (let i = doc.nodes.length - 1; i >= 0; i--) {
      const q = position(doc.nodes[i]);
      if (p.x >= q.x && p.x <= q.x + NODE_W && p.y >= q.y && p.y <= q.y + NODE_H) return i;
    }
    return null;
  }

  root.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = root.getBoundingClientRect();
    const mx = event.clientX - box.left;
    const my = event.clientY - box.top;
    const k = Math.min(3, Math.max(0.2, view.k * (event.deltaY < 0 ? 1.1 : 1 / 1.1)));
    view.x = mx - ((mx - view.x) * k) / view.k;
    view.y = my - ((my - view.y) * k) / view.k;
    view.k = k;
    applyView();
  }, { passive: false });

  root.addEventListener("keydown", async (event) => {
    const mod = event.ctrlKey || event.metaKey;
    if (mod && event.key.toLowerCase() === "z") {
      event.preventDefault();
      if (event.shiftKey) redo();
      else undo();
    } else if (mod && event.key.toLowerCase() === "y") {
      event.preventDefault();
      redo();
    } else if ((event.key === "Delete" || event.key === "Backspace") && editable) {
      event.preventDefault();
      await deleteSelection();
    }
  });

  async function deleteSelection() {
    if (selectedEdge !== null) {
      doc.connections.splice(selectedEdge, 1);
      selectedEdge = null;
      changed();
      return;
    }
    if (!selected.size) return;
    const names = [...selected].map((i) => doc.nodes[i].name || doc.nodes[i].type);
    const body = el("p", {}, selected.size === 1 ? `Delete the node '${names[0]}' and its connections?` : `Delete ${selected.size} nodes (${names.join(", ")}) and their connections?`);
    if (!(await dialog("Delete nodes", body, { submit: "Delete", id: "delete-nodes" }))) return;
    removeNodes([...selected]);
    selected = new Set();
    changed();
    root.focus();
  }

  /** Removes nodes and their connections, renumbering what stays. */
  function removeNodes(indices) {
    const gone = new Set(indices);
    const renumber = new Map();
    const kept = [];
    doc.nodes.forEach((n, i) => {
      if (!gone.has(i)) {
        renumber.set(i, kept.length);
        kept.push(n);
      }
    });
    doc.connections = doc.connections
      .filter((c) => renumber.has(c.fromIndex) && renumber.has(c.toIndex))
      .map((c) => ({ ...c, fromIndex: renumber.get(c.fromIndex), toIndex: renumber.get(c.toIndex) }));
    doc.firstNodeIndex = renumber.get(doc.firstNodeIndex) ?? 0;
    doc.nodes = kept;
  }

  /** Shows every node: the view fits the chain's bounding box. */
  function fit() {
    const box = root.getBoundingClientRect();
    if (!doc.nodes.length || !box.width) return;
    const xs = doc.nodes.map((n) => position(n).x);
    const ys = doc.nodes.map((n) => position(n).y);
    const [x1, y1] = [Math.min(...xs) - 40, Math.min(...ys) - 40];
    const [x2, y2] = [Math.max(...xs) + NODE_W + 40, Math.max(...ys) + NODE_H + 60];
    view.k = Math.min(1.5, Math.max(0.2, Math.min(box.width / (x2 - x1), box.height / (y2 - y1))));
    view.x = (box.width - (x2 - x1) * view.k) / 2 - x1 * view.k;
    view.y = (box.height - (y2 - y1) * view.k) / 2 - y1 * view.k;
    applyView();
  }

  render();
  applyView();
  return {
    element: root,
    fit,
    undo,
    redo,
    /** Adds a node of `type` at the screen point of `event` (a palette drop). */
    addAt(type, event) {
      const t = descriptor(type);
      const p = toCanvas(event);
      const node = { type, name: `${type} ${doc.nodes.length + 1}`, debugMode: false, configuration: structuredClone(t.defaultConfiguration) };
      place(node, p.x - NODE_W / 2, p.y - NODE_H / 2);
      doc.nodes.push(node);
      selected = new Set([doc.nodes.length - 1]);
      changed();
    },
    /** Whether a screen point is over the canvas. */
    covers(event) {
      const box = root.getBoundingClientRect();
      return event.clientX >= box.left && event.clientX <= box.right && event.clientY >= box.top && event.clientY <= box.bottom;
    },
    layout() {
      autoLayout(doc);
      changed();
      fit();
    },
    /** Marks the nodes a problem names (by index). */
    markProblems(indices) {
      problems = new Set(indices);
      render();
    },
    /** Lights the path a test message took: `trace` from `?wait=true`. */
    light(trace) {
      const ids = new Map(doc.nodes.map((n, i) => [n.id, i]));
      const litNodes = new Map();
      const litEdges = new Set();
      for (const step of trace || []) {
        const i = ids.get(step.nodeId);
        if (i === undefined) continue;
        litNodes.set(i, step);
        for (const relation of step.relation || []) {
          for (const c of doc.connections) if (c.fromIndex === i && c.type === relation) litEdges.add(`${c.fromIndex}>${c.toIndex}>${c.type}`);
        }
      }
      lit = { nodes: litNodes, edges: litEdges };
      render();
    },
    /** A change made outside (a form, the first node): recorded for undo and drawn. */
    changed,
    render,
    selection: () => [...selected],
  };
}

/** The relation chooser for a new connection: the relations the source may answer, or a name. */
export function relationDialog(from, to, relations) {
  const options = relations.names.map((name) => el("label", { class: "field check" },
    el("input", { type: "radio", name: "relation", value: name, checked: name === relations.names[0] }), name));
  const custom = relations.custom ? el("input", { name: "custom-relation", placeholder: "or another name", "aria-label": "Relation name" }) : null;
  const body = el("div", { class: "relations" }, el("p", {}, `From '${from.name}' to '${to.name}': which relation?`), options, custom);
  return dialog("Connect", body, {
    submit: "Connect",
    id: "relation-dialog",
    onsubmit: () => {
      if (custom && custom.value.trim()) return custom.value.trim();
      const checked = body.querySelector("input[name=relation]:checked");
      return checked ? checked.value : null;
    },
  });
}
