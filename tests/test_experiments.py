"""The experiment specs in ``experiments/`` stay runnable, and ``sslobj report`` judges them.

Every spec loads and plans at its committed budget. Then every run of every spec runs at a
smoke budget — one seed, one epoch, shapes with n = 200, small heads, the in-process
``debug`` executor (about 65 runs, under a minute on two cores) — experiment 8's stage 2
from its stage-1 runs, as its ``init_from`` patterns say. ``sslobj report`` runs over these
tiny sweeps, and the verdict logic is checked on hand-made results.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sslobjectives.cli import main
from sslobjectives.report import (
    AGREES,
    DISAGREES,
    INCONCLUSIVE,
    Difference,
    Run,
    Stat,
    _claim_metrics,
    expect_verdict,
    load_claims,
    load_experiment,
    pair_verdict,
    paired_differences,
    selector_problems,
    write_results_report,
)
from sslobjectives.results import _flatten
from sslobjectives.sweep import load_spec, parse_spec, plan, submit
from sslobjectives.train.rundir import code_version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
SPECS = sorted(EXPERIMENTS.glob("0*.toml"))
CLAIMS = EXPERIMENTS / "claims.toml"
TINY_BASE = {
    "epochs": 1,
    "n_local": 0,
    "head_hidden": 64,
    "bottleneck_dim": 16,
    "warmup_epochs": 0,
    "knn_k": 5,
}


def path_of(stem: str) -> Path:
    return EXPERIMENTS / f"{stem}.toml"


def _spec_params():
    return [pytest.param(path, id=path.stem) for path in SPECS]


def tiny_spec(path: Path):
    """The spec at a smoke budget: one seed, one epoch, small heads; shapes (and the testbeds,
    shapes-hard and shapes-colour) with n = 200."""
    data = tomllib.loads(path.read_text())
    data["sweep"]["seeds"] = [data["sweep"].get("seeds", [0])[0]]
    data["executor"] = {"kind": "debug"}
    base = data.setdefault("base", {})
    varied = set(_flatten(data.get("grid", {}))) | set(_flatten(data.get("zip", {})))
    base.update({k: v for k, v in TINY_BASE.items() if k not in varied})
    for section in ("grid", "zip"):  # an epochs axis (experiment 8: 0 = evaluate only)
        if "epochs" in data.get(section, {}):
            data[section]["epochs"] = [min(e, 1) for e in data[section]["epochs"]]
    if "head_dim" not in varied:
        base["head_dim"] = 32
    if base.get("dataset") in ("shapes", "shapes-hard", "shapes-colour"):
        base["dataset_kwargs"] = {**base.get("dataset_kwargs", {}), "n": 200}
        base.setdefault("batch_size", 64)
    else:
        base.setdefault("batch_size", 256)
    return parse_spec(data, source=str(path))


# ------------------------------------------------------------------------------ specs


def test_there_are_specs_for_all_eight_experiments():
    numbers = {p.name[:2] for p in SPECS}
    assert numbers == {f"0{i}" for i in range(1, 9)}, numbers


@pytest.mark.parametrize("path", _spec_params())
def test_every_spec_loads_and_plans(path, tmp_path):
    spec = load_spec(path)
    states = plan(spec, tmp_path / "out")
    assert len(states) == len(spec.expand()) >= 3
    assert len(spec.seeds) >= 3, "at least 3 seeds everywhere (issue 6)"
    assert spec.budget, "say the budget at the top of each spec"
    assert all(s.state == "unsubmitted" for s in states)


@pytest.mark.parametrize("path", _spec_params())
def test_claims_name_only_groups_that_exist_in_their_spec(path):
    claims = load_claims(CLAIMS)
    spec = load_spec(path)
    assert spec.name in claims, f"{spec.name} has no entry in claims.toml"
    runs = [
        Run(r.config.display_name, r.config.seed, _flatten(r.config.to_dict()), "missing")
        for r in spec.expand()
    ]
    for claim in claims[spec.name].claims:
        assert selector_problems(claim.selectors(), runs, spec.group_by) == [], claim.text
    for diff in claims[spec.name].differences:
        assert selector_problems([diff.a, diff.b], runs, spec.group_by) == [], diff


def test_every_claims_entry_has_a_spec():
    names = set()
    for path in SPECS:
        names.add(tomllib.loads(path.read_text())["sweep"]["name"])
    assert set(load_claims(CLAIMS)) == names


# ------------------------------------------------------------------------------ smoke runs


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Every spec at its smoke budget, collected, in ``<tmp>/results/sweeps/<name>``; the
    working directory is ``<tmp>`` while stage 2 of experiment 8 runs (its init_from patterns
    are relative to the directory sweeps are submitted from)."""
    root = tmp_path_factory.mktemp("experiments")
    outcomes = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for path in SPECS:
            spec = tiny_spec(path)
            out = root / "results" / "sweeps" / spec.name
            report = submit(spec, out, executor="debug")
            outcomes[path.stem] = report
    return root, outcomes


