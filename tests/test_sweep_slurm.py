"""Sweeps on a real SLURM cluster (``scripts/slurm-local.sh``): array jobs, timeout-requeue
with resume, scancel then resubmission, and 2-task DDP equal to 1 task.

Skipped only when ``sbatch`` is absent *and* ``CI`` is unset; under CI a missing cluster is a
failure. Runs are tiny (digits, a few epochs); the requeue test needs a couple of 1-minute
time-limit cycles (see docs/SLURM.md for the timings).
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from conftest import needs_slurm

from sslobjectives.cli import main
from sslobjectives.sweep import (
    collect,
    load_spec,
    read_attempts,
    read_manifest,
    status,
    submit,
    wait_for,
)

pytestmark = needs_slurm

TINY = textwrap.dedent(
    """
    dataset = "digits"
    batch_size = 256
    head_dim = 32
    head_hidden = 64
    bottleneck_dim = 16
    warmup_epochs = 1
    knn_k = 5
    """
)


def write_spec(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body).replace("[base]\n", "[base]\n" + TINY, 1))
    return path


def wait_sweep(out: Path, timeout_s: float):
    try:
        return wait_for(out, timeout_s=timeout_s, poll_s=2)
    except TimeoutError:
        states = status(out)
        for st in states:  # leave nothing running behind a failed test
            if st.job_id and st.state in ("pending", "running", "requeued"):
                subprocess.run(["scancel", st.job_id], check=False, timeout=30)
        pytest.fail("sweep did not finish:\n" + "\n".join(f"{s}" for s in states))


# --------------------------------------------------------------------------------------- tests


@pytest.mark.timeout(240)
def test_grid_2x2_is_one_array_job_collected_into_a_table(slurm_cluster, tmp_path, capsys):
    """Names and paths with spaces and quotes go through sbatch as given."""
    spec_path = write_spec(
        tmp_path / "grid spec.toml",
        """
        [sweep]
        name = "grid \\"2x2\\" it's"
        seeds = [0]
        [base]
        objective = "bits"
        label = "bits 'b'"
        epochs = 2
        n_local = 0
        [grid]
        reset_period = [1, "none"]
        "objective_cfg.beta" = [0.05, 0.1]
        [executor]
        kind = "slurm"
        partition = "debug"
        timeout_min = 5
        array_parallelism = 2
        slurm_comment = "a 'quoted' \\"comment\\""
        """,
    )
    out = tmp_path / 'it\'s a "sweep" dir'
    report = submit(load_spec(spec_path), out)
    assert len(report.submitted) == 4
    roots = {job.split("_")[0] for job in report.jobs.values()}
    assert len(roots) == 1 and all("_" in j for j in report.jobs.values()), report.jobs
    states = wait_sweep(out, 200)
    assert [s.state for s in states] == ["done"] * 4, states

    capsys.readouterr()
    assert main(["sweep", "status", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "4 done" in shown and "reset_period" in shown

    report = collect(out)
    lines = report["table"].splitlines()
    assert lines[0].split()[:3] == ["reset_period", "objective_cfg.beta", "n"]
    groups = [ln for ln in lines[1:] if ln.split()[1:2] in (["0.05"], ["0.1"])]
    assert len(groups) == 4, lines  # one row per grid point (the baseline rows come apart)
    assert any(ln.startswith("! fewer than 3 seeds") for ln in lines), lines
    assert len((out / "runs.csv").read_text().strip().splitlines()) == 1 + 4
    assert (out / "curves.png").exists()
    # submitting again submits nothing
    again = submit(load_spec(spec_path), out)
    assert again.submitted == [] and set(again.skipped.values()) == {"done"}


def _epoch_seconds() -> float:
    """Time of one tiny training epoch on this machine (1 thread), to size the runs that
    must still be training when a signal or a cancel arrives: the median of the epochs
    after the first (whose warm-up would overstate it, and so size the run too short)."""
    import tempfile

    import torch

    from sslobjectives.train import RunConfig, train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = RunConfig.from_dict(
            {
                "dataset": "digits", "objective": "bits", "epochs": 6, "batch_size": 256,
                "n_local": 0, "head_dim": 32, "head_hidden": 64, "bottleneck_dim": 16,
                "warmup_epochs": 1, "knn_k": 5,
            }
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            result = train(cfg, tmp, progress=False)
    finally:
        torch.set_num_threads(threads)
    times = [h["time_s"] for h in result["history"]]
    return statistics.median(b - a for a, b in zip(times, times[1:], strict=False))


@pytest.mark.timeout(660)
def test_timeout_requeues_and_resumes_from_the_checkpoint(slurm_cluster, tmp_path):
    """1-minute limit, USR2 10 s before it: slurmctld signals 20-50 s into each attempt
    (docs/SLURM.md). The run trains ~75 s at the measured speed (the median epoch), so it
    cannot finish in its first attempt even when the machine runs 1.5x as fast as it did
    when measured."""
    epochs = max(60, math.ceil(75 / _epoch_seconds()))
    spec_path = write_spec(
        tmp_path / "timeout.toml",
        f"""
        [sweep]
        name = "timeout"
        [base]
        objective = "bits"
        epochs = {epochs}
        n_local = 0
        [executor]
        kind = "slurm"
        timeout_min = 1
        signal_delay_s = 10
        max_num_timeout = 12
        """,
    )
    out = tmp_path / "out"
    submit(load_spec(spec_path), out)
    (st,) = wait_sweep(out, 600)
    assert st.state == "done", st

    attempts = read_attempts(st.run_dir)
    starts = [a for a in attempts if a["event"] == "start"]
    signals = [a for a in attempts if a["event"] == "checkpoint"]
    assert len(starts) >= 2 and len(signals) >= 1, attempts
    assert len({a["job_id"] for a in starts}) == 1  # requeued, not resubmitted
    assert [a["restarts"] for a in starts] == list(range(len(starts)))  # SLURM_RESTART_COUNT
    assert starts[0]["resume_epoch"] == 0
    resumed = [a["resume_epoch"] for a in starts[1:]]
    # (an attempt signalled during the final evaluation resumes at epoch == epochs)
    assert all(0 < e <= epochs for e in resumed) and resumed == sorted(resumed), starts

    result = json.loads((st.run_dir / "result.json").read_text())
    assert result["status"] == "done"
    assert [h["epoch"] for h in result["history"]] == list(range(epochs))  # continuous
    log = next((out / "submitit").glob("*/*_0_log.err")).read_text()
    assert "Caught signal SIGUSR2" in log and "timed-out" in log


@pytest.mark.timeout(300)
def test_scancelled_run_fails_and_a_resubmission_completes_only_it(slurm_cluster, tmp_path):
    # long enough (~30 s at the measured speed) that the cancel lands while it trains: 40
    # tiny epochs took 4 s once the k-NN monitor got faster, and ended before scancel
    epochs = max(40, math.ceil(30 / _epoch_seconds()))
    spec_path = write_spec(
        tmp_path / "cancel.toml",
        f"""
        [sweep]
        name = "cancel"
        seeds = [0, 1]
        [base]
        objective = "bits"
        epochs = {epochs}
        n_local = 0
        [executor]
        kind = "slurm"
        timeout_min = 10
        array_parallelism = 2
        """,
    )
    out = tmp_path / "out"
    report = submit(load_spec(spec_path), out)
    victim = next(s for s in status(out) if s.seed == 0)
    deadline = time.monotonic() + 180
    while True:  # cancel once it has checkpointed at least one epoch
        ckpt = victim.run_dir / "checkpoint.pt"
        if ckpt.exists() and read_attempts(victim.run_dir):
            break
        assert time.monotonic() < deadline, status(out)
        time.sleep(0.5)
    job_id = report.jobs[victim.run_id]
    subprocess.run(["scancel", job_id], check=True, timeout=30)

    deadline = time.monotonic() + 60
    while (st := {s.run_id: s for s in status(out)}[victim.run_id]).state != "failed":
        assert time.monotonic() < deadline, st
        time.sleep(1)
    assert "cancelled" in st.detail
    assert "CANCELLED" in st.stderr_tail

    states = wait_sweep(out, 180)
    other = next(s for s in states if s.seed == 1)
    assert other.state == "done"
    kept = (other.run_dir / "result.json").read_bytes()

    again = submit(load_spec(spec_path), out)
    assert again.submitted == [victim.run_id]  # only the cancelled run
    states = wait_sweep(out, 180)
    assert [s.state for s in states] == ["done", "done"], states
    assert (other.run_dir / "result.json").read_bytes() == kept  # never rewritten
    starts = [a for a in read_attempts(victim.run_dir) if a["event"] == "start"]
    assert len(starts) == 2 and starts[1]["resume_epoch"] > 0  # resumed, not restarted
    assert starts[1]["job_id"] != starts[0]["job_id"]
    result = json.loads((victim.run_dir / "result.json").read_text())
    assert [h["epoch"] for h in result["history"]] == list(range(epochs))
    assert len(read_manifest(out)["submissions"]) == 2


@pytest.mark.timeout(300)
def test_two_task_ddp_run_matches_one_task(slurm_cluster, tmp_path):
    """tasks_per_node = 2: gloo process group from submitit's JobEnvironment, DDP, half the
    global batch per rank; the loss curve and the per-epoch diagnostics (of the joined batch,
    gathered over ranks) equal the 1-task run's (same global batch, seed)."""
    outs = {}
    for tasks in (2, 1):
        spec_path = write_spec(
            tmp_path / f"ddp{tasks}.toml",
            f"""
            [sweep]
            name = "ddp {tasks}"
            [base]
            objective = "dino"
            epochs = 3
            n_local = 1
            [executor]
            kind = "slurm"
            timeout_min = 5
            tasks_per_node = {tasks}
            cpus_per_task = 1
            """,
        )
        outs[tasks] = tmp_path / f"out{tasks}"
        submit(load_spec(spec_path), outs[tasks])
    results = {}
    for tasks, out in outs.items():
        (st,) = wait_sweep(out, 240)
        assert st.state == "done", st
        results[tasks] = json.loads((st.run_dir / "result.json").read_text())
        if tasks == 2:  # both ranks ran and logged
            assert list((out / "submitit").glob("*/*_1_log.err"))
    assert results[2]["world_size"] == 2 and results[1]["world_size"] == 1
    assert results[2]["run_id"] == results[1]["run_id"]
    h2, h1 = results[2]["history"], results[1]["history"]
    assert len(h2) == len(h1) == 3
    for a, b in zip(h2, h1, strict=True):
        diagnostics = ("marginal_entropy", "sample_entropy", "centering_kl", "jensen_gap_mean")
        for key in ("loss", "cross_entropy", *diagnostics):
            assert math.isclose(a[key], b[key], rel_tol=1e-4, abs_tol=1e-5), (key, a, b)
    assert results[2]["final"]["knn"] == pytest.approx(results[1]["final"]["knn"], abs=0.02)
