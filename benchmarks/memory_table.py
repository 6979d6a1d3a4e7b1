"""Predicted attribution memory for well-known model shapes (no weights are loaded).

    PYTHONPATH=. .venv/bin/python -m benchmarks.memory_table

Prints a markdown table of :func:`attribution.memory.attribution_peak_bytes` for GPT-2
small, Pythia-1B and Llama-3-8B, for EAP-IG (inputs) with and without node chunks; the
numbers in docs/scale.md come from it. Weights are listed separately (parameters × bytes).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from attribution.memory import attribution_peak_bytes
from graphs import Graph
from graphs.spec import ModelSpec

#: name: (layers, heads, kv heads, d_model, d_mlp, vocab, parameters, parallel, dtype)
SHAPES = {
    "GPT-2 small": (12, 12, 12, 768, 3072, 50257, 124e6, False, torch.float32),
    "Pythia-1B": (16, 8, 8, 2048, 8192, 50304, 1.01e9, True, torch.bfloat16),
    "Llama-3-8B": (32, 32, 8, 4096, 14336, 128256, 8.03e9, False, torch.bfloat16),
}


def table(batch_size: int = 8, n_pos: int = 32, chunks: tuple = (None, 64)) -> str:
    lines = [
        f"| model | dtype | edges | weights | node chunk | activations | port gradients | write buffers | contraction | total besides weights (batch {batch_size}, {n_pos} tokens) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    gib = 2**30
    for name, (L, H, K, d, d_mlp, V, params, parallel, dtype) in SHAPES.items():
        spec = ModelSpec(
            n_layers=L, n_heads=H, n_kv_heads=K, parallel_attn_mlp=parallel, d_model=d, d_vocab=V
        )
        graph = Graph(spec)
        model = SimpleNamespace(
            cfg=SimpleNamespace(
                d_model=d, n_heads=H, n_key_value_heads=K, d_mlp=d_mlp, n_layers=L, d_vocab=V
            )
        )
        size = torch.finfo(dtype).bits // 8
        for chunk in chunks:
            p = attribution_peak_bytes(
                model, graph, batch_size=batch_size, n_pos=n_pos, rows=batch_size, method="eap-ig-inputs",
                node_chunk=chunk, dtype=dtype,
            )  # fmt: skip
            lines.append(
                f"| {name} | {str(dtype).replace('torch.', '')} | {graph.n_edges:,} | {params * size / gib:.1f} GiB "
                f"| {chunk or 'all'} | {p['activations'] / gib:.1f} | {p['port_gradients'] / gib:.1f} "
                f"| {p['write_buffers'] / gib:.1f} | {p['contraction'] / gib:.1f} | **{p['total'] / gib:.1f} GiB** |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
