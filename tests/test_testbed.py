"""The testbed: baselines in every table, the validity gate on every verdict, channel health,
the uniform-teacher collapse rule and augmentations as part of the run."""

from __future__ import annotations

import csv
import functools
import json
import math
from pathlib import Path

import pytest
import torch

from sslobjectives import baselines
from sslobjectives.baselines import (
    RAW,
    RAW_CENTRED,
    SUPERVISED,
    UNTRAINED,
    UNTRAINED_CENTRED,
    gate,
)
from sslobjectives.compare import apply_overrides, augment_text, default_methods, plan_runs
from sslobjectives.eval.run import channel_health, collapse_reason
from sslobjectives.report.claims import AGREES, Claim
from sslobjectives.report.experiments import Experiment
from sslobjectives.report.groups import Run
from sslobjectives.report.verdicts import judge, validity_problem
from sslobjectives.results import format_table, load_results, write_report
from sslobjectives.train import RunConfig

DOCS = Path(__file__).resolve().parents[1] / "docs"

TINY = dict(
    dataset="digits",
    epochs=1,
    batch_size=256,
    n_local=0,
    head_dim=32,
    head_hidden=64,
    bottleneck_dim=16,
    warmup_epochs=0,
    knn_k=5,
)

# baseline rows by hand: raw pixels exact, the untrained backbone over seeds
BASES = [
    {"baseline": RAW, "n": 1, "knn": 0.976, "knn_ci": None, "linear": 0.96, "linear_ci": None},
    {"baseline": RAW_CENTRED, "n": 1, "knn": 0.982, "knn_ci": None, "linear": 0.96},
    {"baseline": UNTRAINED, "n": 3, "knn": 0.94, "knn_ci": 0.01, "linear": 0.967},
]
BASES[1]["linear_ci"] = None
BASES[2]["linear_ci"] = 0.005


# ------------------------------------------------------------------------------ the gate


def test_gate_names_each_baseline_a_group_does_not_beat():
    above = {"knn": 0.99, "knn_ci": 0.002, "linear": 0.99, "linear_ci": 0.005}
    assert gate(above, BASES) == []
    # a mean above the raw input but a CI reaching it is not a win: disjoint CIs are needed
    touching = {"knn": 0.985, "knn_ci": 0.004, "linear": 0.99, "linear_ci": 0.005}
    assert gate(touching, BASES) == ["baseline: raw-centred (knn)"]
    under = {"knn": 0.95, "knn_ci": 0.01, "linear": 0.96, "linear_ci": 0.01}
    assert gate(under, BASES) == [
        "baseline: raw (knn)",
        "baseline: raw (linear)",
        "baseline: raw-centred (knn)",
        "baseline: raw-centred (linear)",
        "baseline: untrained (knn)",  # CIs 0.94-0.96 and 0.93-0.95 overlap
        "baseline: untrained (linear)",
    ]
    # the supervised reference is the ceiling, not a floor: it never gates
    ceiling = {"baseline": SUPERVISED, "knn": 1.0, "knn_ci": 0.0, "linear": 1.0, "linear_ci": 0}
    assert gate(above, [*BASES, ceiling]) == []
    # the untrained backbone centred is a floor too (its k-NN is the higher one on the testbed)
    centred = {"baseline": UNTRAINED_CENTRED, "knn": 0.992, "knn_ci": 0.001}
    centred.update(linear=0.94, linear_ci=0.01)
    assert gate(above, [*BASES, centred]) == ["baseline: untrained-centred (knn)"]


def _run(label: str, seed: int, knn: float, linear: float, bce_frac: float | None = None) -> Run:
    history = [{"loss": 1.0}]
    if bce_frac is not None:  # a bits run: BCE as a fraction of B ln 2 with B = 32
        history = [{"loss": 1.0, "bce": bce_frac * 32 * math.log(2)}]
    config = {"objective": "bits" if bce_frac is not None else "dino", "head_dim": 32}
    result = {
        "label": label,
        "seed": seed,
        "status": "done",
        "config": config,
        "final": {"knn": knn, "linear": linear},
        "history": history,
    }
    return Run(label, seed, {}, "done", result)


def test_report_verdicts_are_invalid_testbed_or_channel_closed_for_groups_that_did_not_learn():
    runs = []
    for seed, d in enumerate((-0.001, 0.0, 0.001)):
        runs.append(_run("simdino", seed, 0.998 + d, 0.99 + d))  # learned
        runs.append(_run("simdino-wide", seed, 0.988 + d, 0.985 + d))  # learned, below simdino
        runs.append(_run("dino", seed, 0.95 + d, 0.95 + d))  # under raw and untrained
        runs.append(_run("bits-fixed", seed, 0.998 + d, 0.99 + d, bce_frac=0.98))  # closed
        runs.append(_run("bits-open", seed, 0.998 + d, 0.99 + d, bce_frac=0.71))
    exp = Experiment("fake", Path("."), ["label"], ["label"], [], runs)
    claim = Claim(
        text="pairs",
        metric="knn",
        pairs=(
            ("simdino", "simdino-wide"),
            ("simdino", "dino"),
            ("dino", "simdino"),
            ("simdino", "bits-fixed"),
            ("bits-open", "simdino-wide"),
        ),
    )

    def validity(name, group):
        return validity_problem(name, group, BASES)

    got = [v.verdict for v in judge(claim, exp, validity)]
    invalid = (
        "invalid testbed: dino does not beat baseline: raw and baseline: raw-centred and "
        "baseline: untrained"
    )
    assert got == [AGREES, invalid, invalid, "channel closed: bits-fixed", AGREES]
    lines = [v.line for v in judge(claim, exp, validity)]
    assert "→ **invalid testbed: dino does not beat" in lines[1]
    # without the gate (the verdict rules alone) the same pair is judged as measured
    assert [v.verdict for v in judge(claim, exp)][1] == AGREES
    # expect / per-group claims are gated the same way
    expect = Claim(text="knn high", metric="knn", expect=(">=", 0.5))
    per_group = {v.line.split(":")[0]: v.verdict for v in judge(expect, exp, validity)}
    assert per_group["dino"] == invalid
    assert per_group["bits-fixed"] == "channel closed: bits-fixed"
    assert per_group["simdino"] == AGREES


def test_channel_health_and_the_uniform_teacher_collapse():
    b = 256
    closed = channel_health([{"bce": 0.99 * b * math.log(2)}], b)
    assert closed["channel_closed"] and closed["bce_ratio"] == pytest.approx(0.99)
    # the threshold is 5% under B ln 2
    assert not channel_health([{"bce": 0.949 * b * math.log(2)}], b)["channel_closed"]
    assert channel_health([{"bce": 0.951 * b * math.log(2)}], b)["channel_closed"]
    assert channel_health([{"loss": 1.0}], b) == {}  # not a binary channel
    # uniform teacher: every sample's posterior near uniform while the marginal is uniform too
    # (the fixed point the investigation found: 5.52 nats of log 256 = 5.55)
    final = {"effective_rank": 20.0, "posterior_marginal_entropy": 5.54, "sample_entropy": 5.52}
    reason = collapse_reason(final, min_rank=2.0, entropy_frac=0.1, n_clusters=256)
    assert reason.startswith("uniform teacher: per-sample entropy 5.520")
    healthy = {**final, "sample_entropy": 4.29}  # the same teacher at initialisation
    assert collapse_reason(healthy, min_rank=2.0, entropy_frac=0.1, n_clusters=256) is None


def test_a_closed_channel_fails_the_learned_column():
    rows = [
        {"label": "bits", "n": 3, "collapsed": 0, "knn": 0.99, "knn_ci": 0.001, "linear": 0.99,
         "linear_ci": 0.001, "channel_closed": 2},
        {"label": "dino", "n": 3, "collapsed": 0, "knn": 0.9, "knn_ci": 0.01, "linear": 0.99,
         "linear_ci": 0.001},
    ]  # fmt: skip
    from sslobjectives.results import apply_gate

    for r in rows:
        apply_gate(r, BASES)
    table = format_table([*rows, *BASES])
    assert "no (channel closed)" in table
    assert "no (under raw, raw-centred, untrained)" in table
    assert "0.976 (exact)" in table and "0.940 ± 0.010" in table


