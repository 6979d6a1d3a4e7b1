"""Run by tests/test_distributed.py under ``torchrun``: score and evaluate a tiny model with
the process group initialised, and let rank 0 save what it got."""

from __future__ import annotations

import sys

import torch


def run(out: str | None) -> dict[str, torch.Tensor]:
    from conftest import random_pairs  # tests/ is on the path: this script lives there

    from attribution import attribute
    from circuits import evaluate, top_n
    from circuits.models import load_model
    from circuits.models.random import random_hf_model
    from graphs import Graph

    torch.set_num_threads(1)
    model = load_model(random_hf_model("GPT2LMHeadModel", seed=3, dtype=torch.float64))
    # 11 examples, not a multiple of the world size: shards differ in length
    data = random_pairs(11, 7, seed=0, padded=True)
    graph = Graph.from_model(model)
    result = attribute(
        model, graph, data, "logit_diff", method="eap-ig-inputs", steps=3, batch_size=4, quiet=True
    )
    graph.set_circuit(top_n(graph, 40))
    faith = evaluate(model, graph, data, "logit_diff", batch_size=4, bootstrap=200, seed=1)
    values = {
        "scores": result.scores,
        "metric": torch.tensor(
            [result.diagnostics["metric_clean"], result.diagnostics["metric_ablated"]]
        ),
        "faithfulness": torch.tensor(
            [faith.f, faith.m_full, faith.m_circuit, faith.m_empty, *faith.ci, faith.random_f]
        ),
        "per_example": torch.tensor(faith.per_example_circuit),
    }
    if out is not None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in values.items()}, out)
    return values


if __name__ == "__main__":
    from attribution.distributed import init_from_environment, is_main_process

    assert init_from_environment(), "run me under torchrun with more than one process"
    values = run(None)
    if is_main_process():
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in values.items()}, sys.argv[1])
    import torch.distributed as dist

    # leave the group before the interpreter exits: gloo's threads killed at exit
    # occasionally abort a rank ("terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()