def test_each_spec_runs_at_a_tiny_budget(smoke):
    root, outcomes = smoke
    assert set(outcomes) == {p.stem for p in SPECS}
    for stem, report in outcomes.items():
        assert report.errors == {}, (stem, report.errors)
        results = [json.loads(p.read_text()) for p in report.out.glob("runs/*/result.json")]
        assert results and all(r["status"] == "done" for r in results), stem
        assert len(results) == len(report.submitted) == len(tiny_spec(path_of(stem)).expand())


def test_domain_shift_stage_two_starts_from_stage_one(smoke):
    root, outcomes = smoke
    report = outcomes["08_domain_shift_2_adapt"]
    stage1 = root / "results" / "sweeps" / "domain-shift-pretrain" / "runs"
    results = {
        r["label"]: r
        for r in (json.loads(p.read_text()) for p in report.out.glob("runs/*/result.json"))
    }
    for method, source_label in (("bits", "bits-reset"), ("dino", "dino")):
        (source,) = stage1.glob(f"{source_label}-s0-*")
        probe, adapt = results[f"{method}-probe"], results[f"{method}-adapt-reset"]
        assert Path(probe["init"]["path"]).parent == source.resolve()
        assert probe["history"] == [] and len(adapt["history"]) == 1
        assert adapt["init"]["head_reset"] is True and "head_reset" not in probe["init"]
        assert "init" not in results[f"{method}-scratch"]
    assert probe["config"]["dataset_kwargs"]["intensity"] == [0.6, 0.9]  # the shifted domain


def test_report_over_the_tiny_sweeps(smoke, capsys):
    root, _ = smoke
    md = root / "docs" / "RESULTS.md"
    assert main(["report", str(root / "results" / "sweeps"), "-o", str(md)]) == 0
    text = md.read_text()
    assert "| experiment | runs done |" in text
    assert re.search(r"^\| .* \| n \| knn \|", text, re.M), "a table per experiment"
    assert re.search(r"^- .* → \*\*", text, re.M), "a verdict line"
    assert "![" in text and (root / "docs" / "figures" / "reset-period" / "curves.png").exists()
    assert "## Experiment 2" in text and "**Paper**: BITS Table 9" in text
    assert "at commit" in text
    out = capsys.readouterr().out
    assert "reset-period:" in out and "wrote" in out


# ------------------------------------------------------------------------------ verdicts


def test_pair_and_expect_verdicts():
    hi, lo = Stat(0.8, 0.05, 3), Stat(0.5, 0.05, 3)
    assert pair_verdict(hi, lo) == AGREES
    assert pair_verdict(lo, hi) == DISAGREES
    assert pair_verdict(hi, lo, better="lower") == DISAGREES
    assert pair_verdict(Stat(0.6, 0.06, 3), Stat(0.5, 0.05, 3)) == INCONCLUSIVE  # touch
    assert pair_verdict(Stat(0.6, 0.0, 1), lo).startswith("inconclusive (fewer")
    assert pair_verdict(Stat(float("nan"), float("nan"), 0), lo) == "no data"
    assert expect_verdict(Stat(0.9, 0.05, 3), ">=", 0.8) == AGREES
    assert expect_verdict(Stat(0.6, 0.05, 3), ">=", 0.8) == DISAGREES
    assert expect_verdict(Stat(0.8, 0.05, 3), ">=", 0.8).startswith("inconclusive")
    assert expect_verdict(Stat(0.1, 0.05, 3), "<", 0.2) == AGREES
    assert expect_verdict(Stat(1.0, 0.0, 3), ">", 0.0) == AGREES  # every run collapsed
    assert expect_verdict(Stat(0.0, 0.0, 3), ">", 0.0) == DISAGREES  # none did


