// One edge's route for Cytoscape, as the circuit figure draws it (circuits.app.figures.routes):
// a quadratic Bézier whose control point sits `bend` figure units left of the chord's
// midpoint. Cytoscape's unbundled-bezier takes that point as a distance from, and a weight
// along, the source-target line in pixels (edge-distances: node-position).
window.edgeRoute = function (source, target, bend, SX, SY) {
  "use strict";
  const dx = target.x - source.x, dy = target.y - source.y;
  const len = Math.hypot(dx, dy) || 1;
  const cx = (source.x + target.x) / 2 - (bend * dy) / len;
  const cy = (source.y + target.y) / 2 + (bend * dx) / len;
  // to pixels: y grows downwards on the page
  const px = source.x * SX, py = -source.y * SY;
  const vx = target.x * SX - px, vy = -target.y * SY - py;
  const wx = cx * SX - px, wy = -cy * SY - py;
  const l2 = vx * vx + vy * vy || 1;
  return { cpw: (wx * vx + wy * vy) / l2, cpd: (wy * vx - wx * vy) / Math.sqrt(l2) };
};
