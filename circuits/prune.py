"""Old import path, kept so existing code keeps working: this module *is* :mod:`circuits.search.select`."""

import sys

from circuits.search import select

sys.modules[__name__] = select
