"""Old import path, kept so existing code keeps working: this module *is* :mod:`attribution.passes`."""

import sys

from attribution import passes

sys.modules[__name__] = passes