def _fake_sweep(
    root: Path, name: str, runs: list[dict], by: list[str], zip_keys=(), varied=None
) -> Path:
    """A sweep directory by hand: manifest + result.json per run (written by this code unless
    a run gives its ``code``)."""
    out = root / name
    manifest_runs = []
    for i, r in enumerate(runs):
        config = {"objective": "bits", "epochs": 1, "seed": r["seed"], **r["config"]}
        d = f"runs/{r['label']}-s{r['seed']}-{i}"
        manifest_runs.append(
            {"run_id": str(i), "label": r["label"], "seed": r["seed"], "dir": d, "config": config}
        )
        if r.get("status") == "missing":
            continue
        (out / d).mkdir(parents=True)
        result = {
            "run_id": str(i),
            "label": r["label"],
            "seed": r["seed"],
            "config": config,
            "status": r.get("status", "done"),
            "collapsed": r.get("collapsed", False),
            "final": r.get("final"),
            "history": r.get("history", []),
            "runtime_s": 1.0,
            "split": {"train_hash": "x"},
            "code": r.get("code", code_version()),
        }
        if result["status"] == "failed":
            result["error"] = "epoch 0, step 3: loss is not finite"
        (out / d / "result.json").write_text(json.dumps(result))
    spec = {"sweep": {"name": name, "seeds": [0, 1, 2]}, "zip": {k: [] for k in zip_keys}}
    varied = by if varied is None else varied
    manifest = {"name": name, "by": by, "varied": varied, "runs": manifest_runs, "spec": spec}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_report_verdicts_on_hand_made_results(tmp_path):
    runs = []
    # map: a (0.8) clearly above b (0.5); knn: b clearly above a; linear: overlapping
    for seed, (ma, mb) in enumerate([(0.80, 0.50), (0.82, 0.52), (0.78, 0.48)]):
        runs.append(
            {
                "label": "a",
                "seed": seed,
                "config": {"reset_period": 4},
                "final": {"map": ma, "knn": 0.2, "linear": 0.5 + 0.1 * seed},
                "history": [
                    {"loss": 1.0, "jensen_gap_mean": 0.1},
                    {"loss": 0.9, "jensen_gap_mean": 0.3 + 0.01 * seed},
                ],
            }
        )
        runs.append(
            {
                "label": "b",
                "seed": seed,
                "config": {"reset_period": None},
                "final": {"map": mb, "knn": 0.6, "linear": 0.55 + 0.1 * seed},
                "history": [{"loss": 1.0, "jensen_gap_mean": 0.2 + 0.01 * seed}],
            }
        )
    runs.append({"label": "b", "seed": 3, "config": {"reset_period": None}, "status": "failed"})
    runs.append({"label": "a", "seed": 4, "config": {"reset_period": 4}, "status": "missing"})
    out = _fake_sweep(tmp_path, "fake", runs, by=["reset_period"])
    claims = tmp_path / "claims.toml"
    claims.write_text(
        """
        [fake]
        paper = "a beats b"
        [[fake.claims]]
        text = "map"
        metric = "map"
        pairs = [["reset_period=4", "reset_period=none"]]
        [[fake.claims]]
        text = "knn"
        metric = "knn"
        pairs = [["reset_period=4", "reset_period=none"]]
        [[fake.claims]]
        text = "linear"
        metric = "linear"
        pairs = [["reset_period=4", "reset_period=none"]]
        [[fake.claims]]
        text = "gap, last epoch"
        source = "theory"
        metric = "jensen_gap_mean"
        pairs = [["reset_period=4", "reset_period=none"]]
        [[fake.claims]]
        text = "map at least 0.7"
        metric = "map"
        expect = {op = ">=", value = 0.7}
        """.replace("\n        ", "\n")
    )
    md = tmp_path / "docs" / "R.md"
    report = write_results_report([out], md, claims=claims, gate=False)
    got = [v.verdict for v in report["verdicts"]["fake"]]
    assert got == [AGREES, DISAGREES, INCONCLUSIVE, AGREES, AGREES, DISAGREES]
    text = md.read_text()
    assert "reset_period=4 > reset_period=none: 0.800 ± " in text
    assert "8 planned: 6 done (0 collapsed), 1 failed, 1 not run" in text
    assert "FAILED reset_period=none s3: epoch 0, step 3: loss is not finite" in text
    assert "| none | 3 |" in text and "| 4 | 3 |" in text
    assert (tmp_path / "docs" / "figures" / "fake" / "curves.png").exists()
    # the claims' metrics, one panel each (map once although two claims use it)
    assert _claim_metrics(load_claims(claims)["fake"]) == [
        ("map", "last"), ("knn", "last"), ("linear", "last"), ("jensen_gap_mean", "last")
    ]  # fmt: skip
    assert "![the claims' metrics per group" in text
    assert (tmp_path / "docs" / "figures" / "fake" / "claims.png").stat().st_size > 10_000


