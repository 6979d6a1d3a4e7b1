"""Patchscopes (Ghandeharioun et al. 2024): decode a hidden state by patching it into a target run.

Take the hidden state at (source prompt, source layer, source position), transform it with a
mapping, write it into (target prompt, target layer, target position) of the same or another
model, and read what the target run predicts. Layer ``ℓ`` ∈ ``[0, n_layers]`` is the residual
stream before block ``ℓ`` (see :mod:`circuits.patchscopes.core`). See ``docs/patchscopes.md``.
"""

from circuits.patchscopes.core import (
    PatchscopeError,
    PatchscopeResult,
    Site,
    encode_prompt,
    hidden_states,
    hook_name,
    node_output,
    patchscope,
    patchscope_batch,
    residual_stream,
    run_patched,
)
from circuits.patchscopes.evaluate import (
    Heatmap,
    NextTokenScores,
    attribute_heatmap,
    heatmap_figure,
    identity_heatmap,
    layer_heatmap,
    next_token_scores,
    task_prompts,
)
from circuits.patchscopes.fitting import fit_affine, paired_states
from circuits.patchscopes.mappings import (
    Affine,
    FunctionMapping,
    Identity,
    Mapping,
    as_mapping,
)
from circuits.patchscopes.prompts import (
    TargetPrompt,
    attribute_prompt,
    few_shot_prompt,
    identity_prompt,
)

__all__ = [
    "Affine",
    "FunctionMapping",
    "Heatmap",
    "Identity",
    "Mapping",
    "NextTokenScores",
    "PatchscopeError",
    "PatchscopeResult",
    "Site",
    "TargetPrompt",
    "as_mapping",
    "attribute_heatmap",
    "attribute_prompt",
    "encode_prompt",
    "few_shot_prompt",
    "fit_affine",
    "heatmap_figure",
    "hidden_states",
    "hook_name",
    "identity_heatmap",
    "identity_prompt",
    "layer_heatmap",
    "next_token_scores",
    "node_output",
    "paired_states",
    "patchscope",
    "patchscope_batch",
    "residual_stream",
    "run_patched",
    "task_prompts",
]
