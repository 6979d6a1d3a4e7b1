"""Old import path, kept so existing code keeps working: this module *is* :mod:`graphs.atomic_files`."""

import sys

from graphs import atomic_files

sys.modules[__name__] = atomic_files
