"""Distributed alignment search (circuits.alignment): intervention algebra, sites, data,
training with a frozen model, save/load, the layer × position scan, and the issue's three
claims (planted direction recovered; Boundless DAS on price tagging beats its controls; MDAS
disentangles better than cause-only DAS), plus clear errors for bad input."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_bridge

from circuits.alignment import (
    DAS,
    AlignmentError,
    BoundlessDAS,
    CounterfactualPairs,
    LowRankDAS,
    Site,
    Subspace,
    TrainConfig,
    causal_pairs,
    chance_level,
    cosine,
    entity_pairs,
    evaluate,
    iia,
    intervened_logits,
    load_intervention,
    make_pairs,
    normalized_iia,
    ravel_scores,
    save_intervention,
    scan,
    site_from_node,
    train_intervention,
    validate_site,
)
from circuits.alignment.experiments import (
    entity_experiment,
    planted_model,
    planted_pairs,
    price_experiment,
)


@pytest.fixture(scope="module")
def gpt2():
    return tiny_bridge("GPT2LMHeadModel")


@pytest.fixture(scope="module")
def toy():
    from circuits import zoo

    return zoo.load("toy-gpt2")


@pytest.fixture(scope="module")
def planted():
    return planted_model(seed=0)


def _random_pairs(n=6, length=7, vocab=100, seed=0) -> CounterfactualPairs:
    gen = torch.Generator().manual_seed(seed)
    base = torch.randint(1, vocab, (n, length), generator=gen)
    source = torch.randint(1, vocab, (n, length), generator=gen)
    mask = torch.ones_like(base)
    return CounterfactualPairs(
        base=base,
        source=source,
        base_mask=mask,
        source_mask=mask.clone(),
        labels=torch.randint(0, vocab, (n,), generator=gen),
        base_labels=torch.randint(0, vocab, (n,), generator=gen),
    )


# --------------------------------------------------------------------------- interventions


def test_rotation_formula_and_hard_masks():
    torch.manual_seed(0)
    d, k = 12, 3
    xb, xs = torch.randn(5, d), torch.randn(5, d)
    das = DAS(d, k, seed=1)
    r = das.rotation.detach()
    assert torch.allclose(r @ r.T, torch.eye(d), atol=1e-5)
    m = torch.zeros(d)
    m[:k] = 1
    expected = ((1 - m) * (xb @ r.T) + m * (xs @ r.T)) @ r  # R⁻¹((1 − m)⊙R x_b + m⊙R x_s)
    assert torch.allclose(das(xb, xs), expected, atol=1e-5)
    assert das.basis().shape == (k, d)
    assert torch.allclose(das(xb, xb), xb, atol=1e-5)  # source = base: nothing changes
    # Boundless: the soft mask tends to the hard one as T → 0; eval mode is the hard mask,
    # which equals the compact Subspace(basis) form that is saved.
    bdas = BoundlessDAS(d, 4, seed=2)
    bdas.set_temperature(1e-3)
    assert torch.allclose(bdas.soft_mask(), bdas.hard_mask(), atol=1e-4)
    assert bdas.hard_mask().sum() == 4 and bdas.k == 4
    bdas.eval()
    assert torch.allclose(bdas(xb, xs), Subspace(bdas.basis())(xb, xs), atol=1e-5)
    bdas.set_temperature(50.0)
    bdas.train()
    soft = bdas.soft_mask()
    # high temperature: every dimension is partly swapped
    assert 0 < float(soft.min().detach()) and float(soft.max().detach()) < 1
    assert bdas.regularizer() > 0 and bdas.regularizer().requires_grad
    # low-rank: x + (R x_s − R x_b)ᵀ R with orthonormal rows; k = d swaps the whole vector
    low = LowRankDAS(d, k, seed=3)
    rr = low.basis().detach()
    assert torch.allclose(rr @ rr.T, torch.eye(k), atol=1e-5)
    assert torch.allclose(low(xb, xs), xb + (xs @ rr.T - xb @ rr.T) @ rr, atol=1e-5)
    assert torch.allclose(LowRankDAS(d, d)(xb, xs), xs, atol=1e-4)


def test_intervention_size_errors():
    with pytest.raises(AlignmentError, match="does not fit the hidden size 8"):
        DAS(8, 9)
    with pytest.raises(AlignmentError, match="does not fit"):
        LowRankDAS(8, 0)
    with pytest.raises(AlignmentError, match="does not fit"):
        BoundlessDAS(8, 20)
    with pytest.raises(AlignmentError, match="hidden size 8"):
        DAS(8, 2)(torch.zeros(2, 6), torch.zeros(2, 6))


# --------------------------------------------------------------------------- sites


def test_site_validation_errors(gpt2):
    with pytest.raises(
        AlignmentError,
        match=r"no hook named 'blocks\.0\.hook_resid_pr'.*closest: blocks\.0\.hook_resid_pre",
    ):
        validate_site(gpt2, Site("blocks.0.hook_resid_pr"))
    with pytest.raises(AlignmentError, match="does not fit the hidden size 32"):
        validate_site(gpt2, Site("blocks.1.hook_resid_pre"), k=33)
    with pytest.raises(AlignmentError, match="head axis"):
        validate_site(gpt2, Site("blocks.0.attn.hook_result"))
    with pytest.raises(AlignmentError, match="out of range"):
        validate_site(gpt2, Site("blocks.0.attn.hook_result", head=4))
    with pytest.raises(AlignmentError, match="no head axis"):
        validate_site(gpt2, Site("blocks.0.hook_mlp_out", head=0))
    with pytest.raises(AlignmentError, match="positions"):
        Site("blocks.0.hook_mlp_out", positions=[1, 1])
    assert validate_site(gpt2, Site("blocks.1.hook_resid_pre", [1, 2]), k=32) == 32
    # a subspace larger than the site also fails at training time, before any step
    with pytest.raises(AlignmentError, match="hidden size 32"):
        train_intervention(gpt2, Site("blocks.1.hook_resid_pre"), DAS(48, 2), _random_pairs())
    # a named position the data does not carry
    with pytest.raises(AlignmentError, match="named position"):
        intervened_logits(
            gpt2, Site("blocks.1.hook_resid_pre", "entity"), DAS(32, 2), _random_pairs()
        )


def test_site_from_node(gpt2):
    assert site_from_node(gpt2, "input") == Site("blocks.0.hook_resid_pre")
    assert site_from_node(gpt2, "a1.h2", [3]) == Site("blocks.1.attn.hook_result", (3,), head=2)
    assert site_from_node(gpt2, "m0") == Site("blocks.0.hook_mlp_out")
    with pytest.raises(AlignmentError, match="unknown node 'a9.h0'"):
        site_from_node(gpt2, "a9.h0")


@pytest.mark.parametrize(
    "site",
    [
        Site("blocks.1.hook_resid_pre", "last"),
        Site("blocks.0.hook_mlp_out", [2, 4]),
        Site("blocks.0.attn.hook_result", -2, head=1),
    ],
    ids=["resid-last", "mlp-two-positions", "head"],
)
def test_full_interchange_is_activation_patching(gpt2, site):
    """Interchanging the whole space (k = d) equals writing the source's vector into the base
    run at the site's positions, whatever the hook (residual, MLP output, one head)."""
    pairs = _random_pairs()
    got = intervened_logits(gpt2, site, Subspace(torch.eye(32)), pairs)
    stored = {}
    pos = [5] if site.positions == -2 else [6] if site.positions == "last" else list(site.positions)

    def grab(t, hook):
        stored["v"] = t.detach().clone()
        return t

    def patch(t, hook):
        t = t.clone()
        if site.head is None:
            t[:, pos] = stored["v"][:, pos]
        else:
            t[:, pos, site.head] = stored["v"][:, pos, site.head]
        return t

    with torch.no_grad():
        with gpt2.hooks(fwd_hooks=[(site.hook, grab)]):
            gpt2(pairs.source)
        with gpt2.hooks(fwd_hooks=[(site.hook, patch)]):
            want = gpt2(pairs.base)[:, -1]
        plain = gpt2(pairs.base)[:, -1]
    change = float((want - plain).abs().max())
    assert change > 1e-5  # the patch did change something ...
    # ... and the intervention did the same
    assert float((got.detach() - want).abs().max()) < change / 100
    # and a zero-dimensional change (source = base) leaves the run alone
    same = CounterfactualPairs(
        pairs.base, pairs.base, pairs.base_mask, pairs.base_mask, pairs.labels, pairs.base_labels
    )
    assert torch.allclose(
        intervened_logits(gpt2, site, DAS(32, 5), same).detach(), plain, atol=1e-4
    )