# ------------------------------------------------------------------------------ baselines


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """A tiny real comparison (dino and bits-fixed, 2 seeds, 1 epoch of 5 steps)."""
    from sslobjectives.compare import comparison_spec, run_comparison

    out = tmp_path_factory.mktemp("cmp")
    methods = [m for m in default_methods(1) if m.label in ("dino", "bits-fixed")]
    configs = plan_runs(methods, [0, 1], TINY)
    spec = comparison_spec(methods, [0, 1], TINY, out)
    report = run_comparison(spec, out, progress=False, log=lambda m: None)
    return out, configs, report


@pytest.mark.parametrize(
    ("reuse_stale", "why"),
    [(True, "(--reuse-stale)"), (False, "(the package changed while they trained)")],
)
def test_compare_says_how_stale_results_got_into_its_table(
    comparison, tmp_path, monkeypatch, reuse_stale, why
):
    # Results the pool found fresh but that read as stale once collected went stale while
    # the comparison ran (the package changed meanwhile): the note must not name a flag
    # nobody gave.
    import shutil

    import sslobjectives.compare as compare_module
    from sslobjectives.compare import comparison_spec, run_comparison

    out = tmp_path / "cmp"
    shutil.copytree(comparison[0], out)
    monkeypatch.setattr(compare_module, "stale_reason", lambda result: "other code")
    methods = [m for m in default_methods(1) if m.label in ("dino", "bits-fixed")]
    spec = comparison_spec(methods, [0, 1], TINY, out)
    run_comparison(spec, out, progress=False, log=lambda m: None, reuse_stale=reuse_stale)
    table = (out / "table.txt").read_text()
    assert f"4 stale results (written by other code) included {why}" in table


