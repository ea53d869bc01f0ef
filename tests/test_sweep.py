"""Sweep specs, plans, and the debug and local executors end to end (no SLURM needed).

The SLURM executor is tested against a real cluster in ``test_sweep_slurm.py``.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sslobjectives.cli import main
from sslobjectives.sweep import (
    SpecError,
    load_spec,
    plan,
    read_attempts,
    read_manifest,
    status,
    submit,
)
from sslobjectives.train import RunConfig, train

TINY = textwrap.dedent(
    """
    dataset = "digits"
    batch_size = 256
    n_local = 0
    head_dim = 32
    head_hidden = 64
    bottleneck_dim = 16
    warmup_epochs = 0
    knn_k = 5
    """
)


def write_spec(path: Path, body: str, base: str = TINY) -> Path:
    text = body.replace("[base]\n", "[base]\n" + base, 1)
    path.write_text(textwrap.dedent(text))
    return path


# ------------------------------------------------------------------------------ spec


def test_every_problem_of_a_spec_is_listed_at_once(tmp_path):
    spec = write_spec(
        tmp_path / "bad.toml",
        """
        [sweep]
        name = "bad"
        seeds = [0, 1]
        [base]
        objectiv = "bits"
        epochs = "ten"
        [grid]
        reset_period = []
        "objective_cfg.bta" = [0.1, 0.2]
        lr = 0.1
        [zip]
        label = ["a", "b"]
        head_dim = [32]
        [executor]
        kind = "slurmm"
        slurm_acount = "x"
        slurm_setup = ["rm -rf /"]
        slurm_comment = "two\\nlines"
        cpus_per_task = 0
        [exector]
        """,
    )
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    problems = info.value.problems
    text = str(info.value)
    expected = [
        "unknown section [exector] (did you mean 'executor'?)",
        "[base]: unknown key 'objectiv' (did you mean 'objective'?)",
        "[grid] reset_period is empty",
        "[grid] lr must be a list of values",
        "[zip] axes must have equal lengths, got label: 2, head_dim: 1",
        "unknown key 'slurm_acount' (did you mean 'slurm_account'?)",
        "executor.slurm_setup: not allowed",
        "executor.slurm_comment: control characters",
        "executor.cpus_per_task must be >= 1",
        "unknown executor 'slurmm' (did you mean 'slurm'?)",
        "epochs must be int, got 'ten'",
    ]
    for fragment in expected:
        assert fragment in text, f"{fragment!r} missing from:\n{text}"
    assert len(problems) == len(expected), text


def test_objective_parameters_are_checked_per_run_and_reported_once(tmp_path):
    spec = write_spec(
        tmp_path / "obj.toml",
        """
        [sweep]
        name = "obj"
        [base]
        epochs = 1
        [grid]
        "objective_cfg.beta" = [0.05, 0.1]
        [zip]
        objective = ["bits", "dino"]
        label = ["bits", "dino"]
        """,
    )
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    (problem,) = info.value.problems  # dino has no beta; bits runs are fine
    assert "objective 'dino': unknown key 'beta'" in problem
    assert "2 runs" in problem or "run " in problem


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('[sweep]\nname = "x"\n[base]\n[executor]\nkind = "debug"\ntasks_per_node = 2\n', "debug"),
        ('[sweep]\nname = "x"\n[base]\n[zip]\nlabel = ["a/b"]\n', "must not contain '/'"),
        ('[sweep]\nname = "x"\n[base]\nseed = 1\n', "seed is set by [sweep] seeds"),
        ('[sweep]\nname = "x"\n[base]\n[grid]\nlabel = ["a", "b"]\n', "an axis changes nothing"),
        ('[sweep]\nname = "x"\n[base]\n[grid]\nhead_dim = [32, 32]\n', "duplicate values"),
        (
            '[sweep]\nname = "x"\n[base]\n[zip]\nobjective = ["bits", "bits"]\n'
            "head_dim = [32, 32]\n",
            "repeated rows",
        ),
        ("[sweep]\nseeds = [0]\n[base]\n", "name is required"),
        ('[sweep]\nname = "x"\nseeds = "0"\n[base]\n', "seeds must be a non-empty list"),
        ("[sweep\n", "not valid TOML"),
        (
            '[sweep]\nname = "x"\n[base]\n[executor]\nlog = ["tensorbord"]\n',
            "executor.log: unknown log backend 'tensorbord' (did you mean 'tensorboard'?)",
        ),
        ('[sweep]\nname = "x"\n[base]\n[executor]\nlog = 1\n', "a backend name or a list"),
    ],
)
def test_single_problems(tmp_path, body, fragment):
    with pytest.raises(SpecError, match="problem") as info:
        load_spec(write_spec(tmp_path / "s.toml", body))
    assert fragment in str(info.value)


def test_a_table_axis_and_a_dotted_axis_into_the_same_table_combine(tmp_path):
    """Experiment 6's shape: a whole objective_cfg per zip row, crossed with a dotted grid axis
    (before, the row's table replaced the grid's value and the temperatures collapsed)."""
    spec = load_spec(
        write_spec(
            tmp_path / "t.toml",
            """
            [sweep]
            name = "t"
            seeds = [0]
            [base]
            [grid]
            "objective_cfg.teacher_temp" = [0.02, 0.2]
            [zip]
            label = ["batch-centre", "running-prior"]
            objective = ["dino", "kl_inverse_prior"]
            objective_cfg = [{center_momentum = 0.0}, {prior_momentum = 0.9}]
            """,
        )
    )
    got = [(r.config.label, r.config.objective_cfg) for r in spec.expand()]
    assert got == [
        ("batch-centre", {"center_momentum": 0.0, "teacher_temp": 0.02}),
        ("running-prior", {"prior_momentum": 0.9, "teacher_temp": 0.02}),
        ("batch-centre", {"center_momentum": 0.0, "teacher_temp": 0.2}),
        ("running-prior", {"prior_momentum": 0.9, "teacher_temp": 0.2}),
    ]
    assert spec.group_by == [
        "objective_cfg.teacher_temp",
        "label",
        "objective",
        "objective_cfg.center_momentum",
        "objective_cfg.prior_momentum",
    ]


def test_executor_log_names_backends_and_leaves_specs_without_it_unchanged(tmp_path):
    body = '[sweep]\nname = "x"\n[base]\n[executor]\n'
    plain = load_spec(write_spec(tmp_path / "a.toml", body))
    one = load_spec(write_spec(tmp_path / "b.toml", body + 'log = "tensorboard"\n'))
    both = load_spec(write_spec(tmp_path / "c.toml", body + 'log = ["tensorboard", "wandb"]\n'))
    assert plain.executor.log == () and one.executor.log == ("tensorboard",)
    assert both.executor.log == ("tensorboard", "wandb")
    assert plain.spec_hash == load_spec(write_spec(tmp_path / "d.toml", body)).spec_hash


def test_plan_is_grid_product_times_zip_rows_times_seeds(tmp_path):
    spec = load_spec(
        write_spec(
            tmp_path / "ok.toml",
            """
            [sweep]
            name = "reset period"
            seeds = [0, 1]
            budget = "a few seconds"
            [base]
            epochs = 2
            [base.objective_cfg]
            eps = 0.5
            [grid]
            reset_period = [1, 2, "none"]
            objective_cfg.beta = [0.05, 0.1]
            [zip]
            label = ["bits 'a'", "bits \\"b\\""]
            head_dim = [32, 64]
            [executor]
            kind = "local"
            slurm_signal_delay_s = 30
            slurm_account = "lab"
            """,
            base=TINY + 'objective = "bits"\n',
        )
    )
    runs = spec.expand()
    assert len(runs) == 3 * 2 * 2 * 2
    assert spec.varied == ["reset_period", "objective_cfg.beta", "label", "head_dim"]
    assert dict(spec.axis_sizes()) == {
        "reset_period": 3,
        "objective_cfg.beta": 2,
        "zip(label, head_dim)": 2,
        "seeds": 2,
    }
    assert len({r.run_id for r in runs}) == len(runs)
    assert {r.config.reset_period for r in runs} == {1, 2, None}  # "none" -> None
    assert {(r.config.label, r.config.head_dim) for r in runs} == {
        ("bits 'a'", 32),
        ('bits "b"', 64),
    }  # zipped, not crossed
    assert all(r.config.objective_cfg["eps"] == 0.5 for r in runs)  # base kept under the axis
    assert spec.executor.signal_delay_s == 30
    assert spec.executor.slurm == {"account": "lab"}
    first = runs[0]
    assert first.varied == {
        "reset_period": 1,
        "objective_cfg.beta": 0.05,
        "label": "bits 'a'",
        "head_dim": 32,
    }
    assert first.config.seed == 0 and runs[1].config.seed == 1  # seeds innermost
    states = plan(spec, tmp_path / "out")
    assert [s.state for s in states] == ["unsubmitted"] * len(runs)


def test_cli_plan_prints_the_runs(tmp_path, capsys):
    spec = write_spec(
        tmp_path / "p.toml",
        """
        [sweep]
        name = "p"
        seeds = [0, 1, 2]
        budget = "under a minute"
        [base]
        epochs = 1
        [grid]
        objective = ["dino", "bits"]
        """,
    )
    assert main(["sweep", "plan", str(spec), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "6 runs = objective 2 x seeds 3" in out
    assert "budget: under a minute" in out
    assert out.count("unsubmitted ") == 6 and "6 unsubmitted" in out
    assert main(["sweep", "plan", str(tmp_path / "missing.toml")]) == 2


# ------------------------------------------------------------------------------ debug


def _two_run_spec(tmp_path: Path, kind: str = "debug") -> Path:
    return write_spec(
        tmp_path / "two runs.toml",
        f"""
        [sweep]
        name = "two \\"tiny\\" runs"
        seeds = [0]
        [base]
        epochs = 1
        [zip]
        label = ["my dino", "bits 'x'"]
        objective = ["dino", "bits"]
        [executor]
        kind = "{kind}"
        """,
    )


def test_debug_executor_end_to_end_and_resubmit_redoes_only_the_missing_run(tmp_path, capsys):
    spec_path = _two_run_spec(tmp_path)
    out = tmp_path / "out dir's"
    assert main(["sweep", "submit", str(spec_path), "--out", str(out)]) == 0
    assert [s.state for s in status(out)] == ["done", "done"]
    manifest = read_manifest(out)
    assert manifest["varied"] == ["label", "objective"]
    assert len(manifest["runs"]) == 2 and len(manifest["submissions"]) == 1

    capsys.readouterr()
    assert main(["sweep", "collect", str(out)]) == 0
    table = capsys.readouterr().out
    assert "my dino" in table and "bits 'x'" in table
    assert "baseline: raw-centred" in table and "reference: supervised" in table
    for name in ("runs.csv", "summary.csv", "table.txt", "curves.png"):
        assert (out / name).exists(), name
    assert not (out / "submitit" / "%j").exists()  # no stray folder of submitit's pattern

    # a result of other code is left out of the table and CSVs unless --reuse-stale
    bits_result = status(out)[1].run_dir / "result.json"
    original = bits_result.read_bytes()
    data = json.loads(original)
    data["code"] = {"version": "9.9.9", "commit": None, "dirty": None}
    bits_result.write_text(json.dumps(data))
    note = "1 stale result (written by other code) excluded: bits 'x' s0 ("
    assert main(["sweep", "collect", str(out)]) == 0
    got = capsys.readouterr()
    [line] = got.err.splitlines()
    assert line.startswith(f"sslobj sweep collect: {note}")
    assert line.endswith("; --reuse-stale includes them")
    assert f"note: {note}" in got.out and f"note: {note}" in (out / "table.txt").read_text()
    assert "1 finished runs" in got.out
    assert "bits" not in (out / "runs.csv").read_text()
    assert "bits 'x'" not in (out / "summary.csv").read_text()
    assert main(["sweep", "collect", str(out), "--reuse-stale"]) == 0
    got = capsys.readouterr()
    assert "included (--reuse-stale): bits 'x' s0" in got.err and "2 finished runs" in got.out
    assert "bits 'x'" in (out / "runs.csv").read_text()
    bits_result.write_bytes(original)

    # submitting again submits nothing
    report = submit(load_spec(spec_path), out)
    assert report.submitted == [] and set(report.skipped.values()) == {"done"}

    # a run that lost its result (killed before the end) is the only one redone
    dino, bits = status(out)
    kept = (bits.run_dir / "result.json").read_bytes()
    (dino.run_dir / "result.json").unlink()
    assert [s.state for s in status(out)] == ["failed", "done"]
    report = submit(load_spec(spec_path), out)
    assert report.submitted == [dino.run_id]
    assert (bits.run_dir / "result.json").read_bytes() == kept  # never rewritten
    assert [s.state for s in status(out)] == ["done", "done"]
    assert len(read_manifest(out)["submissions"]) == 2

    capsys.readouterr()
    assert main(["sweep", "status", str(out)]) == 0
    assert "2 done" in capsys.readouterr().out


# ------------------------------------------------------------------------------ local


def test_a_spec_with_executor_log_writes_each_runs_events_in_its_folder(tmp_path, capsys):
    """The debug executor (SweepRun in this process): the same loggers as compare's pool."""
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    spec = write_spec(
        tmp_path / "log.toml",
        """
        [sweep]
        name = "logged"
        seeds = [0]
        [base]
        epochs = 1
        objective = "dino"
        [executor]
        kind = "debug"
        log = ["tensorboard"]
        """,
    )
    out = tmp_path / "out"
    assert main(["sweep", "submit", str(spec), "--out", str(out)]) == 0
    (run,) = status(out)
    assert list((run.run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_submit_refuses_a_log_backend_that_is_not_installed(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if the [wandb] extra were missing
    spec = write_spec(
        tmp_path / "log.toml",
        '[sweep]\nname = "w"\nseeds = [0]\n[base]\nepochs = 1\n[executor]\nkind = "debug"\n'
        'log = "wandb"\n',
    )
    capsys.readouterr()
    assert main(["sweep", "submit", str(spec), "--out", str(tmp_path / "out")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "sslobj sweep: --log wandb needs the wandb package: pip install 'sslobjectives[wandb]'"
    )
    assert not (tmp_path / "out").exists()


def _epoch_seconds(config: dict, epochs: int = 3) -> tuple[float, float]:
    """(seconds per epoch, seconds of set-up) of ``config`` trained here, one thread, now
    (under today's load): what a time limit of the local pool must be sized against."""
    import tempfile

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            r = train(RunConfig.from_dict({**config, "epochs": epochs}), tmp, progress=False)
            total = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    return r["runtime_s"] / epochs, max(0.0, total - r["runtime_s"])


def test_local_executor_times_out_requeues_and_resumes_to_the_same_result(tmp_path):
    """A real timeout on the local pool: USR2 at timeout - signal_delay_s, the epoch in
    progress ends with its checkpoint, the run is requeued and the next attempt resumes from
    it. The time limit is sized from the epoch time measured just before (a loaded machine
    trains slower, a fixed limit made the run need more requeues than allowed): each attempt
    gets about a third of the run, so the 8 requeues allowed leave a 3x margin."""
    epochs = 60
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    base = tomllib.loads(TINY)
    per_epoch, setup_s = _epoch_seconds({**base, "objective": "bits"})
    window_s = max(3.0, setup_s + epochs * per_epoch / 3)
    delay_s = max(12, math.ceil(10 * per_epoch))  # the epoch in progress ends before the kill
    spec_path = write_spec(
        tmp_path / "requeue.toml",
        f"""
        [sweep]
        name = "requeue"
        [base]
        objective = "bits"
        epochs = {epochs}
        [executor]
        kind = "local"
        timeout_min = {(window_s + delay_s) / 60:.4f}
        signal_delay_s = {delay_s}
        max_num_timeout = 8
        cpus_per_task = 1
        """,
    )
    out = tmp_path / "out"
    report = submit(load_spec(spec_path), out)
    assert report.errors == {}
    (st,) = status(out)
    assert st.state == "done", st
    attempts = read_attempts(st.run_dir)
    starts = [a for a in attempts if a["event"] == "start"]
    signals = [a for a in attempts if a["event"] == "checkpoint"]
    assert len(starts) >= 2 and signals, attempts  # it really timed out and came back
    assert starts[0]["resume_epoch"] == 0
    assert 0 < starts[1]["resume_epoch"] < epochs  # resumed from a checkpoint, not from 0
    assert len({a["job_id"] for a in starts}) == 1  # requeued within the same job
    log = next((out / "submitit").glob("*/*_0_log.err")).read_text()
    assert "Caught signal SIGUSR2" in log

    result = json.loads((st.run_dir / "result.json").read_text())
    assert [h["epoch"] for h in result["history"]] == list(range(epochs))  # continuous

    # equals an uninterrupted run of the same config (same thread count)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = RunConfig.from_dict(result["config"])
        ref = train(config, tmp_path / "ref", progress=False)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(result["history"], ref["history"], strict=True):
        assert math.isclose(a["loss"], b["loss"], rel_tol=1e-5, abs_tol=1e-6), (a, b)
    assert result["final"]["knn"] == pytest.approx(ref["final"]["knn"], abs=1e-9)


def test_local_failure_shows_the_tail_of_stderr_and_is_resubmitted(tmp_path, capsys):
    spec_path = write_spec(
        tmp_path / "fail.toml",
        """
        [sweep]
        name = "fail"
        [base]
        epochs = 1
        [executor]
        kind = "local"
        timeout_min = 2
        """,
        base=TINY.replace('dataset = "digits"', f'dataset = "{tmp_path}/missing.npz"'),
    )
    out = tmp_path / "out"
    report = submit(load_spec(spec_path), out)
    assert len(report.errors) == 1
    (st,) = status(out)
    assert st.state == "failed"
    assert "missing.npz" in st.stderr_tail
    capsys.readouterr()
    assert main(["sweep", "status", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "failed" in shown and "tail of stderr" in shown
    report = submit(load_spec(spec_path), out)  # failed runs are submitted again
    assert report.submitted == [st.run_id]


def test_the_readme_sweep_spec_is_valid(tmp_path):
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Sweeps", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```toml\n(.+?)\n```", section, re.S).group(1)
    (tmp_path / "readme.toml").write_text(block)
    spec = load_spec(tmp_path / "readme.toml")
    assert len(spec.expand()) == 3 * 2 * 3
    assert spec.executor.kind == "slurm"
    assert "sslobj sweep submit" in section and "sslobj sweep collect" in section


def test_submit_checks_every_runs_data_first_and_refuses_in_one_line(tmp_path, capsys):
    import numpy as np

    bad = tmp_path / "mine.npz"
    np.savez(bad, pixels=np.zeros((10, 4, 4)))
    spec_path = write_spec(
        tmp_path / "data.toml",
        f"""
        [sweep]
        name = "user data"
        seeds = [0]
        [base]
        epochs = 1
        [grid]
        dataset = ["digits", "{bad}"]
        [executor]
        kind = "debug"
        """,
    )
    out = tmp_path / "out"
    assert main(["sweep", "submit", str(spec_path), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"sslobj sweep: {bad}: no image key")
    assert not out.exists()  # nothing submitted, not even the manifest
    eval_spec = write_spec(
        tmp_path / "eval.toml",
        """
        [sweep]
        name = "eval set"
        seeds = [0]
        [base]
        epochs = 1
        eval_dataset = "shapes"
        [executor]
        kind = "debug"
        """,
    )
    assert main(["sweep", "submit", str(eval_spec), "--out", str(out)]) == 2
    assert "evaluation samples have shape" in capsys.readouterr().err