# --------------------------------------------------------------------------- data


def test_pair_batches_must_match():
    pairs = _random_pairs(n=4)
    with pytest.raises(
        AlignmentError, match="base and source batches differ in length: 4 base vs 3"
    ):
        CounterfactualPairs(
            pairs.base,
            pairs.source[:3],
            pairs.base_mask,
            pairs.source_mask[:3],
            pairs.labels,
            pairs.base_labels,
        )
    with pytest.raises(AlignmentError, match="labels"):
        CounterfactualPairs(
            pairs.base,
            pairs.source,
            pairs.base_mask,
            pairs.source_mask,
            pairs.labels[:2],
            pairs.base_labels,
        )


def test_make_pairs_errors(toy):
    _, tok = toy
    with pytest.raises(AlignmentError, match="differ in length: 2 base vs 1 source"):
        make_pairs(tok, ["Paris is", "Rome is"], ["Oslo is"], [" a", " a"], [" a", " a"])
    with pytest.raises(AlignmentError, match="tokens"):
        make_pairs(
            tok, ["People in Varo speak"], ["The main language of Varo is"], [" Aldic"], [" Aldic"]
        )


def test_price_pairs_follow_the_causal_model(toy):
    from circuits.tasks.price_tagging import NO, PRICE_CAUSAL_MODEL, YES, PriceTagging

    _, tok = toy
    pairs = causal_pairs(
        PriceTagging(), PRICE_CAUSAL_MODEL, "above_lower", tok, 40, seed=3, split="test"
    )
    assert len(pairs) == 40 and pairs.informative_share == 0.5
    assert chance_level(pairs.labels) <= 0.55  # balanced labels
    yes, no = (tok.convert_tokens_to_ids(t) for t in (YES.strip(), NO.strip()))
    for i in range(len(pairs)):
        b, s = pairs.base_texts[i], pairs.source_texts[i]
        values = [
            {
                k: int(round(float(x) * 100))
                for k, x in zip(
                    ("lower", "upper", "price"),
                    (t.split()[8], t.split()[10], t.split()[-2]),
                    strict=True,
                )
            }
            for t in (b, s)
        ]
        want = PRICE_CAUSAL_MODEL.counterfactual(values[0], values[1], ("above_lower",))
        assert int(pairs.labels[i]) == (yes if want == YES else no)
    assert pairs.base.shape == pairs.source.shape  # same token length


