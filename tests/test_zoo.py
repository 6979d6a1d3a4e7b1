"""The shipped models: offline loading, held-out accuracy, size, model card, recipe."""

from __future__ import annotations

import json

import pytest
import torch

from circuits import zoo
from circuits.models.zoo.recipes import RECIPES
from circuits.tasks import TASK_NAMES, all_words, task_accuracy

SHIPPED = zoo.available(compiled=False)
#: Required held-out accuracy per task (the issue allows 90 % for the two numeric tasks).
THRESHOLDS = {
    "ioi": 0.95,
    "entity-attributes": 0.95,
    "copying": 0.95,
    "greater-than": 0.9,
    "price-tagging": 0.9,
}


def test_the_default_model_is_shipped():
    assert zoo.DEFAULT_MODEL in SHIPPED
    assert set(SHIPPED) <= set(RECIPES)


@pytest.fixture(scope="module", params=SHIPPED)
def shipped(request):
    bridge, tokenizer = zoo.load(request.param)
    return request.param, bridge, tokenizer


def test_bridge_matches_the_hugging_face_model(shipped):
    from transformers import AutoModelForCausalLM

    name, bridge, tokenizer = shipped
    hf = AutoModelForCausalLM.from_pretrained(zoo.model_dir(name), local_files_only=True).eval()
    ids = tokenizer(
        ["When Mary and John went to the store, John gave a drink to"], return_tensors="pt"
    )["input_ids"]
    with torch.no_grad():
        assert torch.allclose(bridge(ids), hf(ids).logits, atol=1e-4)
    assert bridge.cfg.d_vocab == len(tokenizer)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_held_out_accuracy(shipped, task):
    name, bridge, tokenizer = shipped
    accuracy = task_accuracy(bridge, tokenizer, task, n=200, seed=7, split="test")
    assert accuracy >= THRESHOLDS[task], f"{name} on {task}: {accuracy:.3f}"


def test_folder_size_card_and_recipe(shipped):
    name, _, tokenizer = shipped
    folder = zoo.model_dir(name)
    total = sum(p.stat().st_size for p in zoo.MODELS_DIR.rglob("*") if p.is_file())
    assert total < 25 * 2**20
    training = json.loads((folder / "training.json").read_text())
    assert training["recipe"] == RECIPES[name].to_dict(), (
        "the shipped weights were trained with another recipe"
    )
    card = (folder / "README.md").read_text()
    for task, accuracy in training["heldout_accuracy"].items():
        assert f"| {task} |" in card and f"{accuracy:.3f}" in card
        assert accuracy >= THRESHOLDS[task]
    assert f"--seed {RECIPES[name].seed}" in card and f"--steps {RECIPES[name].steps}" in card
    # the tokenizer is the one the current task vocabulary builds
    assert set(tokenizer.get_vocab()) == set(all_words()) | {"<pad>", "<unk>", "<bos>", "<eos>"}


def test_unknown_name_lists_the_available_models():
    with pytest.raises(
        zoo.ZooError, match=r"no bundled model named 'gpt-5'; available: .*toy-gpt2"
    ):
        zoo.load("gpt-5")


def test_load_works_with_the_hub_unreachable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    bridge, tokenizer = zoo.load(zoo.DEFAULT_MODEL)
    assert tokenizer("a")["input_ids"][0] == tokenizer.bos_token_id


def test_every_listed_name_gives_its_tokenizer_and_unknown_lists_them_all():
    for name in zoo.available():
        tokenizer = zoo.load_tokenizer(name)
        assert tokenizer.convert_ids_to_tokens([tokenizer.bos_token_id]) == ["<bos>"], name
    with pytest.raises(zoo.ZooError) as caught:
        zoo.model_dir("gpt-5")
    assert caught.value.args[0].endswith(", ".join(zoo.available()))
    with pytest.raises(zoo.ZooError, match="compiled in memory"):
        zoo.model_dir("gt-ioi")


def test_model_dir_lists_the_model_folder_once(monkeypatch):
    import circuits.models.zoo as zoo_module

    calls = []
    listing = zoo_module.shipped_names

    def counted():
        calls.append(1)
        return listing()

    monkeypatch.setattr(zoo_module, "shipped_names", counted)
    assert zoo.model_dir("toy-gpt2").name == "toy-gpt2" and len(calls) == 1
    for name in ("gpt-5", "gt-ioi"):  # unknown, compiled: the error lists from the same listing
        calls.clear()
        with pytest.raises(zoo.ZooError):
            zoo.model_dir(name)
        assert len(calls) == 1, name


