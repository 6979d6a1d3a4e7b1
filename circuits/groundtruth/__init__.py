"""Compiled transformers with known circuits (weights set by hand, not trained), their tasks
and ground-truth circuits, and the benchmark that scores attribution methods against them.

``circuits.groundtruth.registry`` lists and builds them; they load like any bundled model
through ``circuits.zoo.load("gt-induction")``. See docs/ground_truth.md.
"""
