"""circuits.hook_names: alignment and Patchscopes name the same hook for the same graph node
and reject a bad node with the same message."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_bridge

from circuits.alignment import AlignmentError, site_from_node
from circuits.hook_names import residual_hook, writer_hook
from circuits.patchscopes import PatchscopeError, hook_name, node_output

PROMPT = [1, 5, 9, 13, 17, 21]


@pytest.fixture(scope="module")
def gpt2():
    return tiny_bridge("GPT2LMHeadModel")


def test_residual_hooks_span_embeddings_to_final_residual(gpt2):
    n = gpt2.cfg.n_layers
    assert residual_hook(0, n) == "blocks.0.hook_resid_pre"
    assert residual_hook(n - 1, n) == f"blocks.{n - 1}.hook_resid_pre"
    assert residual_hook(n, n) == f"blocks.{n - 1}.hook_resid_post"
    assert [hook_name(gpt2, layer) for layer in range(n + 1)] == [
        residual_hook(layer, n) for layer in range(n + 1)
    ]
    # the input node's site is the layer-0 hidden state of Patchscopes
    assert site_from_node(gpt2, "input").hook == hook_name(gpt2, 0)


def test_both_packages_read_a_node_at_the_same_hook(gpt2):
    nodes = ["input", "a0.h1", "a1.h3", "m0", "m1"]
    sites = [site_from_node(gpt2, node) for node in nodes]
    assert [(s.hook, s.head) for s in sites] == [
        ("blocks.0.hook_resid_pre", None),
        ("blocks.0.attn.hook_result", 1),
        ("blocks.1.attn.hook_result", 3),
        ("blocks.0.hook_mlp_out", None),
        ("blocks.1.hook_mlp_out", None),
    ]
    seen: dict[str, torch.Tensor] = {}

    def saver(name):
        def save(t, hook):  # keyed by closure: hook.name may differ from the registered name
            seen[name] = t.detach()
            return t

        return save

    hooks = [(s.hook, saver(s.hook)) for s in sites]
    with torch.no_grad(), gpt2.hooks(fwd_hooks=hooks):
        gpt2(torch.tensor([PROMPT]))
    # what Patchscopes reads as each node's write is that hook's output (GPT-2: no post-norm)
    vectors = node_output(gpt2, nodes, PROMPT, 3)
    for site, vector in zip(sites, vectors, strict=True):
        at = seen[site.hook][0, 3]
        expected = at if site.head is None else at[site.head]
        torch.testing.assert_close(vector, expected)


@pytest.mark.parametrize("bad", ["a9.h0", "a0.h99", "logits", "m", "A0.H1"])
def test_both_packages_reject_a_bad_node_with_the_same_message(gpt2, bad):
    with pytest.raises(AlignmentError) as alignment:
        site_from_node(gpt2, bad)
    with pytest.raises(PatchscopeError) as patchscopes:
        node_output(gpt2, bad, PROMPT, 1)
    assert str(alignment.value) == str(patchscopes.value)
    assert str(alignment.value).startswith(f"unknown node {bad!r}")
    assert "l in 0..1 and h in 0..3" in str(alignment.value)


def test_writer_hook_refuses_logits(gpt2):
    from graphs import Graph

    logits = Graph.from_model(gpt2).layout.node_by_name["logits"]
    with pytest.raises(ValueError, match="writes nothing"):
        writer_hook(logits)
