// Two circuits side by side (circuits.app.explorer.compare): each drawn where the static
// figure puts its nodes and routed as it routes edges (edge_route.js); an edge both circuits
// hold is dark grey and drawn on top, one only this run holds is a wider orange band beneath,
// so it never covers a shared edge.
(function () {
  "use strict";
  const P = JSON.parse(document.getElementById("compare-data").textContent);
  const SX = 70, SY = 55;
  const name = (D, r) => D.nodes[D.edges.up[r]].name + "->" + D.ports[D.edges.port[r]].name;
  const circuit = (D) => {
    const s = new Set();
    for (let r = 0; r < D.edges.up.length; r++) if (D.edges.in[r]) s.add(r);
    return s;
  };
  const sets = { a: circuit(P.a), b: circuit(P.b) };
  const names = { a: new Set([...sets.a].map((r) => name(P.a, r))), b: new Set([...sets.b].map((r) => name(P.b, r))) };
  const views = {};
  ["a", "b"].forEach((key) => {
    const D = P[key], other = names[key === "a" ? "b" : "a"];
    const els = D.nodes.map((n, i) => ({ group: "nodes", data: { id: "n" + i, label: n.name }, position: { x: n.x * SX, y: -n.y * SY }, classes: n.kind }));
    sets[key].forEach((r) => {
      const target = D.ports[D.edges.port[r]].target;
      const route = edgeRoute(D.nodes[D.edges.up[r]], D.nodes[target], D.edges.bend[r], SX, SY);
      els.push({ group: "edges", data: { id: "e" + r, source: "n" + D.edges.up[r], target: "n" + target, name: name(D, r), cpd: route.cpd, cpw: route.cpw }, classes: other.has(name(D, r)) ? "shared" : "only" });
    });
    views[key] = cytoscape({
      container: document.getElementById("cy-" + key),
      elements: els,
      layout: { name: "preset" },
      style: [
        { selector: "node", style: { label: "data(label)", "font-size": 9, width: 14, height: 14, "background-color": "#f4a261", "text-valign": "bottom" } },
        { selector: "node.mlp", style: { shape: "rectangle", "background-color": "#2a9d8f" } },
        { selector: "node.input, node.logits, node.port", style: { shape: "diamond", "background-color": "#555" } },
        { selector: "edge", style: { width: 2, "curve-style": "unbundled-bezier", "control-point-distances": "data(cpd)", "control-point-weights": "data(cpw)", "edge-distances": "node-position", opacity: 0.85 } },
        { selector: "edge.shared", style: { "line-color": "#333333", "z-index": 2 } },
        { selector: "edge.only", style: { "line-color": "#e66100", width: 4, opacity: 0.7, "z-index": 1 } },
      ],
    });
    views[key].fit(undefined, 20);
  });
  window.compare = { views, ready: true };
  document.body.dataset.ready = "1";
})();