def _ground_truth_prompt_file(name: str, path) -> None:
    """The compiled model's own prompt pairs, as a prompt file of text: only pairs that share
    no prompt with a pair already written, so the file's held-out split is possible (a small
    model such as gt-mlp-lookup repeats its few prompts across pairs)."""
    from circuits.groundtruth import registry

    truth = registry.build(name)
    decode = truth.tokenizer.decode
    seen: set[str] = set()
    with open(path, "w") as handle:
        for i in range(len(truth.data.clean)):
            row = {
                "clean": decode(truth.data.clean[i][1:]),  # the tokenizer adds <bos>
                "corrupted": decode(truth.data.corrupted[i][1:]),
                "answer": " " + decode(truth.data.answers[i].reshape(-1)[:1]),
                "distractor": " " + decode(truth.data.distractors[i].reshape(-1)[:1]),
            }
            if {row["clean"], row["corrupted"]} & seen:
                continue
            seen |= {row["clean"], row["corrupted"]}
            handle.write(json.dumps(row) + "\n")


@pytest.mark.parametrize("name", [n for n in zoo.available() if n.startswith("gt-")])
def test_ground_truth_models_work_with_model_on_the_command_line(name, tmp_path, capsys):
    # the model's own prompts, written as text, tokenise back to one token a word
    from circuits.app.cli import main

    prompts = tmp_path / "gt.jsonl"
    _ground_truth_prompt_file(name, prompts)
    assert main(["data", "check", str(prompts), "--model", name]) == 0, capsys.readouterr().err
    assert "no problems found" in capsys.readouterr().out


@pytest.mark.slow
def test_discover_runs_on_a_ground_truth_model(tmp_path, capsys):
    from circuits.app.cli import main

    prompts = tmp_path / "gt.jsonl"
    _ground_truth_prompt_file("gt-ioi", prompts)
    out = tmp_path / "run"
    argv = ["discover", "--model", "gt-ioi", "--data", str(prompts), "--out", str(out), "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    record = json.loads((out / "metrics.json").read_text())
    assert "gt-ioi" in json.dumps(record)


def test_training_json_is_written_once_with_the_card_measurements(tmp_path, monkeypatch):
    """train_model.save writes training.json once (atomically), with the recipe, the log
    and the card's measurements; the measurements are stubbed (no discovery run here)."""
    import pathlib

    from transformers import AutoModelForCausalLM, AutoTokenizer

    import circuits.app.model_card as model_card
    import circuits.tasks
    from circuits.app.train_model import save

    folder = zoo.model_dir("toy-gpt2")
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    circuit = {"n_edges": 3, "n_edges_total": 9, "n_nodes": 2, "f_test": 0.9,
               "ci_test": [0.8, 1.0], "random_f_test": 0.1}  # fmt: skip
    monkeypatch.setattr(model_card, "ioi_circuit", lambda folder: circuit)
    monkeypatch.setattr(circuits.tasks, "task_accuracy", lambda *a, **k: 0.5)
    writes = []
    atomic, write_text = model_card.atomic_write, pathlib.Path.write_text

    def atomic_spy(path):
        writes.append(("atomic", pathlib.Path(path).name))
        return atomic(path)

    def write_text_spy(self, *args, **kwargs):
        writes.append(("write_text", self.name))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(model_card, "atomic_write", atomic_spy)
    monkeypatch.setattr(pathlib.Path, "write_text", write_text_spy)
    out = tmp_path / "model"
    save(model, tokenizer, RECIPES["toy-gpt2"], {"train_seconds": 1.0}, out, overwrite=False)
    assert [w for w in writes if w[1] == "training.json"] == [("atomic", "training.json")]
    saved = json.loads((out / "training.json").read_text())
    assert list(saved) == ["recipe", "train_seconds", "heldout_accuracy", "ioi_circuit"]
    assert saved["recipe"] == RECIPES["toy-gpt2"].to_dict() and saved["ioi_circuit"] == circuit
    assert set(saved["heldout_accuracy"].values()) == {0.5}
    assert "**3 of 9 edges**" in (out / "README.md").read_text()