OTHER_CODE = {"version": "9.9.9", "commit": "0123456789abcdef", "dirty": False}


def test_results_of_other_code_are_left_out_of_the_report_unless_asked(tmp_path, capsys):
    runs = [
        {"label": label, "seed": s, "config": {}, "final": {"map": m + 0.01 * s}}
        for s in range(3)
        for label, m in (("a", 0.8), ("b", 0.5))
    ]
    # two more seeds of b, from other code, that would turn the verdict round
    runs += [
        {"label": "b", "seed": s, "config": {}, "final": {"map": 0.99}, "code": OTHER_CODE}
        for s in (3, 4)
    ]
    out = _fake_sweep(tmp_path, "exp", runs, by=["label"])
    claims = tmp_path / "claims.toml"
    claims.write_text(
        '[exp]\n[[exp.claims]]\ntext = "a"\nmetric = "map"\npairs = [["a", "b"]]\n'
    )
    md = tmp_path / "R.md"
    argv = ["report", str(out), "-o", str(md), "--claims", str(claims)]
    capsys.readouterr()
    assert main(argv) == 0
    [line] = capsys.readouterr().err.splitlines()
    assert line == (
        "sslobj report: 2 stale results (written by other code) excluded: exp: b s3, "
        "exp: b s4; --reuse-stale includes them"
    )
    text = md.read_text()
    assert "8 planned: 6 done (0 collapsed), 0 failed, 0 not run, 2 stale (excluded)" in text
    assert "- **2 stale results (written by other code) excluded: b s3, b s4; " in text
    assert "| b | 3 | 0.510 ± " in text  # the table: this code's three seeds only
    assert "a vs b: 0.810 ± 0.025 (n=3) vs 0.510 ± 0.025 (n=3) → **" in text  # the verdict
    exp = load_experiment(out)
    assert [r.seed for r in exp.stale] == [3, 4] and len(exp.done) == 6
    assert all("9.9.9" in r.stale for r in exp.stale)

    assert main([*argv, "--reuse-stale"]) == 0
    [line] = capsys.readouterr().err.splitlines()
    assert "2 stale results (written by other code) included (--reuse-stale)" in line
    text = md.read_text()
    assert "8 planned: 8 done (0 collapsed), 0 failed, 0 not run\n" in text
    assert "- **2 stale results (written by other code) included (--reuse-stale): b s3, b s4**" in (
        text
    )
    assert "| b | 5 | " in text and "(n=5) → **" in text
    assert "--reuse-stale" in text.splitlines()[2]  # the command that wrote it
    assert len(load_experiment(out, reuse_stale=True).done) == 8


def test_pairs_are_judged_per_setting_of_the_other_varied_keys(tmp_path):
    runs = []
    for obj, gap_lo, gap_hi in [("dino", 0.1, 0.5), ("sinkhorn", 0.4, 0.2)]:
        for seed in range(3):
            for temp, gap in [(0.02, gap_hi), (0.2, gap_lo)]:
                runs.append(
                    {
                        "label": obj,
                        "seed": seed,
                        "config": {"objective": obj, "objective_cfg": {"teacher_temp": temp}},
                        "final": {"knn": 0.5},
                        "history": [{"jensen_gap_mean": gap + 0.001 * seed}],
                    }
                )
    by = ["objective", "objective_cfg.teacher_temp"]
    out = _fake_sweep(tmp_path, "six", runs, by=by)
    claims = tmp_path / "claims.toml"
    claims.write_text(
        '[six]\n[[six.claims]]\ntext = "gap"\nmetric = "jensen_gap_mean"\n'
        'pairs = [["objective_cfg.teacher_temp=0.02", "objective_cfg.teacher_temp=0.2"]]\n'
    )
    report = write_results_report([out], tmp_path / "R.md", claims=claims, gate=False)
    lines = [v.line for v in report["verdicts"]["six"]]
    assert len(lines) == 2
    assert lines[0].startswith("[objective=dino] ") and lines[0].endswith(f"**{AGREES}**")
    assert lines[1].startswith("[objective=sinkhorn] ") and lines[1].endswith(f"**{DISAGREES}**")


