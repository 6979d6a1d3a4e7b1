"""Distributed alignment search: which subspace of which site holds a high-level variable.

Edge circuits say *where* computation flows; alignment says *what* a node represents. This
package implements interchange-intervention training on TransformerBridge models:

- :mod:`~circuits.alignment.sites`: where to intervene (:class:`Site`, :func:`site_from_node`).
- :mod:`~circuits.alignment.interventions`: :class:`DAS`, :class:`BoundlessDAS`,
  :class:`LowRankDAS`, :class:`Subspace`.
- :mod:`~circuits.alignment.data`: counterfactual pairs from a causal model
  (:func:`causal_pairs`) and RAVEL-style cause/isolate pairs (:func:`entity_pairs`).
- :mod:`~circuits.alignment.train`: :func:`train_intervention`, :func:`evaluate`.
- :mod:`~circuits.alignment.metrics`: IIA, normalised IIA, Cause / Iso / Disentangle.
- :mod:`~circuits.alignment.io`: :func:`save_intervention` / :func:`load_intervention`.
- :mod:`~circuits.alignment.search`: :func:`scan` over layers × positions.

See ``docs/alignment.md``.
"""

from circuits.alignment.data import (
    CounterfactualPairs,
    causal_pairs,
    entity_pairs,
    make_pairs,
    shuffled_variable,
)
from circuits.alignment.interventions import (
    DAS,
    BoundlessDAS,
    Intervention,
    LowRankDAS,
    RotatedSubspace,
    Subspace,
    cosine,
    random_orthogonal,
)
from circuits.alignment.io import load_intervention, save_intervention
from circuits.alignment.metrics import (
    chance_level,
    disentangle,
    iia,
    normalized_iia,
    ravel_scores,
)
from circuits.alignment.search import SearchResult, scan
from circuits.alignment.sites import (
    AlignmentError,
    Site,
    hidden_size,
    resolve_positions,
    site_from_node,
    validate_site,
)
from circuits.alignment.train import (
    TrainConfig,
    TrainResult,
    evaluate,
    intervened_logits,
    predict,
    source_vectors,
    task_accuracy,
    train_intervention,
)

__all__ = [
    "DAS",
    "AlignmentError",
    "BoundlessDAS",
    "CounterfactualPairs",
    "Intervention",
    "LowRankDAS",
    "RotatedSubspace",
    "SearchResult",
    "Site",
    "Subspace",
    "TrainConfig",
    "TrainResult",
    "causal_pairs",
    "chance_level",
    "cosine",
    "disentangle",
    "entity_pairs",
    "evaluate",
    "hidden_size",
    "iia",
    "intervened_logits",
    "load_intervention",
    "make_pairs",
    "normalized_iia",
    "predict",
    "random_orthogonal",
    "ravel_scores",
    "resolve_positions",
    "save_intervention",
    "scan",
    "shuffled_variable",
    "site_from_node",
    "source_vectors",
    "task_accuracy",
    "train_intervention",
    "validate_site",
]
