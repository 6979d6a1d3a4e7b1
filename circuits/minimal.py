"""Old import path, kept so existing code keeps working: this module *is* :mod:`circuits.search.minimal`."""

import sys

from circuits.search import minimal

sys.modules[__name__] = minimal
