"""Old import path, kept so existing code keeps working: this module *is* :mod:`circuits.app.cli`."""

import sys

from circuits.app import cli

sys.modules[__name__] = cli