def test_compare_shows_every_baseline_row_with_its_metrics_and_cis(comparison):
    out, configs, report = comparison
    table = (out / "table.txt").read_text()
    lines = {line.split("  ")[0]: line for line in table.splitlines()}
    for label in (RAW, RAW_CENTRED, UNTRAINED, UNTRAINED_CENTRED, SUPERVISED):
        assert label in lines, label
    assert "(exact)" in lines[RAW] and "±" not in lines[RAW]  # deterministic: no fake CI
    for label in (UNTRAINED, SUPERVISED):  # a CI, shown clipped to [0, 1] with two seeds
        assert "±" in lines[label] or "[" in lines[label], label
    assert "learned" in table.splitlines()[0]
    rows = {r.get("baseline") or r["label"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert rows[RAW]["knn_ci"] == "" and rows[UNTRAINED]["n"] == "2"
    assert rows["dino"]["learned"] in ("True", "False")
    assert rows["bits-fixed"]["bce_ratio"] and rows["bits-fixed"]["logit_scale"]
    assert {r["baseline"] for r in report["baselines"]} == {
        RAW,
        RAW_CENTRED,
        UNTRAINED,
        UNTRAINED_CENTRED,
        SUPERVISED,
    }
    # untrained and supervised over the runs' seeds, cached next to the results by hash
    cached = sorted(p.name.split("-")[0] for p in (out / "baselines").glob("*.json"))
    assert cached == ["raw", "supervised", "supervised", "untrained", "untrained"] + [
        "untrained_centred"
    ] * 2
    # the untrained row is the runs' own initial backbone: the same as recomputing it
    direct = baselines.untrained_metrics(configs[0])
    stored = baselines.cached("untrained", configs[0], out)
    assert stored == pytest.approx(direct)
    # and the centred row is the same features minus their training mean
    from sslobjectives.eval.metrics import evaluate_representation
    from sslobjectives.eval.run import extract
    from sslobjectives.train.trainer import dataset_for

    data, cpu = dataset_for(configs[0]), torch.device("cpu")
    f_tr, _ = extract(baselines._student(configs[0]), data.x_train, cpu)
    f_te, _ = extract(baselines._student(configs[0]), data.x_test, cpu)
    mean = f_tr.mean(0, keepdim=True)
    k = configs[0].knn_k
    centred = evaluate_representation(f_tr - mean, data.y_train, f_te - mean, data.y_test, k=k)
    stored = baselines.cached("untrained_centred", configs[0], out)
    assert stored == pytest.approx({m: centred[m] for m in baselines.METRICS})


def test_baselines_are_read_from_the_cache_and_keyed_by_what_determines_them(
    comparison, monkeypatch
):
    out, configs, _ = comparison

    def refuse(config):
        raise AssertionError("recomputed a cached baseline")

    monkeypatch.setattr(baselines, "_COMPUTE", {k: refuse for k in baselines._COMPUTE})
    results = load_results([out / "runs"])
    with pytest.raises(AssertionError, match="recomputed"):  # another folder: no cache there
        write_report(results, out / "elsewhere")
    report = write_report(results, out)  # same folder: every baseline from its cache
    assert {r["baseline"] for r in report["baselines"]} >= {RAW, UNTRAINED}
    cfg = configs[0]
    key = baselines.cache_key
    assert key("raw", cfg) == key("raw", cfg.replace(seed=5, objective="bits", epochs=9))
    assert key("untrained", cfg) != key("untrained", cfg.replace(seed=5))
    assert key("untrained", cfg) == key("untrained", cfg.replace(epochs=9))
    assert key("supervised", cfg) != key("supervised", cfg.replace(epochs=9))
    assert key("supervised", cfg) != key("supervised", cfg.replace(augment={"rotation": 30}))


def test_prefill_trains_the_missing_baselines_in_worker_processes(comparison, tmp_path):
    """What ``sslobj compare`` does with a pool of 2 before its table: the untrained and
    supervised rows of every seed computed two at a time, then only read."""
    out, configs, _ = comparison
    assert baselines.prefill(configs[0], [0, 1], tmp_path, jobs=2) == 6
    files = sorted(p.name.split("-")[0] for p in (tmp_path / "baselines").glob("*.json"))
    assert files == ["supervised"] * 2 + ["untrained"] * 2 + ["untrained_centred"] * 2
    assert baselines.prefill(configs[0], [0, 1], tmp_path, jobs=2) == 0  # all cached now
    for kind in ("untrained", "untrained_centred", "supervised"):  # as in this process
        for seed in (0, 1):
            cfg = configs[0].replace(seed=seed)
            ours, theirs = baselines.cached(kind, cfg, tmp_path), baselines.cached(kind, cfg, out)
            assert ours == pytest.approx(theirs, abs=0.02), (kind, seed)
    assert baselines.prefill(configs[0], [0, 1], tmp_path / "one", jobs=1) == 0  # serial: later


def test_sweep_collect_and_report_show_the_baselines(comparison, tmp_path):
    """A sweep folder over the comparison's finished runs: collect's table and the report's."""
    from sslobjectives.report import write_results_report
    from sslobjectives.sweep.collection import collect

    out, configs, _ = comparison
    runs = []
    for c in configs:
        d = f"runs/{c.display_name}-s{c.seed}-{c.run_id}"
        assert (out / d / "result.json").exists()
        runs.append(
            {
                "run_id": c.run_id,
                "label": c.display_name,
                "seed": c.seed,
                "dir": d,
                "config": c.to_dict(),
            }
        )
    (out / "manifest.json").write_text(
        json.dumps({"name": "cmp", "by": ["label"], "varied": ["label"], "runs": runs})
    )
    report = collect(out)
    assert SUPERVISED in report["table"] and "learned" in report["table"]
    md = tmp_path / "R.md"
    write_results_report([out], md)
    text = md.read_text()
    assert "| baseline: raw |" in text and "(exact)" in text
    assert "| learned |" in text
    assert "| experiment | runs done | failed | collapsed | invalid testbed" in text


def test_digits_raw_pixel_baselines_the_readme_quotes():
    raw = baselines.raw_metrics(RunConfig(dataset="digits"))
    assert round(raw[RAW]["knn"], 3) == 0.976
    assert round(raw[RAW_CENTRED]["knn"], 3) == 0.982
    untrained = baselines.untrained_metrics(RunConfig(dataset="digits", seed=0))
    assert round(untrained["knn"], 3) == 0.944
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    quote = (
        "they reach\n> k-NN 0.976 (mean-centred 0.982) and the untrained backbone 0.944 (seed 0)"
    )
    assert quote in readme
    results = (root / "docs" / "RESULTS.md").read_text()
    digits = results.split("## ")[1]  # experiment 1a's section, with its baseline rows
    assert "| baseline: raw | " in digits and "| 0.976 (exact) |" in digits
    assert "| baseline: raw-centred | " in digits and "| 0.982 (exact) |" in digits


# ------------------------------------------------------------------------------ augment


def test_augmentation_is_chosen_by_source_not_by_file_name(tmp_path):
    import numpy as np

    from sslobjectives.data import SOURCES, default_augment, load_dataset

    x = np.random.default_rng(0).random((40, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "digits.npz", x=x, y=np.arange(40) % 4)
    user = load_dataset(str(tmp_path / "digits.npz"))
    assert user.name == "digits" and user.source == ""
    aug = default_augment(user)
    assert aug.flip is True and aug.blur_prob == 0.0  # generic, not digits' (no flips, blur)
    digits = default_augment(load_dataset("digits"))
    assert digits.flip is SOURCES["digits"].augment["flip"] is False


def test_augment_overrides_are_validated_recorded_and_keep_old_run_ids(tmp_path):
    from sslobjectives.train import train

    assert RunConfig().run_id == "57247054513e"  # unset augment: every earlier id unchanged
    with pytest.raises(ValueError, match="unknown setting 'rotaton'.*did you mean 'rotation'"):
        RunConfig(augment={"rotaton": 90})
    with pytest.raises(ValueError, match="rotation must lie in"):
        RunConfig(augment={"rotation": 400})
    cfg = RunConfig(**TINY, augment={"rotation": 90, "global_scale": [0.5, 1.0]})
    assert cfg.run_id != RunConfig(**TINY).run_id
    result = train(cfg, tmp_path / "run", progress=False)
    aug = json.loads((tmp_path / "run" / "result.json").read_text())["augment"]  # as recorded
    assert aug["rotation"] == 90 and aug["global_scale"] == [0.5, 1.0]
    assert result["augment"]["rotation"] == 90
    assert aug["flip"] is False and aug["global_size"] == 8  # the rest: digits' defaults
    # both --set forms
    base, _ = apply_overrides({}, [], ['augment={"rotation": 90}'])
    assert base == {"augment": {"rotation": 90}}
    base, _ = apply_overrides({}, [], ["augment.rotation=90", "augment.blur_prob=0"])
    assert base == {"augment": {"rotation": 90, "blur_prob": 0}}
    text = augment_text(plan_runs(default_methods(1)[:2], [0, 1], {**TINY, **base}))
    assert text.count("\n") == 0 and "rotation=90" in text and "blur_prob=0" in text


def test_compare_runs_bits_with_the_batch_logit_norm_explicitly():
    configs = plan_runs(default_methods(30), [0], {})
    bits = {c.label: c for c in configs if c.objective == "bits"}
    assert set(bits) == {"bits-fixed", "bits-reset"}
    for c in bits.values():
        assert c.to_dict()["head_kwargs"] == {"logit_norm": "batch"}
        assert c.run_id != c.replace(head_kwargs={}).run_id  # visible in the run id
    others = [c for c in configs if c.objective != "bits"]
    assert all(c.head_kwargs == {} for c in others)


# ------------------------------------------------------------------------------ learning


def test_a_seeded_tiny_run_beats_its_untrained_backbone(tmp_path):
    """bits with the batch logit norm on digits, 63 steps (seed 0): its channel opens within
    the first epoch (tests/test_train.py), so the BCE trains the backbone from the start.
    Measured: k-NN 0.953 against the untrained backbone's 0.944 (6 epochs: 0.958). The other
    candidates measured were weaker or slower: SimDINO on 16 px shapes (n 2000, rotating
    views) 0.577 vs 0.559 after 138 steps, on shapes-hard (n 1000) 0.340 vs 0.332; the
    clustering objectives fall under the untrained backbone on shapes (docs/TESTBED.md).
    The margin is small: this checks that training moves the backbone the right way, not
    that the testbed passes the gate (it does not yet)."""
    from sslobjectives.train import train

    cfg = RunConfig(
        objective="bits",
        head_kwargs={"logit_norm": "batch"},
        dataset="digits",
        epochs=3,
        batch_size=64,
        n_local=0,
        head_dim=64,
        head_hidden=128,
        bottleneck_dim=32,
        warmup_epochs=1,
    )
    result = train(cfg, tmp_path / "run", progress=False)
    untrained = baselines.untrained_metrics(cfg)
    assert result["final"]["knn"] > untrained["knn"] + 0.005
    assert not result["final"]["channel_closed"]


# ------------------------------------------------------------------------------ the recipe


def _planned_compare(monkeypatch, tmp_path, *argv):
    """The configs ``sslobj compare`` would run (nothing trains: run_comparison is stubbed)."""
    from sslobjectives import compare as compare_module
    from sslobjectives.cli import main

    seen = {}

    def fake_run(spec, out, **kwargs):
        seen["configs"] = [r.config for r in spec.expand()]
        return {"table": None, "plots": [], "failures": []}

    monkeypatch.setattr(compare_module, "run_comparison", fake_run)
    out = tmp_path / f"cmp{len(list(tmp_path.iterdir()))}"
    code = main(["compare", "--seeds", "1", "--no-progress", "--out", str(out), *argv])
    assert code == 0
    return {c.label: c for c in seen["configs"]}


def test_compare_runs_the_colour_testbed_with_its_recipe_by_default(monkeypatch, tmp_path, capsys):
    from sslobjectives.testbed import DEFAULT, TESTBED_COLOUR

    assert DEFAULT is TESTBED_COLOUR
    runs = _planned_compare(monkeypatch, tmp_path)
    printed = capsys.readouterr().out
    assert "on shapes-colour with cnn, 60 epochs" in printed
    assert "the testbed recipe on shapes-colour" in printed
    for c in runs.values():  # the shared settings
        assert (c.dataset, c.epochs, c.lr, c.n_local) == ("shapes-colour", 60, 0.003, 0)
        assert c.backbone_kwargs == {"strides": [1, 2, 2]}
    for label in ("dino", "kl_inverse_prior", "sinkhorn", "simdino"):
        assert runs[label].head_kwargs == {"input_norm": "batch"}, label
    for label in ("bits-fixed", "bits-reset"):
        assert runs[label].objective_cfg == {}  # the paper's beta
        assert runs[label].head_kwargs == {"logit_norm": "batch", "input_norm": "batch"}
    assert runs["bits-reset"].reset_period == 12 and runs["bits-reset"].reset_teacher is False


def test_compare_runs_shapes_hard_with_its_recipe(monkeypatch, tmp_path, capsys):
    from sslobjectives.testbed import TESTBED

    runs = _planned_compare(monkeypatch, tmp_path, "--dataset", "shapes-hard")
    printed = capsys.readouterr().out
    assert "on shapes-hard with cnn, 20 epochs" in printed and "the testbed recipe" in printed
    assert list(runs) == [
        "dino", "kl_inverse_prior", "sinkhorn", "simdino", "bits-fixed", "bits-reset"
    ]  # fmt: skip
    for c in runs.values():  # the shared settings
        assert (c.dataset, c.epochs, c.lr, c.n_local) == ("shapes-hard", 20, 0.003, 0)
        assert c.backbone_kwargs == {"strides": [1, 2, 2]}
    for label in ("dino", "kl_inverse_prior", "sinkhorn"):
        c = runs[label]
        assert c.objective_cfg == {"teacher_temp": 0.02, "warmup_teacher_temp": 0.02}
        assert c.head_kwargs == {"input_norm": "batch"}
    assert runs["simdino"].objective_cfg == {} and runs["simdino"].head_kwargs == {}
    for label in ("bits-fixed", "bits-reset"):
        c = runs[label]
        assert c.objective_cfg == {"beta": 0.5}
        assert c.head_kwargs == {"logit_norm": "batch", "input_norm": "batch"}
    assert runs["bits-fixed"].reset_period is None and runs["bits-fixed"].reset_teacher
    assert runs["bits-reset"].reset_period == 4 and runs["bits-reset"].reset_teacher is False
    # the recipe is data: the runs are exactly its settings
    assert TESTBED.base()["backbone_kwargs"] == {"strides": [1, 2, 2]}


def test_the_command_line_overrides_the_recipe_and_other_data_gets_none(
    monkeypatch, tmp_path, capsys
):
    runs = _planned_compare(
        monkeypatch,
        tmp_path,
        *("--epochs", "5", "--set", "lr=0.01", "--set", "dino.teacher_temp=0.05"),
    )
    assert {c.epochs for c in runs.values()} == {5} and {c.lr for c in runs.values()} == {0.01}
    assert runs["dino"].objective_cfg["teacher_temp"] == 0.05
    assert runs["sinkhorn"].objective_cfg["teacher_temp"] == 0.02
    assert "the testbed recipe" in capsys.readouterr().out
    plain = _planned_compare(monkeypatch, tmp_path, "--no-recipe")
    digits = _planned_compare(monkeypatch, tmp_path, "--dataset", "digits")
    for runs in (plain, digits):
        for c in runs.values():
            assert (c.epochs, c.lr, c.n_local, c.backbone_kwargs) == (30, 1e-3, 2, {})
            assert c.objective in ("bits",) or c.head_kwargs == {}
        assert runs["bits-reset"].reset_period == 3 and runs["bits-reset"].reset_teacher
        assert runs["bits-fixed"].head_kwargs == {"logit_norm": "batch"}
    assert {c.dataset for c in plain.values()} == {"shapes-colour"}
    assert "the testbed recipe" not in capsys.readouterr().out


def test_the_committed_testbed_comparison_supports_what_the_docs_say():
    """docs/TESTBED.md and the README: on the testbed every objective's mean k-NN is 0.10 or
    more above the raw input and the untrained backbone as the runs measure them, the bits
    channels end open, and no group passes the gate, whose floors now include the untrained
    backbone centred (above every objective's mean k-NN)."""
    import csv

    root = Path(__file__).resolve().parents[1]
    with open(root / "docs" / "compare-shapes-hard" / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    base = {r["baseline"]: r for r in rows if r["baseline"]}
    methods = {r["label"]: r for r in rows if not r["baseline"]}
    assert len(methods) == 6
    as_measured = (RAW, RAW_CENTRED, UNTRAINED)
    floor = max(float(base[k]["knn"]) for k in as_measured)
    assert floor == float(base[UNTRAINED]["knn"])
    for label, r in methods.items():
        assert float(r["knn"]) >= floor + 0.10, label
        assert float(r["knn"]) < float(base[UNTRAINED_CENTRED]["knn"]), label
        assert "untrained-centred" in r["not_beaten"], label
    for label in ("bits-fixed", "bits-reset"):
        assert methods[label]["channel_closed"] in ("0", "False")  # closed runs counted
        assert float(methods[label]["bce_ratio"]) < 0.8
    learned = {label for label, r in methods.items() if r["learned"] == "True"}
    assert learned == set()
    text = (root / "docs" / "TESTBED.md").read_text()
    knn = sorted(float(r["knn"]) for r in methods.values())
    assert f"the six objectives {knn[0]:.3f}-{knn[-1]:.3f}" in text
    untrained = base[UNTRAINED]
    assert f"untrained {float(untrained['knn']):.3f} ± {float(untrained['knn_ci']):.3f}" in text


def test_a_seeded_short_run_with_the_recipe_beats_its_untrained_backbone(tmp_path):
    """sinkhorn with the testbed recipe for 10 epochs instead of 20 (290 steps, seed 0): a
    clustering objective that leaves the uniform-teacher fixed point and moves the backbone
    past its initialisation (before the recipe they all ended under it). 6 epochs were
    measured too short (k-NN 0.702 against the untrained 0.700)."""
    from sslobjectives.testbed import TESTBED
    from sslobjectives.train import train

    cfg_extra, run_extra = TESTBED.for_head_kind("cluster")
    cfg = RunConfig.from_dict(
        {
            **TESTBED.base(),
            **run_extra,
            "objective": "sinkhorn",
            "objective_cfg": cfg_extra,
            "epochs": 10,
            "warmup_epochs": 1,
        }
    )
    result = train(cfg, tmp_path / "run", progress=False)
    untrained = baselines.untrained_metrics(cfg)
    assert result["final"]["knn"] > untrained["knn"] + 0.03, (result["final"], untrained)
    assert not result["collapsed"]


# ------------------------------------------------------------- the experiments on the testbed

SPECS = Path(__file__).resolve().parents[1] / "experiments"


def _spec_runs(name: str):
    from sslobjectives.sweep import load_spec

    return [r.config for r in load_spec(SPECS / name).expand()]


def test_experiment_one_b_is_the_default_comparison(comparison_run_ids):
    """experiments/01_objective_comparison_testbed.toml writes down `sslobj compare --seeds
    5`'s runs (shapes-colour with TESTBED_COLOUR): the same run ids as docs/compare (seeds
    0-2) and docs/testbed-colour/seeds-3-4, whose run folders scripts/share-runs.py copies
    into the sweep."""
    from sslobjectives.compare import comparison_spec
    from sslobjectives.testbed import DEFAULT

    spec = comparison_spec(
        default_methods(DEFAULT.run["epochs"], DEFAULT), [0, 1, 2, 3, 4], DEFAULT.base(), "x"
    )
    ids = {r.run_id for r in spec.expand()}
    assert ids == {c.run_id for c in _spec_runs("01_objective_comparison_testbed.toml")}
    assert ids == comparison_run_ids


def test_domain_shift_stage_one_pretrains_experiment_one_b_runs():
    """Experiment 8's stage 1 is exactly 1b's bits-reset and dino, as its spec says."""
    one_b = {c.run_id for c in _spec_runs("01_objective_comparison_testbed.toml")}
    stage1 = _spec_runs("08_domain_shift_1_pretrain.toml")
    assert len(stage1) == 10 and {c.run_id for c in stage1} <= one_b


@pytest.mark.parametrize(
    "name",
    [
        "02_reset_period.toml",
        "03_coding_rate_weight.toml",
        "04_channel_width.toml",
        "05_hard_vs_soft_targets.toml",
        "06_centering_vs_inverse_prior.toml",
        "07_what_the_bits_say.toml",
        "08_domain_shift_2_adapt.toml",
    ],
)
def test_every_ablation_runs_on_the_testbed_with_its_family_settings(name):
    """The ablations share the default recipe's run settings (TESTBED_COLOUR) and each
    objective family's settings, except the one key the experiment varies."""
    from sslobjectives.objectives import get
    from sslobjectives.testbed import DEFAULT as TESTBED

    configs = _spec_runs(name)
    assert configs
    for c in configs:
        assert c.dataset == TESTBED.dataset
        assert (c.lr, c.n_local) == (TESTBED.run["lr"], TESTBED.run["n_local"])
        assert c.backbone_kwargs == TESTBED.run["backbone_kwargs"]
        if name.startswith(("02_", "03_", "04_", "05_", "07_")):
            assert c.epochs == TESTBED.run["epochs"] // 2  # the bits ablations: 30 epochs
        elif not name.startswith("08_domain_shift_2"):
            assert c.epochs == TESTBED.run["epochs"]
        cfg, run = TESTBED.for_head_kind(get(c.objective).head_kind)
        assert c.head_kwargs == run.get("head_kwargs", {})
        for key, value in cfg.items():
            if key == "beta" and name.startswith("03_"):
                continue  # the key experiment 3 varies
            if name.startswith("06_") and key in ("teacher_temp", "warmup_teacher_temp"):
                # experiment 6 varies the temperature, held constant over the run: no
                # warm-up, or (1b's runs) a warm-up between equal temperatures
                o = c.objective_cfg
                assert o["warmup_teacher_temp_epochs"] == 0 or (
                    o["warmup_teacher_temp"] == o["teacher_temp"]
                )
                continue
            assert c.objective_cfg[key] == value, (c.label, key)


def test_the_five_seed_clustering_table_is_the_committed_runs():
    """docs/TESTBED.md's table of seeds 0-4 (clustering objectives): seeds 0-2 are
    docs/compare-shapes-hard's runs, seeds 3-4 docs/testbed-seeds-3-4's (the same recipe,
    `sslobj compare --dataset shapes-hard --seeds 3,4`); dino's seed 3 ends under its
    untrained backbone and its 5-seed mean k-NN is less than 0.10 above the untrained
    backbone's."""
    import statistics

    root = Path(__file__).resolve().parents[1]
    knn: dict[str, dict[int, float]] = {}
    for folder in ("compare-shapes-hard", "testbed-seeds-3-4"):
        with open(root / "docs" / folder / "runs.csv", newline="") as fh:
            for r in csv.DictReader(fh):
                if r["label"] in ("dino", "kl_inverse_prior", "sinkhorn"):
                    knn.setdefault(r["label"], {})[int(r["seed"])] = float(r["knn"])
    with open(root / "docs" / "compare-shapes-hard" / "summary.csv", newline="") as fh:
        first3 = next(float(r["knn"]) for r in csv.DictReader(fh) if r["baseline"].endswith(
            "untrained"))
    untrained = {}
    for path in (root / "docs" / "testbed-seeds-3-4" / "baselines").glob("untrained-*.json"):
        stored = json.loads(path.read_text())
        untrained[stored["key"]["seed"]] = stored["metrics"]["knn"]
    assert sorted(untrained) == [3, 4]
    base_mean = (3 * first3 + untrained[3] + untrained[4]) / 5
    text = (root / "docs" / "TESTBED.md").read_text()
    assert f"| {base_mean:.3f} |" in text
    readme = (root / "README.md").read_text()
    quoted = {"dino": "0.086", "kl_inverse_prior": "0.113", "sinkhorn": "0.137"}
    for label, by_seed in knn.items():
        assert sorted(by_seed) == [0, 1, 2, 3, 4], label
        cells = [f"{by_seed[s]:.3f}" for s in range(5)]
        if label == "dino":
            cells[3] = f"**{cells[3]}**"
        assert f"| `{label}` | " + ", ".join(cells) + " | " in text, label
        mean = statistics.mean(by_seed.values())
        assert f"| {mean:.3f} ± " in text, label
        margin = f"{mean - base_mean:.3f}"
        assert margin == quoted[label] and margin in readme and margin in text, label
    assert set(knn) == set(quoted)
    assert knn["dino"][3] < untrained[3]
    assert statistics.mean(knn["dino"].values()) - base_mean < 0.10


def test_the_untrained_backbone_centred_is_as_good_as_any_objective_in_knn():
    """docs/TESTBED.md "The untrained backbone, centred" and the README: subtracting the
    training mean lifts the untrained testbed backbone's k-NN from about 0.69 to 0.86, above
    every objective's mean k-NN in docs/compare-shapes-hard; centred, the trained clustering
    teachers are below it. Recomputed here for the untrained backbones (seconds); the trained
    teachers' centred k-NN is the committed docs/testbed-centred/runs.csv (scripts/testbed/
    centred_knn.py on docs/compare-shapes-hard/runs), checked against its own k-NN."""
    import statistics
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "scripts" / "testbed"))
    try:
        import centred_knn
    finally:
        sys.path.remove(str(root / "scripts" / "testbed"))
    with open(root / "docs" / "compare-shapes-hard" / "summary.csv", newline="") as fh:
        summary = list(csv.DictReader(fh))
    with open(root / "docs" / "compare-shapes-hard" / "runs.csv", newline="") as fh:
        run_knn = {(r["label"], int(r["seed"])): float(r["knn"]) for r in csv.DictReader(fh)}
    with open(root / "docs" / "testbed-centred" / "runs.csv", newline="") as fh:
        centred = list(csv.DictReader(fh))
    untrained_row = next(r for r in summary if r["baseline"] == UNTRAINED)
    objectives = {r["label"]: float(r["knn"]) for r in summary if r["label"]}
    assert len(objectives) == 6
    fresh = {}
    for seed in (0, 1, 2):
        config = centred_knn.testbed_config(seed)
        fresh[seed] = centred_knn.knn_three_ways(centred_knn.student_of(config), config)
    raw_mean = statistics.mean(v[0] for v in fresh.values())
    assert f"{raw_mean:.3f}" == f"{float(untrained_row['knn']):.3f}"  # the committed row
    centred_mean = statistics.mean(v[1] for v in fresh.values())
    assert centred_mean > max(objectives.values())  # above every objective's mean k-NN
    assert centred_mean - raw_mean > 0.15
    # the committed per-run table is docs/compare-shapes-hard's runs: same raw k-NN and untrained
    assert len(centred) == 18
    for r in centred:
        seed = int(r["seed"])
        assert float(r["trained_raw"]) == pytest.approx(run_knn[(r["label"], seed)], abs=1e-4)
        assert float(r["untrained_centred"]) == pytest.approx(fresh[seed][1], abs=1e-3)
    by_label: dict[str, list[float]] = {}
    for r in centred:
        by_label.setdefault(r["label"], []).append(float(r["trained_centred"]))
    for label in ("dino", "kl_inverse_prior", "sinkhorn"):
        assert statistics.mean(by_label[label]) < centred_mean, label
    text = (root / "docs" / "TESTBED.md").read_text()
    readme = (root / "README.md").read_text()
    quoted = [f"{raw_mean:.3f}", f"{centred_mean:.3f}"]
    quoted += [f"{statistics.mean(by_label[k]):.3f}" for k in sorted(by_label)]
    for q in quoted:
        assert q in text, q
    assert f"{centred_mean:.3f}" in readme


def test_the_candidate_changes_table_is_the_committed_probes():
    """docs/TESTBED.md "What might make the objectives clear the centred floor": the rows are
    docs/testbed-centred/probes.jsonl (scripts/testbed/probe.py lines), and what it says of
    them holds: at 40 epochs dino and bits-fixed end above their untrained backbone centred
    in the runs' own k-NN, simdino does not."""
    root = Path(__file__).resolve().parents[1]
    probes = {}
    for line in (root / "docs" / "testbed-centred" / "probes.jsonl").read_text().splitlines():
        d = json.loads(line)
        probes[(d["tag"], d["seed"])] = d
    text = (root / "docs" / "TESTBED.md").read_text()
    section = text.split("### What might make the objectives clear the centred floor")[1]
    section = section.split("\n## ")[0]
    for d in probes.values():
        for key in ("knn", "linear", "knn_centred"):
            if d.get(key) is not None:
                assert f"{d[key]:.3f}" in section, (d["tag"], d["seed"], key)
    margin = {
        tag: probes[(tag, 0)]["knn"] - probes[(tag, 0)]["knn_centred_untrained"]
        for tag in ("dino-ep40", "bits-ep40", "simdino-ep40")
    }
    assert f"{margin['dino-ep40']:.2f}" == "0.08" and f"{margin['bits-ep40']:.2f}" == "0.05"
    assert margin["simdino-ep40"] < 0
    assert "0.08 and 0.05 above the centred untrained backbone" in section
    assert probes[("g2-bits", 0)]["bce_frac"] > 0.95  # "the recipe's bits channel closes"
    lines = (root / "docs" / "testbed-centred" / "baselines.jsonl").read_text().splitlines()
    supervised = [json.loads(x) for x in lines if '"supervised"' in x]
    assert len(supervised) == 3
    for row in supervised:  # the supervised column (n 2000, noise 0.1, pool grid 2)
        assert f"| {row['knn']:.3f} |" in section, row


@functools.cache
def _colour_probes() -> tuple[dict, ...]:
    """The probe.py lines of docs/testbed-colour/probes.jsonl (read once)."""
    path = Path(__file__).resolve().parents[1] / "docs" / "testbed-colour" / "probes.jsonl"
    return tuple(json.loads(line) for line in path.read_text().splitlines())


@functools.cache
def _colour_floor(seed: int) -> float:
    """The centred untrained backbone's k-NN on today's shapes-colour (computed once per seed:
    an untrained backbone does not depend on the recipe's epochs)."""
    from sslobjectives.testbed import TESTBED_COLOUR

    config = RunConfig.from_dict({**TESTBED_COLOUR.base(), "objective": "dino", "seed": seed})
    return baselines.untrained_metrics(config, centred=True)["knn"]


def _knn_by_run(runs) -> dict[tuple[str, int], float]:
    """``{(label, seed): k-NN}`` of a comparison's per-run rows."""
    return {(r["label"], int(r["seed"])): float(r["knn"]) for r in runs}


def _committed_comparison(folder):
    """``(baselines by label, methods by label, per-run rows)`` of a table ``sslobj compare``
    wrote into ``folder`` (its summary.csv and runs.csv)."""
    with open(folder / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(folder / "runs.csv", newline="") as fh:
        runs = list(csv.DictReader(fh))
    base = {r["baseline"]: r for r in rows if r["baseline"]}
    methods = {r["label"]: r for r in rows if not r["baseline"]}
    return base, methods, runs


def test_the_forty_epoch_comparison_is_what_testbed_md_says():
    """docs/TESTBED.md: at 40 epochs sinkhorn and bits-fixed pass the gate with the centred
    floor, dino and kl_inverse_prior miss it by their CIs, simdino and bits-reset end under
    the floor (docs/testbed-centred/compare-40-epochs/, written by sslobj compare)."""
    root = Path(__file__).resolve().parents[1]
    base, methods, runs = _committed_comparison(
        root / "docs" / "testbed-centred" / "compare-40-epochs"
    )
    floor = float(base[UNTRAINED_CENTRED]["knn"])
    assert {k for k, r in methods.items() if r["learned"] == "True"} == {"sinkhorn", "bits-fixed"}
    for label in ("simdino", "bits-reset"):
        assert float(methods[label]["knn"]) < floor, label
    for label in ("dino", "kl_inverse_prior"):
        r = methods[label]
        assert float(r["knn"]) > floor and float(r["knn"]) - float(r["knn_ci"]) <= floor, label
    assert len(runs) == 18 and {int(r["seed"]) for r in runs} == {0, 1, 2}
    text = (root / "docs" / "TESTBED.md").read_text()
    for label, r in methods.items():
        assert f"`{label}` {float(r['knn']):.3f}" in text or f"{float(r['knn']):.3f}" in text
    assert f"{floor:.3f}" in text and f"{float(base[SUPERVISED]['knn']):.3f}" in text
    readme = (root / "README.md").read_text()
    for label in ("sinkhorn", "bits-fixed"):
        assert f"{float(methods[label]['knn']):.3f}" in readme, label


def test_shapes_colour_runs_the_testbed_recipe_with_what_colour_measured():
    """TESTBED_COLOUR is TESTBED's recipe on shapes-colour except where colour measured
    differently (its comment): 60 epochs, simdino's head input normalised, bits at the paper's
    beta 0.1, bits-reset's period scaled to 12 of 60 epochs."""
    from sslobjectives.compare import default_methods
    from sslobjectives.objectives import get
    from sslobjectives.testbed import DEFAULT, TESTBED, TESTBED_COLOUR, recipe_for

    assert recipe_for("shapes-colour") is TESTBED_COLOUR is DEFAULT
    assert TESTBED_COLOUR.base() == {**TESTBED.base(), "dataset": "shapes-colour", "epochs": 60}
    assert TESTBED_COLOUR.for_head_kind("cluster") == TESTBED.for_head_kind("cluster")
    embedding = ({}, {"head_kwargs": {"input_norm": "batch"}})
    assert TESTBED_COLOUR.for_head_kind("embedding") == embedding
    cfg, run = TESTBED_COLOUR.for_head_kind("binary")
    assert cfg == {} and run == TESTBED.for_head_kind("binary")[1]
    methods = {m.label: m for m in default_methods(60, TESTBED_COLOUR)}
    assert get("bits").Config().beta == 0.1  # the paper's, which the recipe keeps
    for label in ("bits-fixed", "bits-reset"):
        assert methods[label].objective_cfg == {}, label
    assert methods["bits-reset"].run["reset_period"] == 12  # 20 of 100 epochs, as TESTBED's 4 of 20
    assert TESTBED.for_label("bits-reset")["reset_period"] / TESTBED.run["epochs"] == 12 / 60
    assert methods["bits-reset"].run["reset_teacher"] is False
    assert methods["simdino"].run["head_kwargs"] == {"input_norm": "batch"}


def test_the_colour_comparison_is_what_testbed_md_says():
    """docs/TESTBED.md, "Colour": on shapes-colour at 20 epochs the floor is low and the
    supervised reference high, no group learns, the clustering objectives and simdino end
    0.02-0.05 above the centred untrained backbone, and bits gains 0.22-0.25 with its channel
    closed (docs/testbed-colour/compare-20-epochs/, written by sslobj compare)."""
    root = Path(__file__).resolve().parents[1]
    folder = root / "docs" / "testbed-colour" / "compare-20-epochs"
    base, methods, runs = _committed_comparison(folder)
    floor = float(base[UNTRAINED_CENTRED]["knn"])
    assert floor < 0.4 and float(base[SUPERVISED]["knn"]) > 0.85
    assert not any(r["learned"] == "True" for r in methods.values())
    for label in ("dino", "kl_inverse_prior", "sinkhorn", "simdino"):
        assert 0.02 <= float(methods[label]["knn"]) - floor <= 0.05, label
    for label in ("bits-fixed", "bits-reset"):
        r = methods[label]
        assert r["channel_closed"] == r["n"] == "3" and float(r["bce_ratio"]) > 0.95, label
        assert 0.22 <= round(float(r["knn"]) - floor, 2) <= 0.25, label
    text = (root / "docs" / "TESTBED.md").read_text()
    for r in [*base.values(), *methods.values()]:  # every row of the summary
        knn = float(r["knn"])
        assert f"{knn:.3f}" in text, r["label"]
    readme = (root / "README.md").read_text().replace(">", "")
    readme = " ".join(readme.split())
    for r in (base[UNTRAINED_CENTRED], base[SUPERVISED]):
        assert f"{float(r['knn']):.3f}" in readme
    claim = "gain only 0.02–0.05 over it and `bits` gains 0.22–0.25 with its channel closed"
    assert claim in readme
    assert len(runs) == 18 and {int(r["seed"]) for r in runs} == {0, 1, 2}
    # the committed baselines are those of today's shapes-colour (recomputed for seed 0)
    cached = {}
    for path in (folder / "baselines").glob("untrained_centred-*.json"):
        stored = json.loads(path.read_text())
        cached[stored["key"]["seed"]] = stored["metrics"]["knn"]
    assert _colour_floor(0) == pytest.approx(cached[0])


def test_the_sixty_epoch_colour_probes_are_what_testbed_md_says():
    """docs/TESTBED.md, "At 60 epochs": on shapes-colour every objective ends 0.21-0.35 above
    the centred untrained backbone in k-NN (simdino with the batch-normalised head input),
    bits with its channel closed (raw lines: docs/testbed-colour/probes.jsonl)."""
    root = Path(__file__).resolve().parents[1]
    probes, seed1 = {}, {}
    for d in _colour_probes():
        if d["tag"].startswith("colour-60ep"):
            label = d["label"] + ("+input_norm" if "input-norm" in d["tag"] else "")
            (probes if d["seed"] == 0 else seed1)[label] = d
    assert set(probes) == {"dino", "kl_inverse_prior", "sinkhorn", "simdino", "simdino+input_norm",
                           "bits"}  # fmt: skip
    floor = {d["knn_centred_untrained"] for d in probes.values()}
    assert len(floor) == 1 and next(iter(floor)) == pytest.approx(0.396, abs=1e-3)
    gains = {k: d["knn"] - d["knn_centred_untrained"] for k, d in probes.items()}
    for label in ("dino", "kl_inverse_prior", "sinkhorn", "simdino+input_norm", "bits"):
        assert 0.21 <= round(gains[label], 2) <= 0.35, label
    assert gains["simdino"] < 0.05
    assert probes["bits"]["bce_frac"] > 0.95  # closed
    assert all(len(d["knn_by_epoch"]) == 60 for d in probes.values())
    text = (root / "docs" / "TESTBED.md").read_text()
    for d in probes.values():
        assert f"{d['knn']:.3f} | {d['knn_centred']:.3f} | {d['linear']:.3f}" in text.replace(
            "**", ""
        ), d["label"]
        assert " ".join(f"{x:.2f}" for x in d["knn_by_epoch"][4::5]) in text, d["label"]
    # seed 1 (a second seed of the objectives that learned): the same picture
    for label, d in seed1.items():
        assert 0.21 <= round(d["knn"] - d["knn_centred_untrained"], 2) <= 0.25, label
        assert f"{d['knn']:.3f}" in text and f"{d['knn_centred_untrained']:.3f}" in text, label
    assert set(seed1) == {"dino", "kl_inverse_prior", "sinkhorn", "simdino+input_norm"}


def test_the_bits_beta_table_on_colour_is_what_testbed_md_says():
    """docs/TESTBED.md, "`bits`'s channel on colour": on shapes-colour at 60 epochs the
    channel closes on seed 1 at beta 0.2 and 0.3 and stays open at the paper's 0.1 (the
    recipe's choice); closed runs lose the linear probe, not the k-NN; cutting the hue jitter
    opens the channel and learns nothing (raw lines: docs/testbed-colour/probes.jsonl)."""
    from sslobjectives.testbed import TESTBED_COLOUR

    root = Path(__file__).resolve().parents[1]
    probes = _colour_probes()
    cell = {}
    for d in probes:
        if d["label"] != "bits" or d.get("data") != "shapes-colour" or d["aug"]:
            continue
        last = {s.split("=", 1)[0]: json.loads(s.split("=", 1)[1]) for s in d["set"]}
        if d["tag"].startswith(("s8-bits-", "colour-60ep")) and "reset_period" not in last:
            cell[(last["objective_cfg"]["beta"], d["seed"], last["epochs"])] = d
    text = (root / "docs" / "TESTBED.md").read_text()
    section = text[text.index("## `bits`'s channel on colour") : text.index("## Colour:")]
    closed = lambda d: d["bce_frac"] >= 0.95  # noqa: E731
    for (beta, seed, epochs), d in cell.items():
        if epochs != 60:
            continue
        shown = f"{d['knn']:.3f} / {d['linear']:.3f} / {d['bce_frac']:.2f}"
        assert shown + (" closed" if closed(d) else "") in section, (beta, seed)
        assert f"(floor {d['knn_centred_untrained']:.3f})" in section, seed
        if closed(d):
            assert d["linear"] < 0.56, (beta, seed)
        else:
            assert d["linear"] > 0.62, (beta, seed)
    assert closed(cell[(0.5, 0, 60)])
    for beta in (0.2, 0.3):
        assert not closed(cell[(beta, 0, 60)]) and closed(cell[(beta, 1, 60)]), beta
    assert not closed(cell[(0.1, 0, 60)]) and not closed(cell[(0.1, 1, 60)])
    assert "beta" not in TESTBED_COLOUR.for_head_kind("binary")[0]  # the paper's 0.1 it is
    hue = next(d for d in probes if d["tag"] == "s8-bits-hue01")
    assert hue["aug"] == ["hue=0.1"] and not closed(hue)
    assert abs(hue["knn"] - hue["knn_centred_untrained"]) < 0.02
    assert f"{hue['knn']:.3f}" in section and f"{hue['knn_centred_untrained']:.3f}" in section


def test_the_default_comparison_on_colour_is_what_the_docs_say():
    """README and docs/TESTBED.md: `sslobj compare`'s default, shapes-colour with
    TESTBED_COLOUR (60 epochs), ends every mean k-NN 0.23-0.26 above the best baseline with
    every bits channel open; dino, sinkhorn, simdino and bits-reset pass the gate,
    kl_inverse_prior and bits-fixed miss it by their seed spread; kl_inverse_prior's raw
    teacher posterior collapses on every seed and two bits-reset runs end with features of
    effective rank under 2 (docs/compare/, written by scripts/regenerate-readme.py --run)."""
    from sslobjectives.testbed import DEFAULT

    root = Path(__file__).resolve().parents[1]
    folder = root / "docs" / "compare"
    measured = json.loads((folder / "measured.json").read_text())
    assert (measured["dataset"], measured["epochs"]) == (DEFAULT.dataset, DEFAULT.run["epochs"])
    base, methods, runs = _committed_comparison(folder)
    assert len(runs) == 18 and {int(r["seed"]) for r in runs} == {0, 1, 2}
    best = max(float(b["knn"]) for k, b in base.items() if k != SUPERVISED)
    assert best == float(base[UNTRAINED_CENTRED]["knn"])
    margins = [float(r["knn"]) - best for r in methods.values()]
    assert f"{min(margins):.2f}–{max(margins):.2f}" == "0.23–0.26"
    learned = {k for k, r in methods.items() if r["learned"] == "True"}
    assert learned == {"dino", "sinkhorn", "simdino", "bits-reset"}
    floor = base[UNTRAINED_CENTRED]
    floor_hi = float(floor["knn"]) + float(floor["knn_ci"])
    for label in ("kl_inverse_prior", "bits-fixed"):  # the seed spread: CI reaches the floor
        r = methods[label]
        assert float(r["knn"]) - float(r["knn_ci"]) <= floor_hi < float(r["knn"]), label
    for label in ("bits-fixed", "bits-reset"):
        r = methods[label]
        assert r["channel_closed"] in ("0", "False") and float(r["bce_ratio"]) < 0.7, label
    per_run = {(r["label"], int(r["seed"])): r for r in runs}
    assert f"{float(per_run[('bits-fixed', 0)]['knn']):.3f}" == "0.505"
    kl = [float(per_run[("kl_inverse_prior", s)]["posterior_marginal_entropy"]) for s in range(3)]
    assert methods["kl_inverse_prior"]["collapsed"] == "3" and max(kl) < 0.555
    assert f"{min(kl):.2f}–{max(kl):.2f}" == "0.01–0.55"
    ranks = sorted(
        float(per_run[("bits-reset", s)]["effective_rank"])
        for s in range(3)
        if per_run[("bits-reset", s)]["collapsed"] == "True"
    )
    assert methods["bits-reset"]["collapsed"] == "2" and [f"{x:.2f}" for x in ranks] == [
        "1.84", "1.94"
    ]  # fmt: skip
    text = (root / "docs" / "TESTBED.md").read_text()
    for label, r in methods.items():  # TESTBED.md's table of this comparison
        knn, ci, linear = float(r["knn"]), float(r["knn_ci"]), float(r["linear"])
        row = f"| `{label}` | {knn:.3f} ± {ci:.3f} | {linear:.3f} | +{knn - best:.3f} | "
        assert row + ("**learned**" if label in learned else "no: CI reaches the floor") in text
    seeds = sorted(float(per_run[("kl_inverse_prior", s)]["posterior_marginal_entropy"])
                   for s in range(3))  # fmt: skip
    flat = " ".join(text.split())
    assert "marginal entropy " + ", ".join(f"{x:.3f}" for x in reversed(seeds)) in flat
    readme = " ".join((root / "README.md").read_text().replace(">", "").split())
    for quote in (
        "every mean k-NN ends 0.23–0.26 above the best baseline",
        "`dino`, `sinkhorn`, `simdino` and `bits-reset` pass the gate; `kl_inverse_prior` and "
        "`bits-fixed` miss it by their seed spread (`bits-fixed`'s seed 0 ends at 0.505)",
        "(marginal entropy 0.01–0.55 nats, under the rule's 0.555)",
        "effective rank under 2 (1.84, 1.94)",
        f"takes {round(measured['wall_s'] / 60)} minutes on two cores",
    ):
        assert quote in readme, quote
    # the committed floor is today's shapes-colour's (recomputed: seconds per seed)
    fresh = [_colour_floor(s) for s in range(3)]
    assert sum(fresh) / 3 == pytest.approx(float(base[UNTRAINED_CENTRED]["knn"]), abs=1e-3)


def test_the_clustering_targets_table_is_the_committed_measurement():
    """docs/TESTBED.md: kl_inverse_prior's raw teacher posterior is "collapsed" by the rule
    while its normalised targets use many clusters (scripts/testbed/cluster_targets.py on
    docs/compare/runs; docs/testbed-colour/cluster_targets.jsonl, whose raw marginal is the
    committed runs' own posterior_marginal_entropy)."""
    root = Path(__file__).resolve().parents[1]
    lines = (root / "docs" / "testbed-colour" / "cluster_targets.jsonl").read_text()
    rows = {(r["label"], r["seed"]): r for r in map(json.loads, lines.splitlines())}
    _, _, runs = _committed_comparison(root / "docs" / "compare")
    for r in runs:
        if (r["label"], int(r["seed"])) in rows:
            row = rows[(r["label"], int(r["seed"]))]
            recorded = float(r["posterior_marginal_entropy"])
            assert row["recorded"] == pytest.approx(recorded, abs=1e-4)
            assert row["raw_marginal"] == pytest.approx(recorded, abs=1e-3)  # same teacher
    assert {label for label, _ in rows} == {"dino", "kl_inverse_prior", "sinkhorn"}
    floor = 0.1 * rows[("dino", 0)]["log_k"]  # the collapse rule's
    for seed in range(3):
        kl = rows[("kl_inverse_prior", seed)]
        assert kl["raw_marginal"] < floor and kl["raw_used"] <= 2
        assert kl["target_marginal"] > 1.0 and kl["target_used"] >= 18
    text = " ".join((root / "docs" / "TESTBED.md").read_text().split())
    for label in ("dino", "kl_inverse_prior", "sinkhorn"):
        cells = [", ".join(f"{rows[(label, s)][k]:.3f}" for s in range(3))
                 for k in ("raw_marginal", "target_marginal", "target_sample")]  # fmt: skip
        used = ", ".join(f"{rows[(label, s)]['raw_used']} / {rows[(label, s)]['target_used']}"
                         for s in range(3))  # fmt: skip
        row = f"| `{label}` s0, s1, s2 | " + " | ".join(cells) + f" | {used} |"
        assert row in text, label


def test_over_five_seeds_every_group_passes_the_gate_on_colour():
    """docs/TESTBED.md and the README: seeds 3-4 added to the default comparison's seeds 0-2,
    tabled by sslobj compare over the 30 runs (docs/testbed-colour/five-seeds/), every group
    passes the gate with every bits channel open; its seeds 0-2 are docs/compare's runs."""
    root = Path(__file__).resolve().parents[1]
    base, methods, runs = _committed_comparison(root / "docs" / "testbed-colour" / "five-seeds")
    assert len(runs) == 30 and {int(r["seed"]) for r in runs} == set(range(5))
    assert all(r["n"] == "5" for r in methods.values())
    assert {k for k, r in methods.items() if r["learned"] == "True"} == set(methods)
    assert len(methods) == 6
    for label in ("bits-fixed", "bits-reset"):
        assert methods[label]["channel_closed"] in ("0", "False"), label
    _, _, first3 = _committed_comparison(root / "docs" / "compare")
    _, _, last2 = _committed_comparison(root / "docs" / "testbed-colour" / "seeds-3-4")
    assert {r["run_id"] for r in runs} == {r["run_id"] for r in first3 + last2}
    text = " ".join((root / "docs" / "TESTBED.md").read_text().split())
    for label, r in methods.items():
        cells = [f"{float(r[m]):.3f} ± {float(r[m + '_ci']):.3f}" for m in ("knn", "linear")]
        assert f"| `{label}` | {cells[0]} | {cells[1]} | learned" in text, label
    readme = " ".join((root / "README.md").read_text().replace(">", "").split())
    assert "all six pass it over five seeds (`docs/testbed-colour/five-seeds/`" in readme


def test_the_probes_towards_a_narrower_spread_are_what_testbed_md_says():
    """docs/TESTBED.md: bits-fixed's seed 0 at 90 epochs ends far above its 60-epoch k-NN
    with its channel open; kl_inverse_prior's seed 2 with the teacher at T 0.04 does not
    gain (raw lines: docs/testbed-colour/probes.jsonl; the 60-epoch values: docs/compare)."""
    root = Path(__file__).resolve().parents[1]
    probes = {d["tag"]: d for d in _colour_probes()}
    bits, kl = probes["s8-bits-90ep"], probes["s8-kl-t004"]
    assert "epochs=90" in bits["set"] and (bits["label"], bits["seed"]) == ("bits", 0)
    assert any('"teacher_temp":0.04' in s for s in kl["set"]) and kl["seed"] == 2
    assert len(bits["knn_by_epoch"]) == 90 and bits["bce_frac"] < 0.95
    at60 = _knn_by_run(_committed_comparison(root / "docs" / "compare")[2])
    assert bits["knn"] > at60[("bits-fixed", 0)] + 0.15
    assert kl["knn"] < at60[("kl_inverse_prior", 2)] and not kl["collapsed"]
    text = " ".join((root / "docs" / "TESTBED.md").read_text().split())
    assert f"ends at k-NN {bits['knn']:.3f} (linear {bits['linear']:.3f}" in text
    assert f"{bits['bce_frac']:.2f} B ln 2) against {at60[('bits-fixed', 0)]:.3f}" in text
    assert f"ends at {kl['knn']:.3f} against {at60[('kl_inverse_prior', 2)]:.3f}" in text


def test_the_forty_epoch_budget_probes_are_what_testbed_md_says():
    """docs/TESTBED.md and docs/STATUS.md: at 40 epochs (seed 0) dino and bits-fixed end
    0.12-0.16 above the centred untrained floor on shapes-colour, bits with its channel open
    (raw lines tagged s8-budget-40ep in docs/testbed-colour/probes.jsonl)."""
    root = Path(__file__).resolve().parents[1]
    probes = {d["label"]: d for d in _colour_probes() if d["tag"] == "s8-budget-40ep"}
    assert set(probes) == {"dino", "bits"}
    at60 = _knn_by_run(_committed_comparison(root / "docs" / "compare")[2])
    text = " ".join((root / "docs" / "TESTBED.md").read_text().split())
    for label, name in (("dino", "dino"), ("bits", "bits-fixed")):
        d = probes[label]
        assert len(d["knn_by_epoch"]) == 40 and d["seed"] == 0, label
        assert 0.12 <= round(d["knn"] - d["knn_centred_untrained"], 2) <= 0.16, label
        assert f"at {d['knn']:.3f} (linear {d['linear']:.3f}" in text, label
        assert f"against {at60[(name, 0)]:.3f}" in text, label
    assert probes["bits"]["bce_frac"] < 0.95


def test_experiment_eight_shift_is_the_measured_one():
    """experiments/08_domain_shift_2_adapt.toml's shifted domain and the baselines its comment
    quotes are docs/testbed-colour/domain_shift_baselines.jsonl's (scripts/testbed/
    baselines.py, seed 0, 4 epochs); the raw and untrained rows are recomputed here, the
    supervised reference (a minute of training) is the committed line."""
    rows = {
        (r["domain"], r["baseline"]): r
        for r in map(json.loads, (DOCS / "testbed-colour" / "domain_shift_baselines.jsonl")
                     .read_text().splitlines())
    }
    shift = {"intensity": [0.6, 0.9], "scale": [0.5, 0.7], "noise": 0.05}
    stage2 = _spec_runs("08_domain_shift_2_adapt.toml")
    assert all(c.dataset == "shapes-colour" and c.dataset_kwargs == shift for c in stage2)
    config = RunConfig(
        dataset="shapes-colour", dataset_kwargs=shift, epochs=4, lr=0.003, n_local=0,
        backbone_kwargs={"strides": [1, 2, 2]}, seed=0,
    )
    raw = baselines.raw_metrics(config)
    assert round(raw[RAW]["knn"], 3) == round(rows[("shifted", RAW)]["knn"], 3) == 0.425
    assert round(raw[RAW_CENTRED]["knn"], 3) == round(rows[("shifted", RAW_CENTRED)]["knn"], 3)
    untrained = baselines.untrained_metrics(config)
    assert round(untrained["knn"], 3) == round(rows[("shifted", "untrained")]["knn"], 3)
    comment = (SPECS / "08_domain_shift_2_adapt.toml").read_text()
    quoted = (
        f"raw pixels k-NN {rows[('shifted', RAW)]['knn']:.3f} (centred "
        f"{rows[('shifted', RAW_CENTRED)]['knn']:.3f}),\n# untrained backbone "
        f"{rows[('shifted', 'untrained')]['knn']:.3f}, supervised reference "
        f"{rows[('shifted', 'supervised')]['knn']:.3f}"
    )
    assert quoted in comment


def test_the_24_epoch_budget_leaves_the_clustering_objectives_under_the_margin():
    """README and docs/TESTBED.md ("Issue 11's budgets"): at 24 epochs (runs of about a
    minute: 18 of them in about 10 minutes, two at a time) the mean k-NN of dino,
    kl_inverse_prior and sinkhorn over seeds 0 and 1 ends 0.053-0.060 above the untrained
    backbone, centred: under issue 11's 0.10. Read from
    docs/testbed-colour/budget-probes.jsonl; the floor is recomputed (docs/compare/baselines
    is not in git)."""
    probes = [
        json.loads(line)
        for line in (DOCS / "testbed-colour" / "budget-probes.jsonl").read_text().splitlines()
    ]
    floor = {seed: _colour_floor(seed) for seed in (0, 1)}  # the untrained backbone, centred
    assert (round(floor[0], 3), round(floor[1], 3)) == (0.396, 0.344)  # as docs/TESTBED.md says
    short = [p for p in probes if p["epochs"] == 24 and p["batch_size"] == 128]
    assert sorted({p["seed"] for p in short}) == [0, 1] and len(short) == 12
    gains = {
        label: sum(p["knn"] - floor[p["seed"]] for p in short if p["label"] == label) / 2
        for label in ("dino", "kl_inverse_prior", "sinkhorn", "simdino", "bits-fixed")
    }
    clustering = [gains[k] for k in ("dino", "kl_inverse_prior", "sinkhorn")]
    assert f"{min(clustering):.3f}–{max(clustering):.3f}" == "0.053–0.060"
    assert max(clustering) < 0.10 <= min(gains["simdino"], gains["bits-fixed"])
    assert 9 * max(p["runtime_s"] for p in short) / 60 < 12  # 9 pairs of runs: ~10 min
    text = " ".join((DOCS.parent / "README.md").read_text().replace("\n>", "\n").split())
    assert "mean k-NN over seeds 0 and 1 ends 0.053–0.060 above the untrained backbone" in text
    testbed = " ".join((DOCS / "TESTBED.md").read_text().split())
    for label, quoted in (("dino", "0.053"), ("kl_inverse_prior", "0.060"), ("simdino", "0.107")):
        assert f"{gains[label]:.3f}" == quoted and quoted in testbed

