"""Old import path, kept so existing code keeps working: this module *is* :mod:`circuits.app.discovery`."""

import sys

from circuits.app import discovery

sys.modules[__name__] = discovery
