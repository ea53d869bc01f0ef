"""`sslobj compare` and the results it aggregates."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from sslobjectives.cli import main
from sslobjectives.compare import (
    Method,
    apply_overrides,
    default_methods,
    plan_runs,
    reset_period_for,
    select_methods,
)
from sslobjectives.results import check_comparable, format_table, mean_ci, summarize

TINY_SET = [
    "--dataset", "digits",
    "--epochs", "1", "--set", "batch_size=256", "--set", "head_dim=32", "--set", "head_hidden=64",
    "--set", "bottleneck_dim=16", "--set", "knn_k=5", "--set", "warmup_epochs=0",
    "--n-local", "0",
]  # fmt: skip


def test_default_set_is_the_six_methods_of_the_comparison():
    methods = default_methods(30)
    assert [m.label for m in methods] == [
        "dino", "kl_inverse_prior", "sinkhorn", "simdino", "bits-fixed", "bits-reset"
    ]  # fmt: skip
    # the bits methods' head opens their channel (a documented difference from the paper)
    assert methods[-1].run == {"reset_period": 3, "head_kwargs": {"logit_norm": "batch"}}
    assert methods[-2].run == {"head_kwargs": {"logit_norm": "batch"}}
    configs = plan_runs(methods, [0, 1, 2], {"epochs": 30})
    assert len(configs) == 18
    shared = {k for k in configs[0].to_dict() if k not in ("objective", "objective_cfg")}
    for c in configs:  # every objective gets the same backbone, optimiser and budget
        for key in shared - {"label", "seed", "reset_period", "head_kwargs"}:
            assert getattr(c, key) == getattr(configs[0], key), key


def test_reset_period_scales_the_papers_ten_of_hundred():
    assert [reset_period_for(e) for e in (1, 10, 30, 100, 200)] == [1, 1, 3, 10, 20]


def test_overrides_reach_the_right_objective_and_name_the_nearest_key():
    base, methods = apply_overrides({}, default_methods(10), ["bits.beta=0.2", "lr=0.002"])
    assert base["lr"] == 0.002
    bits = [m for m in methods if m.objective == "bits"]
    assert all(m.objective_cfg == {"beta": 0.2} for m in bits)
    assert all(m.objective_cfg == {} for m in methods if m.objective != "bits")
    with pytest.raises(ValueError, match="did you mean 'epochs'"):
        apply_overrides({}, default_methods(10), ["epoch=3"])
    with pytest.raises(ValueError, match="did you mean 'bits'"):
        apply_overrides({}, default_methods(10), ["bitz.beta=0.2"])
    _, methods = apply_overrides({}, default_methods(10), ["bits.bta=0.2"])
    with pytest.raises(ValueError, match="did you mean 'beta'"):
        plan_runs(methods, [0], {})


def test_select_methods_by_label_or_objective():
    methods = default_methods(10)
    assert [m.label for m in select_methods(methods, ["bits"])] == ["bits-fixed", "bits-reset"]
    assert [m.label for m in select_methods(methods, ["dino"])] == ["dino"]
    with pytest.raises(ValueError, match="did you mean 'sinkhorn'"):
        select_methods(methods, ["sinkhorm"])


def _result(label, seed, knn, **config):
    cfg = {"objective": "dino", "epochs": 10, "lr": 0.001, "objective_cfg": {}, **config}
    return {
        "label": label, "seed": seed, "run_id": f"{label}{seed}", "status": "done",
        "config": cfg, "split": {"train_hash": "abc"}, "final": {"knn": knn}, "history": [],
    }  # fmt: skip


def test_aggregation_refuses_runs_whose_shared_settings_differ():
    ok = [_result("a", 0, 0.5), _result("b", 0, 0.6, objective="bits")]
    check_comparable(ok)
    bad = [_result("a", 0, 0.5), _result("b", 0, 0.6, lr=0.01)]
    with pytest.raises(ValueError, match="setting 'lr' differs"):
        check_comparable(bad)
    check_comparable(bad, varied=["lr"])  # a sweep that varies lr on purpose
    split = [_result("a", 0, 0.5), {**_result("a", 1, 0.5), "split": {"train_hash": "zzz"}}]
    with pytest.raises(ValueError, match="split differs"):
        check_comparable(split)
    with pytest.raises(ValueError, match="no finished runs"):
        check_comparable([])


def test_summary_mean_and_ci_and_best_mark():
    rows = summarize([_result("a", s, v) for s, v in enumerate([0.5, 0.6, 0.7])] +
                     [_result("b", 0, 0.9)])  # fmt: skip
    a = next(r for r in rows if r["label"] == "a")
    assert a["n"] == 3 and a["knn"] == pytest.approx(0.6)
    # t(0.975, 2) = 4.302653; std = 0.1; half-width = 4.302653 * 0.1 / sqrt(3)
    assert a["knn_ci"] == pytest.approx(4.302653 * 0.1 / 3**0.5, rel=1e-5)
    table = format_table(rows)
    assert "0.900 ± 0.000*" in table and "0.600 ± 0.248 " in table
    assert mean_ci([2.0]) == (2.0, 0.0)


def test_compare_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--objectives", "dino", "bits-reset", "--seeds", "2", "--out", str(out)]
    code = main([*args, *TINY_SET, "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "4 runs (2 objectives x 2 seeds)" in printed
    assert "bits-reset" in printed and "± " in printed
    assert printed.count("augmentation (digits): ") == 1  # the views, printed once
    with open(out / "summary.csv") as fh:
        all_rows = list(csv.DictReader(fh))
    rows = [r for r in all_rows if not r["baseline"]]
    assert {r["label"] for r in rows} == {"dino", "bits-reset"}
    assert all(r["n"] == "2" for r in rows)
    assert {r["baseline"] for r in all_rows} - {""} == {
        "baseline: raw",
        "baseline: raw-centred",
        "baseline: untrained",
        "baseline: untrained-centred",
        "reference: supervised",
    }
    assert "reference: supervised" in printed and "learned" in printed
    with open(out / "runs.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    assert (out / "curves.png").stat().st_size > 0
    assert (out / "bit_usage.png").stat().st_size > 0
    run_files = sorted(out.glob("runs/*/result.json"))
    assert len(run_files) == 4
    result = json.loads(run_files[0].read_text())
    assert result["status"] == "done" and result["config"]["epochs"] == 1
    # a second invocation reuses every finished run
    stamps = [f.stat().st_mtime_ns for f in run_files]
    assert main([*args, *TINY_SET, "--no-progress"]) == 0
    assert [f.stat().st_mtime_ns for f in run_files] == stamps


def test_runs_in_a_process_pool_equal_runs_in_this_process(tmp_path, capsys):
    args = ["compare", "--objectives", "dino", "bits-fixed", "--seeds", "1", *TINY_SET]
    assert main([*args, "--out", str(tmp_path / "pool"), "--jobs", "2", "--no-progress"]) == 0
    assert "2 runs at a time, 1 torch thread(s) each" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "here"), "--jobs", "1", "--no-progress"]) == 0
    assert "runs at a time" not in capsys.readouterr().out
    finals = {}
    for where in ("pool", "here"):
        for f in (tmp_path / where).glob("runs/*/result.json"):
            r = json.loads(f.read_text())
            finals[where, r["label"]] = (r["final"], [h["loss"] for h in r["history"]])
    assert len(finals) == 4
    for label in ("dino", "bits-fixed"):
        assert finals["pool", label] == finals["here", label], label
    with pytest.raises(SystemExit):
        main(["compare", "--jobs", "0"])
    assert "must be a positive integer, got '0'" in capsys.readouterr().err


def test_compare_logs_every_run_to_tensorboard_in_its_run_folder(tmp_path, capsys):
    """--log tensorboard: each run, trained in a pool worker, writes its own event files,
    opened and closed around the run (closed: every epoch's value is on disk)."""
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "cmp"
    argv = ["compare", "--objectives", "dino", "bits-fixed", "--seeds", "1", *TINY_SET]
    argv += ["--epochs", "2", "--jobs", "2", "--no-progress", "--out", str(out)]
    assert main([*argv, "--log", "tensorboard"]) == 0
    runs = sorted(p.parent for p in out.glob("runs/*/result.json"))
    assert len(runs) == 2
    for run in runs:
        assert list((run / "tensorboard").glob("events.out.tfevents.*")), run
        history = json.loads((run / "result.json").read_text())["history"]
        acc = EventAccumulator(str(run / "tensorboard"))
        acc.Reload()
        knn = [(e.step, e.value) for e in acc.Scalars("epoch/knn")]
        assert knn == [(i + 1, pytest.approx(h["knn"])) for i, h in enumerate(history)]
        assert acc.Scalars("final/knn")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["submissions"][-1]["executor"]["log"] == ["tensorboard"]


def test_compare_refuses_a_missing_or_misspelt_log_backend_before_any_run(
    tmp_path, capsys, monkeypatch
):
    out = tmp_path / "cmp"
    argv = ["compare", "--objectives", "dino", "--seeds", "1", *TINY_SET, "--out", str(out)]
    for backend, fragment in [
        ("tensorbord", "unknown log backend 'tensorbord' (did you mean 'tensorboard'?)"),
        ("wandb", "pip install 'sslobjectives[wandb]'"),
    ]:
        monkeypatch.setitem(sys.modules, "wandb", None)  # as if the extra were not installed
        capsys.readouterr()
        assert main([*argv, "--log", backend]) == 2
        captured = capsys.readouterr()
        (line,) = captured.err.strip().splitlines()
        assert line.startswith("sslobj compare: ") and fragment in line
        assert "runs (" not in captured.out and not out.exists()  # nothing started


def test_compare_cli_rejects_unknown_keys(capsys):
    assert main(["compare", "--set", "bits.bta=1", "--no-progress"]) == 2
    assert "did you mean 'beta'" in capsys.readouterr().err


def test_method_is_data():
    m = Method("x", "bits", {"beta": 0.2}, {"reset_period": 2})
    assert plan_runs([m], [0], {})[0].objective_cfg == {"beta": 0.2}


# ------------------------------------------------------------------ user data (issue 14)


def _compare(tmp_path, *extra):
    out = tmp_path / "cmp"
    args = ["compare", "--objectives", "dino", "--seeds", "1", "--out", str(out), *TINY_SET]
    return main([*args, *extra, "--no-progress", "--jobs", "1"]), out


@pytest.mark.parametrize(
    ("arrays", "backbone", "expected"),
    [
        ({"pixels": np.zeros((10, 4, 4))}, "cnn", "name the images one of x, X, images"),
        ({"x": np.full((10, 4, 4), np.inf)}, "cnn", "key 'x' holds NaN or inf"),
        ({"x": np.zeros((10, 4, 4)), "labels": np.zeros(3)}, "cnn", "key 'labels' has shape"),
        ({"x": np.random.default_rng(0).random((10, 6))}, "cnn", "use the mlp backbone"),
    ],
)
def test_data_problems_are_one_line_exit_2_before_any_run(
    tmp_path, capsys, arrays, backbone, expected
):
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    code, out = _compare(tmp_path, "--dataset", str(path), "--backbone", backbone)
    captured = capsys.readouterr()
    assert code == 2
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("sslobj compare: ") and str(path) in line and expected in line
    assert "runs (" not in captured.out and not out.exists()  # nothing started


def test_a_data_error_from_the_command_line_has_no_traceback(tmp_path):
    path = tmp_path / "mine.npz"
    np.savez(path, X=np.zeros((5, 4)), x=np.zeros((5, 4)))
    proc = subprocess.run(
        [sys.executable, "-m", "sslobjectives", "compare", "--dataset", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"sslobj compare: {path}: keys ['x', 'X'] all look like the same array; keep one of them"
    ]


def test_unlabelled_float_data_trains_and_the_table_says_label_metrics_need_labels(
    tmp_path, capsys
):
    from sklearn.datasets import load_digits

    np.savez(tmp_path / "digits16.npz", images=load_digits().images)  # 0..16, no labels
    code, out = _compare(tmp_path, "--dataset", str(tmp_path / "digits16.npz"))
    printed = capsys.readouterr().out
    assert code == 0
    assert printed.count("values in 0..16 scaled min-max to [0, 1]") == 1
    assert "label metrics need labels" in printed and "effective_rank" in printed
    assert "label metrics need labels" in (out / "table.txt").read_text()
    (result,) = [json.loads(f.read_text()) for f in out.glob("runs/*/result.json")]
    assert result["dataset"]["scaling"] == {"method": "min-max", "min": 0.0, "max": 16.0}

    code, out = _compare(
        tmp_path / "eval", "--dataset", str(tmp_path / "digits16.npz"), "--eval-dataset", "digits"
    )
    printed = capsys.readouterr().out
    assert code == 0 and "label metrics need labels" not in printed and "knn" in printed
    (result,) = [json.loads(f.read_text()) for f in out.glob("runs/*/result.json")]
    assert result["config"]["eval_dataset"] == "digits" and result["final"]["knn"] > 0.2


def test_table_flags_fewer_than_three_seeds_and_clips_the_ci_to_the_metric_range():
    two = [_result("two", 0, 0.1), _result("two", 1, 0.9)]
    three = [_result("three", s, v) for s, v in enumerate([0.5, 0.6, 0.7])]
    rows = summarize(two + three)
    row = next(r for r in rows if r["label"] == "two")
    # t(0.975, 1) = 12.706; std = 0.566; half-width 5.08: far outside [0, 1]
    assert row["knn_ci"] == pytest.approx(12.7062 * 0.8 / 2**0.5 / 2**0.5, rel=1e-4)
    assert (row["knn_lo"], row["knn_hi"]) == (0.0, 1.0)
    table = format_table(rows)
    lines = table.splitlines()
    two_line = next(line for line in lines if line.startswith("two"))
    three_line = next(line for line in lines if line.startswith("three"))
    assert "0.500 [0.000, 1.000]" in two_line and "±" not in two_line
    assert " 2! " in two_line and "!" not in three_line
    assert "0.600 ± 0.248" in three_line  # inside [0, 1]: shown as it is
    assert "fewer than 3 seeds" in table and "clipped to the metric's range" in table
    quiet = format_table(summarize(three))
    assert "fewer than" not in quiet and "clipped" not in quiet


def test_a_name_standing_for_several_labels_says_what_it_runs():
    from sslobjectives.compare import expansions

    methods = default_methods(10)
    assert expansions(methods, ["bits", "dino"]) == [
        "--objectives bits: runs bits-fixed and bits-reset"
    ]
    assert expansions(methods, None) == []


def test_compare_is_the_sweep_of_experiment_one():
    """The spec compare submits is experiment 01's (same [zip] columns and executor kind),
    and its runs are the planned configs: same run ids, so the same run folders."""
    from pathlib import Path

    from sslobjectives.compare import comparison_spec
    from sslobjectives.sweep import load_spec

    root = Path(__file__).resolve().parents[1]
    exp = load_spec(root / "experiments" / "01_objective_comparison_digits.toml")
    methods = default_methods(30)
    spec = comparison_spec(methods, list(exp.seeds), {"dataset": "digits", "epochs": 30}, "x")
    assert {r.run_id for r in spec.expand()} == {r.run_id for r in exp.expand()}
    bits = [r.config for r in spec.expand() if r.config.objective == "bits"]
    assert bits and all(c.head_kwargs == {"logit_norm": "batch"} for c in bits)
    assert spec.executor.kind == exp.executor.kind == "local"
    base, methods = apply_overrides({"epochs": 3}, methods, ["bits.beta=0.2", "reset_period=2"])
    planned = plan_runs(methods, [0, 1], base)
    spec = comparison_spec(methods, [0, 1], base, "x", jobs=2, threads=1)
    assert sorted(c.run_id for c in planned) == sorted(r.run_id for r in spec.expand())
    assert spec.executor.array_parallelism == 2
    with pytest.raises(ValueError, match="no seeds"):
        comparison_spec(methods, [], base, "x")
