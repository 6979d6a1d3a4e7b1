"""Relevance patching (RelP; "RelP: Faithful and Efficient Circuit Discovery via Relevance
Patching", 2025): EAP with the gradient replaced by an LRP-style backward pass.

``score(u -> v) = Δ_u · r_v``, where ``r_v`` is the metric's "gradient" at port ``v`` taken on
the clean run with these propagation rules (the forward values are untouched; only the backward
pass changes, each rule being a detach inside an expression equal in value to the original):

- LN-rule: every LayerNorm / RMSNorm passes relevance as the linear map
  ``x ↦ γ ⊙ center(x) / s`` with its scale ``s`` held constant (RMSNorm: no centering): the
  norms the bridge computes itself (``ln2``, ``ln_final``, Gemma-2's post-norms) through their
  ``hook_scale`` (detached), the per-head q/k/v norms (``ln1``, which the bridge runs through
  the HF module) through a forward hook on that module.
- AH-rule: the attention probabilities (``hook_pattern``) are constants: relevance flows through
  the values only, none through queries and keys.
- Identity rule for the activation: ``act(x) = x · (act(x)/x)`` with the ratio held constant
  (GELU ``x·Φ(x)`` with ``Φ`` detached, SiLU ``x·σ(x)`` with ``σ`` detached).
- Half rule for gated MLPs (Llama, Qwen2, Gemma-2): ``act(g) · u`` passes half of the relevance
  to each factor, ``∂/∂u = ½ act(g)``, ``∂/∂act(g) = ½ u``.

Sign convention as EAP's: the score estimates ``m(patched) − m(clean)``. Where the model is
linear in the patched activations the rules change nothing and RelP equals EAP and exact
patching.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from attribution.data import PromptPairs
from attribution.methods.base import BatchRuns, Job, MethodArchitectureError
from attribution.methods.gradient import GradientMethod
from attribution.passes import metric_backward

_RMS_NORMS = ("LlamaRMSNorm", "Qwen2RMSNorm", "Gemma2RMSNorm")
_ACTIVATIONS = {
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


class RelP(GradientMethod):
    """``Δ_u · r_v`` with ``r_v`` from the LN-, AH-, identity and half rules (module docstring):
    one clean forward and backward pass per batch, like EAP."""

    name = "relp"
    description = "Δ·relevance (LRP rules: frozen norm scales and attention, half rule)"
    supported_architectures = (
        "GPT2LMHeadModel",
        "GPTNeoXForCausalLM",
        "LlamaForCausalLM",
        "Qwen2ForCausalLM",
        "Gemma2ForCausalLM",
    )

    def port_gradients(self, job: Job, batch: PromptPairs, runs: BatchRuns, grads) -> None:
        n = len(batch)
        device = runs.delta.device
        with norm_rule(job.model), warnings.catch_warnings():
            # the bridge warns that a hooked norm scale rebuilds the norm's output from the
            # hooked values; detaching it is the point, and the values agree to rounding
            warnings.filterwarnings("ignore", message=".*hook_scale/hook_normalized.*")
            metric_backward(
                job.model, job.graph, batch, job.metric_fn, runs.clean_logits, grads,
                tokens=batch.clean, example=torch.arange(n, device=device),
                weight=torch.ones(n, device=device), extra_hooks=relevance_hooks(job.model),
            )  # fmt: skip
        job.progress.update(n)


def _identity_rule(pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    """``post`` in value, with gradient ``post/pre`` (held constant) with respect to ``pre``."""
    safe = torch.where(pre.abs() > 1e-12, pre, torch.ones_like(pre))
    ratio = torch.where(pre.abs() > 1e-12, post / safe, torch.full_like(pre, 0.5)).detach()
    return post.detach() + ratio * (pre - pre.detach())


def relevance_hooks(model) -> list:
    """Bridge forward hooks for the AH-, identity and half rules, every layer."""
    act = _ACTIVATIONS.get(getattr(model.cfg, "act_fn", None))
    # norms the bridge computes itself (ln2, ln_final, Gemma-2's post-norms): their scale hook
    # is live, so detaching it freezes the scale; ln1 runs per head through the HF module
    # (norm_rule below)
    hooks: list = [
        (name, lambda t, hook: t.detach())
        for name in model.hook_dict
        if name.endswith("hook_scale") and ".ln1." not in name
    ]
    for layer in range(model.cfg.n_layers):
        prefix = f"blocks.{layer}.mlp"
        hooks.append((f"blocks.{layer}.attn.hook_pattern", lambda t, hook: t.detach()))
        saved: dict[str, torch.Tensor] = {}

        def keep(t, hook, key, saved=saved):
            saved[key] = t
            return t

        hooks.append((f"{prefix}.hook_pre", lambda t, hook, keep=keep: keep(t, hook, "pre")))
        if f"{prefix}.hook_pre_linear" in model.hook_dict:
            if act is None:
                raise MethodArchitectureError(
                    f"relp: no identity rule for activation {model.cfg.act_fn!r}"
                )
            hooks.append(
                (f"{prefix}.hook_pre_linear", lambda t, hook, keep=keep: keep(t, hook, "lin"))
            )

            def gated(post, hook, saved=saved):
                g, u = saved.pop("pre"), saved.pop("lin")
                a = act(g.detach())
                half = 0.5 * a * (u - u.detach()) + 0.5 * u.detach() * _identity_rule(g, a)
                return post.detach() + (half - half.detach())

            hooks.append((f"{prefix}.hook_post", gated))
        else:

            def plain(post, hook, saved=saved):
                return _identity_rule(saved.pop("pre"), post)

            hooks.append((f"{prefix}.hook_post", plain))
    return hooks


@contextlib.contextmanager
def norm_rule(model) -> Iterator[None]:
    """Make every HF LayerNorm / RMSNorm of ``model`` pass gradients with its scale frozen
    (its output values unchanged) while the context is open."""
    handles = []
    for module in model.modules():
        kind = type(module).__name__
        if kind == "LayerNorm" or kind in _RMS_NORMS:
            handles.append(module.register_forward_hook(_frozen_scale(kind)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _frozen_scale(kind: str):
    def hook(module, inputs, output):
        x = inputs[0]
        if not x.requires_grad:
            return output
        eps = getattr(module, "eps", None) or getattr(module, "variance_epsilon", 1e-6)
        work = x.detach().to(torch.float64 if x.dtype == torch.float64 else torch.float32)
        if kind == "LayerNorm":
            scale = torch.sqrt(work.var(-1, unbiased=False, keepdim=True) + eps)
            gain = module.weight if module.weight is not None else torch.ones_like(x[0, 0])
            dx = x - x.detach()
            dx = dx - dx.mean(-1, keepdim=True)
        else:
            scale = torch.sqrt(work.pow(2).mean(-1, keepdim=True) + eps)
            gain = module.weight + 1.0 if kind == "Gemma2RMSNorm" else module.weight
            dx = x - x.detach()
        linear = (dx * (gain.detach() / scale).to(dx.dtype)).to(output.dtype)
        return output.detach() + linear

    return hook
