"""Old import path, kept so existing code keeps working: this module *is* :mod:`attribution.edge_ablation`."""

import sys

from attribution import edge_ablation

sys.modules[__name__] = edge_ablation