def test_entity_pairs(toy):
    from circuits.tasks.entities import WORLD

    _, tok = toy
    pairs = entity_pairs(tok, "country", n_cause=12, n_isolate=12, seed=1, split="test")
    assert sorted(set(pairs.kinds)) == ["cause", "isolate"]
    base_pos, source_pos = pairs.positions["entity"]
    for i in range(len(pairs)):
        base_entity = tok.convert_ids_to_tokens(int(pairs.base[i, base_pos[i, 0]]))
        source_entity = tok.convert_ids_to_tokens(int(pairs.source[i, source_pos[i, 0]]))
        assert base_entity in WORLD.facts and source_entity in WORLD.facts
        label = tok.convert_ids_to_tokens(int(pairs.labels[i]))
        if pairs.kinds[i] == "cause":
            assert label == WORLD.facts[source_entity]["country"]
        else:
            assert label == WORLD.facts[base_entity]["language"]
            # swapping the whole entity would be wrong
            assert WORLD.facts[source_entity]["language"] != label
    assert bool(pairs.informative[torch.tensor([k == "cause" for k in pairs.kinds])].all())


# --------------------------------------------------------------------------- metrics


def test_metrics():
    preds, labels = torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 0])
    assert iia(preds, labels) == 0.5
    assert iia(preds, labels, torch.tensor([True, True, False, False])) == 1.0
    assert chance_level(torch.tensor([5, 5, 5, 6])) == 0.75
    assert normalized_iia(0.5, 0.5, 0.9) == 0.0
    assert normalized_iia(0.9, 0.5, 0.9) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not above chance"):
        normalized_iia(0.7, 0.5, 0.5)
    scores = ravel_scores(preds, labels, ["cause", "cause", "isolate", "isolate"])
    assert scores == {"cause": 1.0, "iso": 0.0, "disentangle": 0.5}


