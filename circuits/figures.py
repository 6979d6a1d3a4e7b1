"""Old import path, kept so existing code keeps working: this module *is* :mod:`circuits.app.figures`."""

import sys

from circuits.app import figures

sys.modules[__name__] = figures
