// The circuit explorer (circuits.app.explorer): draws the run's graph with Cytoscape.js from the
// JSON in #explorer-data. No network: everything it needs is in the page. With data.live set
// (`circuits serve`), it asks the server for the faithfulness of the edge set shown.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("explorer-data").textContent);
  const E = D.edges;
  const N_EDGES = E.up.length;
  const SX = 70, SY = 55; // figure units to pixels; layers go up as in the static figure
  const PORT_LABELS = { q: "into query (q)", k: "into key (k)", v: "into value (v)", mlp: "into MLP", logits: "into logits" };
  const $ = (id) => document.getElementById(id);

  const edgeName = (r) => D.nodes[E.up[r]].name + "->" + D.ports[E.port[r]].name;
  const edgeKind = (r) => D.ports[E.port[r]].kind;
  const edgeTarget = (r) => D.ports[E.port[r]].target;
  const fmt = (x) => (x === null || x === undefined || Number.isNaN(x) ? "—" : String(Number(Number(x).toPrecision(6))));
  const rankOf = new Map();
  for (let r = 0; r < N_EDGES; r++) rankOf.set(edgeName(r), r);
  let maxAbs = 0;
  for (let r = 0; r < N_EDGES; r++) if (E.score[r] !== null) maxAbs = Math.max(maxAbs, Math.abs(E.score[r]));

  const state = {
    size: D.n_circuit,
    kinds: new Set(["q", "k", "v", "mlp", "logits"]),
    added: new Set(), // ranks beyond the size that the user put in (live mode)
    removed: new Set(), // ranks within the size that the user took out (live mode)
    supernodes: [], // {id, name, nodes: [names], annotation}
    request: 0,
  };

  // ------------------------------------------------------------------ the graph
  const nodeEls = D.nodes.map((n, i) => ({
    group: "nodes",
    data: { id: "n" + i, label: n.kind === "port" ? n.name.replace(/^a\d+\./, "") : n.name, kind: n.kind, idx: i },
    position: { x: n.x * SX, y: -n.y * SY },
    classes: n.kind,
  }));
  const readerEls = [];
  D.nodes.forEach((n, i) => {
    (n.readers || []).forEach((r) => readerEls.push({ group: "edges", data: { id: "p" + i + "_" + r, source: "n" + i, target: "n" + r }, classes: "reader" }));
  });
  const many = N_EDGES > 5000;
  const cy = cytoscape({
    container: $("cy"),
    elements: nodeEls.concat(readerEls),
    layout: { name: "preset" },
    selectionType: "additive",
    boxSelectionEnabled: true,
    hideEdgesOnViewport: many,
    style: [
      { selector: "node", style: { label: "data(label)", "font-size": 9, "text-valign": "bottom", "text-margin-y": 2, width: 16, height: 16, "border-width": 1, "border-color": "#222", opacity: 0.35 } },
      { selector: "node.attention", style: { shape: "ellipse", "background-color": "#f4a261" } },
      { selector: "node.mlp", style: { shape: "rectangle", "background-color": "#2a9d8f" } },
      { selector: "node.input, node.logits", style: { shape: "diamond", "background-color": "#555", width: 20, height: 20, opacity: 1 } },
      { selector: "node.port", style: { shape: "diamond", "background-color": "#fff", width: 9, height: 9, "font-size": 6 } },
      { selector: "node.used", style: { opacity: 1 } },
      { selector: "node:selected", style: { "border-width": 3, "border-color": "#7b2cbf" } },
      { selector: "node.pinned", style: { "border-style": "double", "border-width": 4 } },
      { selector: "node.match", style: { "border-width": 4, "border-color": "#ffb000", opacity: 1 } },
      { selector: ":parent", style: { "background-color": "#f3e8ff", "background-opacity": 0.5, "border-color": "#7b2cbf", "border-width": 2, label: "data(label)", "text-valign": "top", "font-size": 11, "font-weight": "bold", opacity: 1, padding: 10 } },
      // routed as the circuit figure routes them (edge_route.js), so that edges along one
      // column do not lie on top of one another
      { selector: "edge", style: { width: "data(w)", "line-color": "data(color)", "curve-style": "unbundled-bezier", "control-point-distances": "data(cpd)", "control-point-weights": "data(cpw)", "edge-distances": "node-position", opacity: 0.8 } },
      { selector: "edge.k", style: { "line-style": "dashed" } },
      { selector: "edge.v", style: { "line-style": "dotted" } },
      { selector: "edge.mlp", style: { "line-style": "dashed", "line-dash-pattern": [6, 2, 1.5, 2] } },
      { selector: "edge.removed", style: { "line-color": "#bbbbbb", "line-style": "dashed", opacity: 0.6 } },
      { selector: "edge.added", style: { "underlay-color": "#ffb000", "underlay-opacity": 0.4, "underlay-padding": 2 } },
      { selector: "edge.reader", style: { width: 0.6, "line-color": "#999", "curve-style": "straight" } },
      { selector: "edge:selected", style: { "underlay-color": "#7b2cbf", "underlay-opacity": 0.5, "underlay-padding": 3 } },
    ],
  });

  function edgeElement(r) {
    const s = E.score[r];
    const w = s === null ? 0.5 : maxAbs > 0 ? 0.5 + (3.5 * Math.abs(s)) / maxAbs : 1.2;
    const color = s === null || s === 0 ? D.colors.zero : s > 0 ? D.colors.positive : D.colors.negative;
    const kind = edgeKind(r);
    let classes = "real " + kind;
    if (state.removed.has(r)) classes += " removed";
    if (state.added.has(r)) classes += " added";
    const route = edgeRoute(D.nodes[E.up[r]], D.nodes[edgeTarget(r)], E.bend[r], SX, SY);
    return { group: "edges", data: { id: "e" + r, source: "n" + E.up[r], target: "n" + edgeTarget(r), rank: r, w: w, color: color, cpd: route.cpd, cpw: route.cpw }, classes: classes };
  }

  // The edges of the working circuit: the top `size` by the run's ranking, with the user's
  // changes; `removed` ones stay drawn (grey, dashed) so they can be put back.
  function circuitRanks() {
    const out = [];
    for (let r = 0; r < state.size; r++) if (!state.removed.has(r)) out.push(r);
    state.added.forEach((r) => { if (r >= state.size) out.push(r); });
    return out;
  }

  function redraw() {
    const want = new Set();
    for (let r = 0; r < state.size; r++) if (state.kinds.has(edgeKind(r))) want.add(r);
    state.added.forEach((r) => { if (state.kinds.has(edgeKind(r))) want.add(r); });
    cy.batch(() => {
      cy.edges(".real").remove();
      const els = [];
      want.forEach((r) => els.push(edgeElement(r)));
      cy.add(els);
      cy.nodes().removeClass("used");
      const used = new Set(["n0", "n" + (D.nodes.findIndex((n) => n.kind === "logits"))]);
      cy.edges(".real").forEach((e) => { used.add(e.data("source")); used.add(e.data("target")); });
      used.forEach((id) => cy.getElementById(id).addClass("used"));
    });
    // taken-out edges stay drawn (grey) to be put back, but are not part of the circuit
    $("drawn-count").textContent = String(cy.edges(".real").not(".removed").length);
    $("size-value").value = String(state.size);
    $("size").value = String(state.size);
    showEdits();
    showCurveF();
    if (D.live) requestLive();
  }

  // ------------------------------------------------------------------ the edited circuit
  const edited = () => state.added.size + state.removed.size > 0;
  function showEdits() {
    const box = $("edit-state");
    const n = circuitRanks().length;
    box.dataset.edges = String(n);
    box.dataset.edited = edited() ? "1" : "";
    box.textContent = edited()
      ? "edited: the circuit holds " + n + " edges (" + state.removed.size + " of the top " + state.size + " taken out, drawn grey; " + state.added.size + " put in)"
      : "";
  }

  // ------------------------------------------------------------------ f from the curve
  function showCurveF() {
    const n = state.size;
    const ns = D.curve.n_edges, fs = D.curve.f;
    let text;
    const exact = ns.indexOf(n);
    const topN = D.n_circuit === n && E.in.slice(0, n).every((x) => x === 1);
    if (topN && D.faithfulness.f !== null && D.faithfulness.f !== undefined) {
      const ci = D.faithfulness.ci ? " [" + fmt(D.faithfulness.ci[0]) + ", " + fmt(D.faithfulness.ci[1]) + "]" : "";
      text = "f = " + fmt(D.faithfulness.f) + ci + " (the run's circuit, " + D.curve.split + " split)";
      $("curve-f").dataset.value = String(D.faithfulness.f);
    } else if (exact >= 0) {
      text = "f = " + fmt(fs[exact]) + " (measured at " + n + " edges, " + D.curve.split + " split)";
      $("curve-f").dataset.value = String(fs[exact]);
    } else {
      let lo = -1, hi = -1;
      ns.forEach((m, i) => { if (m < n && (lo < 0 || m > ns[lo])) lo = i; if (m > n && (hi < 0 || m < ns[hi])) hi = i; });
      const parts = [];
      if (lo >= 0) parts.push("f = " + fmt(fs[lo]) + " at " + ns[lo]);
      if (hi >= 0) parts.push("f = " + fmt(fs[hi]) + " at " + ns[hi]);
      text = ns.length ? "not measured at " + n + " edges; nearest: " + parts.join(", ") : "no faithfulness curve in this run";
      $("curve-f").dataset.value = "";
    }
    // the run's numbers describe the top-n circuit, not the edited one: say so
    $("curve-f").dataset.original = edited() ? "1" : "";
    $("curve-f").textContent = edited() ? "before the edits, the run's top " + n + ": " + text : text;
  }

  // ------------------------------------------------------------------ hover and click
  const tip = $("tooltip");
  function nodeInfo(i) {
    const n = D.nodes[i];
    const inCircuit = cy.getElementById("n" + i).hasClass("used");
    const lines = ["<b>" + esc(n.name) + "</b>", "kind: " + n.kind + (n.layer >= 0 && n.kind !== "logits" ? ", layer " + n.layer : "") + (n.head >= 0 ? ", head " + n.head : "")];
    lines.push("in drawn circuit: " + (inCircuit ? "yes" : "no"));
    return lines.join("<br>");
  }
  function edgeInfo(r) {
    const p = D.ports[E.port[r]];
    return [
      "<b>" + esc(edgeName(r)) + "</b>",
      "kind: " + PORT_LABELS[p.kind],
      "port: " + esc(p.name),
      'score: <span class="score">' + fmt(E.score[r]) + "</span>",
      "rank: " + (r + 1) + " of " + N_EDGES,
      "in run's circuit: " + (E.in[r] ? "yes" : "no") + (state.removed.has(r) ? " (taken out here)" : state.added.has(r) ? " (put in here)" : ""),
    ].join("<br>");
  }
  function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }
  cy.on("mouseover", "node", (ev) => { if (ev.target.isParent()) return; showTip(ev, nodeInfo(ev.target.data("idx"))); });
  cy.on("mouseover", "edge", (ev) => { if (ev.target.hasClass("reader")) return; showTip(ev, edgeInfo(ev.target.data("rank"))); });
  cy.on("mouseout", "node, edge", () => { tip.style.display = "none"; });
  function showTip(ev, html) {
    tip.innerHTML = html;
    tip.style.display = "block";
    const p = ev.renderedPosition;
    const box = $("cy").getBoundingClientRect();
    // keep the box inside the drawing: flip it to the left / above near the edges
    tip.style.left = (p.x + 330 > box.width ? p.x - 330 : p.x + 14) + "px";
    tip.style.top = (p.y + 130 > box.height ? p.y - 130 : p.y + 14) + "px";
  }

  function nodeEdges(i) {
    const incoming = [], outgoing = [];
    for (let r = 0; r < N_EDGES; r++) {
      if (E.up[r] === i) outgoing.push(r);
      const t = edgeTarget(r);
      if (t === i || (D.nodes[t].readers && D.nodes[t].readers.includes(i))) incoming.push(r);
    }
    return { incoming, outgoing };
  }
  function inCircuitNow(r) { return (r < state.size && !state.removed.has(r)) || state.added.has(r); }
  function edgeRow(r) {
    const box = D.live ? '<input type="checkbox" class="toggle" data-rank="' + r + '"' + (inCircuitNow(r) ? " checked" : "") + "> " : "";
    return '<li data-edge="' + esc(edgeName(r)) + '">' + box + "#" + (r + 1) + " " + esc(edgeName(r)) + " <span class=score>" + fmt(E.score[r]) + "</span>" + (E.in[r] ? " ●" : "") + "</li>";
  }
  function showNode(i) {
    const { incoming, outgoing } = nodeEdges(i);
    const limit = 25;
    const list = (rs) => "<ol>" + rs.slice(0, limit).map(edgeRow).join("") + "</ol>" + (rs.length > limit ? "<p>… " + (rs.length - limit) + " more</p>" : "");
    $("node-panel").innerHTML = "<h3>" + esc(D.nodes[i].name) + "</h3><p>● in the run's circuit" + (D.live ? "; tick to keep in the evaluated circuit" : "") + "</p><h4>incoming (" + incoming.length + ", by rank)</h4>" + list(incoming) + "<h4>outgoing (" + outgoing.length + ", by rank)</h4>" + list(outgoing);
  }
  $("node-panel").addEventListener("change", (ev) => {
    const t = ev.target;
    if (!t.classList.contains("toggle")) return;
    setEdge(Number(t.dataset.rank), t.checked);
  });
  function setEdge(r, on) {
    if (r < state.size) { if (on) state.removed.delete(r); else state.removed.add(r); }
    else { if (on) state.added.add(r); else state.added.delete(r); }
    redraw();
  }
  cy.on("tap", "node", (ev) => { if (!ev.target.isParent()) showNode(ev.target.data("idx")); });
  cy.on("tap", "edge", (ev) => {
    const e = ev.target;
    if (e.hasClass("reader")) return;
    const r = e.data("rank");
    if (D.live) setEdge(r, !inCircuitNow(r));
    else $("node-panel").innerHTML = "<h3>edge</h3><p>" + edgeInfo(r) + "</p>";
  });

  // ------------------------------------------------------------------ controls
  $("size").max = String(N_EDGES);
  $("size-value").max = String(N_EDGES);
  $("n-total").textContent = String(N_EDGES);
  $("size").addEventListener("input", (ev) => { state.size = Number(ev.target.value); redraw(); });
  $("size-value").addEventListener("change", (ev) => {
    state.size = Math.max(0, Math.min(N_EDGES, Math.round(Number(ev.target.value) || 0)));
    redraw();
  });
  document.querySelectorAll("input.kind").forEach((box) => box.addEventListener("change", () => {
    if (box.checked) state.kinds.add(box.value); else state.kinds.delete(box.value);
    redraw();
  }));
  $("search").addEventListener("input", () => {
    const q = $("search").value.trim().toLowerCase();
    cy.nodes().removeClass("match");
    if (!q) { $("search-count").textContent = ""; return; }
    const hits = cy.nodes().filter((n) => !n.isParent() && D.nodes[n.data("idx")].name.toLowerCase().includes(q));
    hits.addClass("match");
    $("search-count").textContent = hits.length + " match" + (hits.length === 1 ? "" : "es");
  });
  $("search").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { const hits = cy.nodes(".match"); if (hits.length) cy.fit(hits, 80); }
  });
  $("reset").addEventListener("click", () => { state.added.clear(); state.removed.clear(); state.size = D.n_circuit; redraw(); });

  // ------------------------------------------------------------------ supernodes
  function selectedNodes() { return cy.nodes(":selected").filter((n) => !n.isParent() && n.data("kind") !== "port"); }
  function addSupernode(name, names, annotation) {
    const id = "sn" + state.supernodes.length + "_" + Date.now();
    cy.add({ group: "nodes", data: { id: id, label: name }, classes: "supernode" });
    names.forEach((nm) => {
      const i = D.nodes.findIndex((n) => n.name === nm);
      if (i >= 0) cy.getElementById("n" + i).move({ parent: id });
    });
    state.supernodes.push({ id, name, nodes: names.slice(), annotation });
    listSupernodes();
  }
  function removeSupernode(k) {
    const sn = state.supernodes[k];
    cy.getElementById(sn.id).children().move({ parent: null });
    cy.getElementById(sn.id).remove();
    state.supernodes.splice(k, 1);
    listSupernodes();
  }
  function listSupernodes() {
    $("supernode-list").innerHTML = state.supernodes.map((s, k) => "<li><b>" + esc(s.name) + "</b>: " + s.nodes.map(esc).join(", ") + (s.annotation ? "<br><i>" + esc(s.annotation) + "</i>" : "") + ' <button class="ungroup" data-k="' + k + '">ungroup</button></li>').join("");
  }
  $("supernode-list").addEventListener("click", (ev) => { if (ev.target.classList.contains("ungroup")) removeSupernode(Number(ev.target.dataset.k)); });
  $("group").addEventListener("click", () => {
    const name = $("group-name").value.trim();
    const picked = selectedNodes().filter((n) => !n.parent().length);
    const msg = $("group-message");
    if (!name) { msg.textContent = "give the group a name first"; return; }
    if (state.supernodes.some((s) => s.name === name)) { msg.textContent = "a group named " + name + " exists"; return; }
    if (!picked.length) { msg.textContent = "select nodes first (click, or shift-drag a box), not already grouped"; return; }
    const names = picked.map((n) => D.nodes[n.data("idx")].name).sort((a, b) => D.nodes.findIndex((n) => n.name === a) - D.nodes.findIndex((n) => n.name === b));
    addSupernode(name, names, $("group-note").value.trim());
    msg.textContent = "grouped " + names.length + " node" + (names.length === 1 ? "" : "s");
    cy.nodes().unselect();
    $("group-name").value = ""; $("group-note").value = "";
  });
  $("pin").addEventListener("click", () => {
    selectedNodes().forEach((n) => { if (n.locked()) { n.unlock(); n.removeClass("pinned"); } else { n.lock(); n.addClass("pinned"); } });
  });
  $("clear-selection").addEventListener("click", () => cy.nodes().unselect());
  function supernodeJSON() {
    const pinned = {};
    cy.nodes(".pinned").forEach((n) => { const p = n.position(); pinned[D.nodes[n.data("idx")].name] = [Number((p.x / SX).toFixed(3)), Number((-p.y / SY).toFixed(3))]; });
    return {
      format: "circuit-discovery-supernodes",
      schema_version: 1,
      model: D.model || "",
      supernodes: state.supernodes.map((s) => ({ name: s.name, nodes: s.nodes, annotation: s.annotation })),
      pinned: pinned,
    };
  }
  $("export").addEventListener("click", () => {
    const text = JSON.stringify(supernodeJSON(), null, 1) + "\n";
    $("export-json").value = text;
    $("export-json").style.display = "block";
    const a = $("download");
    if (a.href && a.href.startsWith("blob:")) URL.revokeObjectURL(a.href);
    a.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    a.style.display = "inline";
    a.click();
  });
  if (D.supernodes) {
    D.supernodes.supernodes.forEach((s) => addSupernode(s.name, s.nodes, s.annotation || ""));
    Object.entries(D.supernodes.pinned || {}).forEach(([nm, xy]) => {
      const i = D.nodes.findIndex((n) => n.name === nm);
      if (i >= 0) { const n = cy.getElementById("n" + i); n.position({ x: xy[0] * SX, y: -xy[1] * SY }); n.lock(); n.addClass("pinned"); }
    });
  }

  // ------------------------------------------------------------------ live ablation
  let liveTimer = null;
  function requestLive() {
    clearTimeout(liveTimer);
    liveTimer = setTimeout(sendLive, 120);
  }
  function sendLive() {
    const id = ++state.request;
    const edges = circuitRanks().map(edgeName);
    $("spinner").style.display = "inline-block";
    $("live-status").textContent = "evaluating " + edges.length + " edges…";
    fetch(D.live.endpoint, { method: "POST", headers: { "Content-Type": "application/json", "X-Circuits-Token": D.live.token }, body: JSON.stringify({ edges }) })
      .then((resp) => resp.json().then((body) => ({ ok: resp.ok, body })))
      .then(({ ok, body }) => {
        if (id !== state.request) return; // a newer request is on its way
        $("spinner").style.display = "none";
        if (!ok) { $("live-status").textContent = "error: " + body.error; return; }
        $("live-f").textContent = fmt(body.f);
        $("live-f").dataset.value = String(body.f);
        $("live-f").dataset.edges = String(body.n_edges);
        $("live-m").textContent = fmt(body.m_circuit);
        $("live-ci").textContent = body.ci ? "[" + fmt(body.ci[0]) + ", " + fmt(body.ci[1]) + "]" : "—";
        $("live-status").textContent = body.n_edges + " edges, " + body.n_examples + " held-out prompts; m(M) " + fmt(body.m_full) + ", m(∅) " + fmt(body.m_empty);
      })
      .catch((err) => { if (id === state.request) { $("spinner").style.display = "none"; $("live-status").textContent = "error: " + err; } });
  }
  if (D.live) $("live").style.display = "block";

  cy.fit(undefined, 30);
  redraw();
  window.explorer = { cy, state, data: D, redraw, supernodeJSON, edgeName, ready: true };
  document.body.dataset.ready = "1";
})();