def test_a_label_fixes_the_keys_inside_its_zip_column_of_tables_but_not_a_grid_axis(tmp_path):
    """Spec: grid objective_cfg.teacher_temp, zip label x objective_cfg = [{beta}, {centre}]:
    "a" vs "b" is judged once per temperature (a grid axis), not once per beta or centre
    momentum, which the label's row fixes (it was judged against "no runs")."""
    runs = []
    for label, cfg, knn in [("a", {"beta": 0.5}, 0.9), ("b", {"center_momentum": 0.9}, 0.6)]:
        for temp in (0.02, 0.04):
            for seed in range(3):
                runs.append(
                    {
                        "label": label,
                        "seed": seed,
                        "config": {"objective_cfg": {**cfg, "teacher_temp": temp}},
                        "final": {"knn": knn + 0.01 * seed},
                    }
                )
    temp = "objective_cfg.teacher_temp"
    by = [temp, "label", "objective_cfg.beta", "objective_cfg.center_momentum"]
    varied, zipped = [temp, "label", "objective_cfg"], ("label", "objective_cfg")
    out = _fake_sweep(tmp_path, "six", runs, by=by, zip_keys=zipped, varied=varied)
    claims = tmp_path / "claims.toml"
    claims.write_text('[six]\n[[six.claims]]\ntext = "knn"\nmetric = "knn"\npairs = [["a", "b"]]\n')
    report = write_results_report([out], tmp_path / "R.md", claims=claims, gate=False)
    lines = [v.line for v in report["verdicts"]["six"]]
    assert [line.split("]")[0] for line in lines] == [
        "[objective_cfg.teacher_temp=0.02",
        "[objective_cfg.teacher_temp=0.04",
    ]
    assert all("(n=3) vs" in line and line.endswith(f"**{AGREES}**") for line in lines), lines


def test_paired_differences_against_the_baselines_gap(tmp_path):
    """knn(kl) - knn(dino) per temperature, paired by seed; x = the dino runs' gap."""
    runs = []
    for seed in range(3):
        for temp, gap, lift in [(0.02, 8.0, 0.03), (0.07, 0.5, 0.0), (0.2, 0.01, -0.01)]:
            base = 0.9 + 0.01 * seed  # seeds differ more than the objectives: pairing helps
            for obj, knn in [("dino", base), ("kl_inverse_prior", base + lift + 0.001 * seed)]:
                runs.append(
                    {
                        "label": obj,
                        "seed": seed,
                        "config": {"objective": obj, "objective_cfg": {"teacher_temp": temp}},
                        "final": {"knn": knn},
                        "history": [{"jensen_gap_mean": gap if obj == "dino" else 99.0}],
                    }
                )
    runs.append(  # a seed only one side finished is left out of the pairs
        {
            "label": "dino",
            "seed": 7,
            "config": {"objective": "dino", "objective_cfg": {"teacher_temp": 0.2}},
            "final": {"knn": 0.1},
            "history": [{"jensen_gap_mean": 0.01}],
        }
    )
    out = _fake_sweep(tmp_path, "six", runs, by=["objective", "objective_cfg.teacher_temp"])
    diff = Difference("jensen_gap_mean", "knn", "objective=kl_inverse_prior", "objective=dino")
    rows = paired_differences(load_experiment(out), diff)
    temps = [ctx["objective_cfg.teacher_temp"] for ctx, _, _ in rows]
    assert temps == [0.02, 0.07, 0.2]
    assert [x for _, x, _ in rows] == pytest.approx([8.0, 0.5, 0.01])  # dino's gap, not kl's
    assert rows[0][2] == pytest.approx([0.03, 0.031, 0.032])
    assert len(rows[2][2]) == 3  # seed 7 has no kl_inverse_prior run
    claims = tmp_path / "claims.toml"
    claims.write_text(
        '[six]\ndifferences = [{x = "jensen_gap_mean", metric = "knn", '
        'between = ["objective=kl_inverse_prior", "objective=dino"]}]\n'
    )
    md = tmp_path / "R.md"
    write_results_report([out], md, claims=claims, gate=False)
    text = md.read_text()
    assert "Spearman ρ = 1.00 over 3 settings" in text
    assert "the 95% CI excludes 0 in 2 of 3 settings" in text  # 0.07: lift 0.001 ± 0.0025
    bad = tmp_path / "bad.toml"
    bad.write_text('[six]\ndifferences = [{x = "gap", between = ["a"]}]\n')
    with pytest.raises(ValueError, match=r"differences\[0\] must be"):
        load_claims(bad)


