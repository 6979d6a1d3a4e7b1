"""Old import path, kept so existing code keeps working: this module *is* :mod:`circuits.app.report`."""

import sys

from circuits.app import report

sys.modules[__name__] = report
