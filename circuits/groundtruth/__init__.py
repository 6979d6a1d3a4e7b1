"""Compiled transformers with known circuits (weights set by hand, not trained), their tasks
and ground-truth circuits, and the benchmark that scores attribution methods against them.

``circuits.groundtruth.registry`` lists and builds them (``registry.register`` adds your own,
e.g. from :func:`.custom.from_folder`: a saved model folder plus its true edges); they load
like any bundled model through ``circuits.models.zoo.load("gt-induction")`` and ``--model``. See
docs/ground_truth.md.
"""