# --------------------------------------------------------------------------- training, io, scan


def test_planted_direction_is_recovered(planted):
    """Claim 1: the variable 'last token ∈ S' lives along a random (non-axis) direction u of the
    residual stream and nowhere else the output reads; DAS (k = 1) trained on counterfactual
    labels finds u (|cos| ≥ 0.99) with held-out IIA ≥ 0.99, starting from a random direction."""
    train = planted_pairs(planted, 512, seed=1)
    test = planted_pairs(planted, 256, seed=2)
    das = DAS(32, 1, seed=3)
    start = cosine(das.basis()[0], planted.direction)
    assert start < 0.5
    assert float(planted.direction.abs().max()) < 0.7  # not a basis axis
    candidates = [planted.no, planted.yes]
    config = TrainConfig(
        steps=200,
        batch_size=64,
        lr=1e-2,
        eval_every=100,
        patience=None,
        candidates=candidates,
        progress=False,
    )
    train_intervention(planted.model, planted.site, das, train, config=config)
    scores = evaluate(planted.model, planted.site, das, test, candidates=candidates)
    assert scores["iia"] >= 0.99 and scores["iia_informative"] >= 0.99
    assert cosine(das.basis()[0], planted.direction) >= 0.99
    control = evaluate(
        planted.model, planted.site, Subspace.random(32, 1, seed=4), test, candidates=candidates
    )
    assert control["iia"] <= 0.6  # a random direction: the base answer stays, i.e. chance here


def test_training_keeps_the_model_frozen_and_is_seeded(gpt2):
    pairs = _random_pairs(n=8)
    site = Site("blocks.1.hook_resid_pre", [2, 6])
    before = {n: p.detach().clone() for n, p in gpt2.named_parameters()}
    flags = {n: p.requires_grad for n, p in gpt2.named_parameters()}
    config = TrainConfig(steps=6, batch_size=4, lr=1e-2, eval_every=3, progress=False, seed=5)
    results = []
    for _ in range(2):
        das = DAS(32, 4, seed=7)
        start = das.basis().detach().clone()
        res = train_intervention(gpt2, site, das, pairs, config=config)
        results.append(das.basis().detach().clone())
        assert not torch.allclose(start, results[-1])  # the intervention did learn
        assert res.steps == 6 and len(res.history) == 2
    assert torch.equal(results[0], results[1])  # same seeds, same result
    for n, p in gpt2.named_parameters():
        assert torch.equal(p, before[n]), n
        assert p.grad is None, n
        assert p.requires_grad == flags[n], n  # restored afterwards


def test_save_and_load(tmp_path, gpt2):
    site = Site("blocks.1.attn.hook_result", "last", head=2)
    bdas = BoundlessDAS(32, 5, seed=0)
    bdas.eval()
    path = save_intervention(tmp_path / "left", bdas, site, "above_lower", gpt2)
    assert path.suffix == ".safetensors"
    from safetensors.torch import load_file

    stored = load_file(str(path))
    assert set(stored) == {"basis", "boundaries"} and stored["basis"].shape == (5, 32)  # not d × d
    loaded, site2, variable, meta = load_intervention(path, gpt2)
    assert site2 == site and variable == "above_lower" and meta["kind"] == "boundless"
    assert loaded.boundaries() == pytest.approx(bdas.boundaries())
    pairs = _random_pairs()
    assert torch.allclose(
        intervened_logits(gpt2, site, loaded, pairs),
        intervened_logits(gpt2, site, bdas, pairs).detach(),
        atol=1e-5,
    )
    other = tiny_bridge("GPT2LMHeadModel", d_model=48)
    with pytest.raises(AlignmentError, match="another shape.*d_model: saved for 32, model has 48"):
        load_intervention(path, other)
    deeper = tiny_bridge("GPT2LMHeadModel", n_layers=3)
    with pytest.raises(AlignmentError, match="n_layers"):
        load_intervention(path, deeper)


