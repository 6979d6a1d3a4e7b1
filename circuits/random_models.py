"""Old import path, kept so existing code keeps working: this module *is* :mod:`circuits.models.random`."""

import sys

from circuits.models import random

sys.modules[__name__] = random
