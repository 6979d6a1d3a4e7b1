"""Old import path, kept so existing code keeps working: this module *is* :mod:`circuits.search.faithfulness`."""

import sys

from circuits.search import faithfulness

sys.modules[__name__] = faithfulness
