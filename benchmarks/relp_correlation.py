"""Correlation of RelP, EAP and EAP-IG with exact patching on tiny random float64 models.

Run: ``PYTHONPATH=.:tests .venv/bin/python -m benchmarks.relp_correlation [weight scale]``.
Per architecture: 2 layers, 4 heads, d_model 32 (``random_hf_model``), biases and norm gains
randomised (``tests/conftest.py``'s ``randomize_weights``, seed 1000, weights × scale), 3
random prompt pairs of 6 tokens, ``steps=5``; prints the correlation over all real edges and
over the edges leaving MLPs (docs/attribution.md lists the results).
"""

from __future__ import annotations

import sys

import torch

METHODS = ("eap", "relp", "eap-ig-inputs", "eap-ig-activations")
ARCHS = [
    ("GPT2LMHeadModel", {}),
    ("GPTNeoXForCausalLM", {"parallel": True}),
    ("LlamaForCausalLM", {}),
    ("Qwen2ForCausalLM", {}),
    ("Gemma2ForCausalLM", {}),
]


def main(scale: float = 1.0) -> None:
    from conftest import randomize_weights

    from attribution import PromptPairs, attribute
    from circuits import load_model, random_hf_model
    from graphs import Graph

    for arch, kw in ARCHS:
        hf = random_hf_model(arch, seed=0, dtype=torch.float64, **kw)
        randomize_weights(hf, 1000, scale=scale, scale_embeddings=True, gemma_offset=True)
        model = load_model(hf)
        graph = Graph.from_model(model)
        gen = torch.Generator().manual_seed(0)
        data = PromptPairs(
            torch.randint(0, 128, (3, 6), generator=gen),
            torch.randint(0, 128, (3, 6), generator=gen),
            torch.randint(0, 128, (3,), generator=gen),
            torch.randint(0, 128, (3,), generator=gen),
        )
        run = {
            m: attribute(model, graph, data, method=m, quiet=True, steps=5, max_rows=10_000).scores
            for m in ("exact", *METHODS)
        }
        real = graph.real_edges
        mlp = torch.zeros_like(real)
        rows = [graph.layout.mlp_index(layer) for layer in range(graph.spec.n_layers)]
        mlp[rows] = real[rows]
        cells = []
        for m in METHODS:
            overall, on_mlp = (
                float(torch.corrcoef(torch.stack([run[m][sel], run["exact"][sel]]))[0, 1])
                for sel in (real, mlp)
            )
            cells.append(f"{overall:.3f} / {on_mlp:.3f}")
        print(f"| {arch} | ×{scale:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