def test_bad_claims_are_listed(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[x]\npapr = "?"\n[[x.claims]]\ntext = "t"\npairs = [["a"]]\n'
        'expect = {op = "~", value = 1}\n'
    )
    with pytest.raises(ValueError) as info:
        load_claims(path)
    text = str(info.value)
    for fragment in ("unknown key 'papr'", "exactly one of", "needs a metric", "pairs must be"):
        assert fragment in text, fragment


def test_claims_file_documents_every_experiment_with_a_paper_text():
    claims = load_claims(CLAIMS)
    assert all(c.paper for c in claims.values())
    data = tomllib.loads(CLAIMS.read_text())
    assert data["what-the-bits-say"]["claims"][0]["expect"] == {"op": ">=", "value": 0.8}


def test_a_results_folder_without_manifest_takes_its_spec_from_experiments(tmp_path):
    runs = [
        {
            "label": label,
            "seed": s,
            "config": {"reset_period": rp},
            "final": {"map": m + 0.01 * s},
        }
        for s in range(3)
        for label, rp, m in (("reset-6", 6, 0.6), ("reset-none", None, 0.4))
    ]
    out = _fake_sweep(tmp_path, "reset-period", runs, by=["label"])
    (out / "manifest.json").unlink()
    report = write_results_report([out], tmp_path / "R.md", experiments_dir=EXPERIMENTS, gate=False)
    lines = [v.line for v in report["verdicts"]["reset-period"]]
    line = next(x for x in lines if x.startswith("reset-6 > reset-none"))
    assert line.startswith("reset-6 > reset-none: 0.610 ± ")
    assert line.endswith(f"**{AGREES}**")
    assert "spec `" in (tmp_path / "R.md").read_text()


def test_report_states_the_wall_clock_time_from_submission_to_last_result(tmp_path):
    runs = [
        {"label": "a", "seed": s, "config": {}, "final": {"map": 0.5}, "history": []}
        for s in range(2)
    ]
    out = _fake_sweep(tmp_path, "timed", runs, by=["label"])
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["submissions"] = [
        {"time": "2026-11-22T01:00:00+0000", "jobs": {"0": "1", "1": "2"}},
        {"time": "2026-11-22T02:00:00+0100", "jobs": {}},  # a no-op resubmission, same instant
    ]
    (out / "manifest.json").write_text(json.dumps(manifest))
    start = datetime(2026, 11, 22, 1, 0, tzinfo=timezone.utc).timestamp()
    for i, end in enumerate((start + 100, start + 430)):  # the newest result counts
        os.utime(out / manifest["runs"][i]["dir"] / "result.json", (end, end))
    exp = load_experiment(out)
    assert exp.wall_s == pytest.approx(430)
    assert exp.submissions == 1
    md = tmp_path / "R.md"
    write_results_report([out], md, gate=False)
    assert "7.2 min wall clock (submission to last result)" in md.read_text()
    # grown later (a second submission that started runs): each submission is timed up to
    # its own last result, the time between the two is not charged
    manifest["submissions"][1] = {"time": "2026-11-22T03:00:00+0000", "jobs": {"1": "3"}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    late = start + 2 * 3600 + 200
    os.utime(out / manifest["runs"][1]["dir"] / "result.json", (late, late))
    exp = load_experiment(out)
    assert exp.wall_s == pytest.approx(100 + 200) and exp.submissions == 2
    write_results_report([out], md, gate=False)
    assert "5.0 min wall clock (submission to last result, summed over 2 submissions)" in (
        md.read_text()
    )
    # without a submission record the line says only the summed training time
    del manifest["submissions"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert load_experiment(out).wall_s is None
    write_results_report([out], md, gate=False)
    assert "wall clock" not in md.read_text() and "of training summed over runs" in md.read_text()
