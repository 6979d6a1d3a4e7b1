"""Old import path, kept so existing code keeps working: ``circuits.zoo`` *is*
:mod:`circuits.models.zoo`, and ``circuits.zoo.train`` etc. are its submodules (so
``python -m circuits.zoo.train`` still runs)."""

import sys

from circuits.models import zoo
from circuits.models.zoo import card, recipes, tokenizer, train

sys.modules[__name__] = zoo
for _module in (card, recipes, tokenizer, train):
    sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module
