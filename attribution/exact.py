"""Old import path, kept so existing code keeps working: this module *is* :mod:`attribution.methods.exact`."""

import sys

from attribution.methods import exact

sys.modules[__name__] = exact