def test_scan_table_and_heatmap(tmp_path, planted):
    train = planted_pairs(planted, 128, seed=1)
    config = TrainConfig(
        steps=20,
        batch_size=32,
        lr=2e-2,
        eval_every=10,
        candidates=[planted.no, planted.yes],
        progress=False,
    )
    result = scan(
        planted.model,
        lambda d: DAS(d, 1),
        train,
        train,
        layers=[0, 1],
        positions=[-1, 1],
        config=config,
    )
    assert result.table.shape == (2, 2)
    # the variable is the last token's: position 1 (first word) carries none of it
    assert float(result.table[:, 0].min()) > 0.9 and float(result.table[:, 1].max()) < 0.7
    site, best = result.best()
    assert site.positions == -1 and best > 0.9
    assert "| layer | -1 | 1 |" in result.to_markdown()
    paths = result.heatmap(tmp_path / "scan")
    assert paths[0].suffix == ".png" and paths[0].stat().st_size > 1000


# --------------------------------------------------------------------------- the claims on the bundled model


PRICE_SITE = Site("blocks.2.hook_resid_pre", -1)


@pytest.mark.slow
def test_price_tagging_boundless_das_beats_controls():
    """Claim 2 (small version of the docs' experiment): Boundless DAS at the site the
    layers × positions scan picks (docs/alignment.md) aligns ``above_lower`` with held-out IIA
    ≥ 0.9 (test-split prompts, half of the pairs informative, labels balanced so chance is 0.5),
    while a random subspace of the same size at the same site stays near chance. (The
    shuffled-variable control is in the docs' run; it doubles the time.)"""
    report = price_experiment(
        site=PRICE_SITE, scan_sites=False, shuffled_control=False,
        n_train=512, n_val=64, n_test=256, steps=300,
    )  # fmt: skip
    assert report["test"]["chance"] == 0.5 and report["test"]["informative_share"] == 0.5
    assert report["test"]["iia"] >= 0.9
    assert report["test"]["iia_informative"] >= 0.85
    assert 1 <= report["k"] <= 40  # a small subspace of the 128-wide residual
    control = report["control_random_subspace"]
    assert control["iia"] <= 0.6 and control["iia_informative"] <= 0.2


@pytest.mark.slow
def test_mdas_disentangles_better_than_cause_only_das():
    """Claim 3: at the same site and dimension, MDAS (cause + isolate objectives) reaches a
    higher RAVEL Disentangle score than DAS trained on the cause objective alone."""
    report = entity_experiment(k=32, n_train=96, n_test=64, steps=100)
    das, mdas = report["das_cause_only"], report["mdas"]
    assert mdas["disentangle"] > das["disentangle"] + 0.05
    assert mdas["iso"] > das["iso"]


def test_documented_command_reproduces_the_planted_direction_table(capsys):
    """``python -m circuits.alignment.experiments planted`` is what docs/alignment.md says its
    table comes from: its defaults (steps included) must give the table's row (seed 1 here;
    the command runs seeds 0, 1, 2 by default)."""
    import json
    import re
    from pathlib import Path

    from circuits.alignment.experiments import main

    main(["planted", "--planted-seeds", "1"])
    out = capsys.readouterr().out
    run = json.loads(out[out.index("{") :])["seed 1"]
    docs = (Path(__file__).parents[1] / "docs" / "alignment.md").read_text()
    row = re.search(r"^\| 1 \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) / ([\d.]+) \|$", docs, re.M)
    assert row is not None, "the planted-direction table has no row for seed 1"
    random_iia, random_cos = map(float, row.groups()[2:])
    assert f"{run['iia']:.3f}" == row.group(1) and f"{run['cosine']:.4f}" == row.group(2)
    assert run["random_direction_iia"] == pytest.approx(random_iia, abs=0.005)
    assert run["random_direction_cosine"] == pytest.approx(random_cos, abs=0.005)
    assert f"for {int(run['steps'])} steps" in docs
