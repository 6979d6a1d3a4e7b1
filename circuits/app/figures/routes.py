"""How circuit figures route an edge: one quadratic Bézier per edge, bent sideways.

Every circuit picture (the static figure, the position-aware figure, the browser explorer and
``compare.html``) draws an edge from ``start`` to ``end`` as a quadratic Bézier whose control
point sits ``offset`` data units to the left of the chord's midpoint (left of the direction of
travel). The offset has two parts:

- the port kind's bend, a fraction of the edge's length, so that the q, k and v edges between
  the same two nodes stay apart;
- a detour when the straight line would run through other nodes' places (``obstacles``): edges
  along one column (``m0 -> m1``, ``m0 -> m2``, ``m0 -> m3``) would otherwise lie on top of one
  another and read as a chain. The detour is ``step`` per node crossed, so it grows with the
  layer distance and two edges of the same column never share a path. It goes to the side the
  port bend already points to, so the two parts never cancel.

:func:`route_offsets` computes the offsets for many edges at once (the explorer routes every
edge of GPT-2 small); the browser code turns them into Cytoscape control points with the same
formula as :func:`control_point`, and :func:`bezier_path` is the curve the matplotlib figures
draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.path import Path as MplPath

__all__ = ["CLEARANCE", "bezier_path", "control_point", "nodes_crossed", "route_offsets"]

# A node counts as crossed when the straight line passes closer than this to its place (data
# units: a column is 1 wide and a row 1 high), away from the edge's own ends.
CLEARANCE = 0.15
_CHUNK = 2048


def nodes_crossed(
    starts: np.ndarray, ends: np.ndarray, obstacles: np.ndarray, clearance: float = CLEARANCE
) -> np.ndarray:
    """How many of ``obstacles`` (``[M, 2]``) each straight edge ``starts[i] -> ends[i]``
    (``[N, 2]``) runs through, its own ends not counted; int ``[N]``."""
    starts, ends = np.asarray(starts, float).reshape(-1, 2), np.asarray(ends, float).reshape(-1, 2)
    points = np.asarray(obstacles, float).reshape(-1, 2)
    if len(starts) == 0 or len(points) == 0:
        return np.zeros(len(starts), dtype=int)
    if len(starts) > _CHUNK:  # bounded memory for GPT-2 small's 32k edges x 158 nodes
        return np.concatenate(
            [
                nodes_crossed(starts[i : i + _CHUNK], ends[i : i + _CHUNK], points, clearance)
                for i in range(0, len(starts), _CHUNK)
            ]
        )
    chord = ends - starts  # [N, 2]
    length2 = np.maximum((chord**2).sum(axis=1), 1e-12)[:, None]  # [N, 1]
    rel = points[None, :, :] - starts[:, None, :]  # [N, M, 2]
    t = (rel * chord[:, None, :]).sum(axis=2) / length2  # [N, M] along the chord
    foot = starts[:, None, :] + t[..., None] * chord[:, None, :]
    near = np.hypot(*(points[None] - foot).transpose(2, 0, 1)) < clearance
    # strictly between the ends: a node at an end is that end, not an obstacle
    margin = clearance / np.sqrt(length2)
    inside = (t > margin) & (t < 1 - margin)
    return (near & inside).sum(axis=1)


def route_offsets(
    starts: np.ndarray,
    ends: np.ndarray,
    port_bends: Sequence[float] | np.ndarray,
    obstacles: np.ndarray,
    *,
    step: float,
    clearance: float = CLEARANCE,
    sides: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """The control point's sideways offset (data units, positive to the left of travel) of each
    edge: ``port_bends[i] * length`` plus ``step`` per node the straight line would cross
    (closer than ``clearance``), on the side of the port bend; where that is 0, on the side
    ``sides[i]`` (+1 left, -1 right; left by default). Float ``[N]``."""
    starts, ends = np.asarray(starts, float).reshape(-1, 2), np.asarray(ends, float).reshape(-1, 2)
    bends = np.asarray(port_bends, float).reshape(-1)
    length = np.hypot(*(ends - starts).T)
    offset = bends * length
    side = np.ones(len(offset)) if sides is None else np.sign(np.asarray(sides, float))
    side = np.where(offset == 0, side, np.sign(offset))
    return offset + side * step * nodes_crossed(starts, ends, obstacles, clearance)


def control_point(
    start: tuple[float, float], end: tuple[float, float], offset: float
) -> tuple[float, float]:
    """The Bézier control point ``offset`` data units left of the midpoint of ``start -> end``."""
    (x0, y0), (x1, y1) = start, end
    length = float(np.hypot(x1 - x0, y1 - y0)) or 1.0
    nx, ny = -(y1 - y0) / length, (x1 - x0) / length
    return (x0 + x1) / 2 + offset * nx, (y0 + y1) / 2 + offset * ny


def bezier_path(start: tuple[float, float], end: tuple[float, float], offset: float) -> MplPath:
    """The quadratic Bézier from ``start`` to ``end`` whose control point is
    :func:`control_point` (``offset`` to the left of travel), as a matplotlib path."""
    c = control_point(start, end, offset)
    return MplPath([start, c, end], [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3])
