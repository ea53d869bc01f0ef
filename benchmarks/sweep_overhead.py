"""Overhead of the sweep machinery: ``python -m benchmarks.sweep_overhead``.

Submits N tiny runs of about ``--run-seconds`` each (digits, bits objective, 1 thread) as one
sweep, waits for them and collects them, and compares the wall time from ``submit`` to the
end of ``collect`` with the ideal ``sum(run times) / array_parallelism``::

    overhead = wall / (sum(run times) / parallelism) - 1          (target: < 20 %)
    machinery per run = (wall - sum(job function times) / parallelism) * parallelism / N
                                                  (target: < 25 % of a --run-seconds run)

"Run time" is measured three ways, from the most to the least generous to the machinery:

* **standalone** (the headline figure): the job function's time plus the cost of a plain
  Python process that imports what a run imports and exits (measured just before and after
  the sweep, ``parallelism`` at once): what the run costs started by hand, without any sweep
  machinery. The overhead is then sbatch, scheduling, job launch and teardown, submitit's
  pickles, polling and collect.
* **job function**: the call of the submitted function inside the job (from
  ``attempts.jsonl``), so interpreter start/exit and imports count as overhead.
* **training loop**: the trainer's ``runtime_s``.

Default executor: ``slurm`` (the local one-node cluster, ``scripts/slurm-local.sh up``; the
benchmark waits until no other job runs and flags jobs that shared the node meanwhile);
``--executor local`` measures the local pool (``sslobjectives.sweep.pool``: workers started
once, runs handed to them one after another) instead.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BASE = {
    "dataset": "digits",
    "objective": "bits",
    "batch_size": 256,
    "n_local": 0,
    "head_dim": 32,
    "head_hidden": 64,
    "bottleneck_dim": 16,
    "warmup_epochs": 1,
    "knn_k": 5,
}


def epoch_seconds(epochs: int = 5) -> tuple[float, float]:
    """(seconds per epoch, fixed seconds per run) of the tiny run, 1 thread, in-process."""
    import torch

    from sslobjectives.train import RunConfig, train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            train(RunConfig.from_dict({**BASE, "epochs": 1}), Path(tmp) / "warm", progress=False)
            t0 = time.perf_counter()
            r = train(
                RunConfig.from_dict({**BASE, "epochs": epochs}), Path(tmp) / "r", progress=False
            )
            total = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    per_epoch = r["runtime_s"] / epochs
    return per_epoch, max(total - r["runtime_s"], 0.0)


def process_seconds(parallelism: int, repeats: int = 3) -> float:
    """Mean wall time of a plain Python process that imports what a run imports and exits
    (``parallelism`` of them at once, ``repeats`` times): the per-process cost a run started
    by hand pays too, on top of the job function's time."""
    code = "import torch\nimport sslobjectives.train.trainer\n"
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
            for _ in range(parallelism)
        ]
        ends: dict[int, float] = {}
        while len(ends) < len(procs):
            for i, proc in enumerate(procs):
                if i not in ends and proc.poll() is not None:
                    ends[i] = time.perf_counter() - t0
            time.sleep(0.02)
        times += list(ends.values())
    return statistics.mean(times)


def calibrate(executor: str, parallelism: int) -> tuple[float, float]:
    """:func:`epoch_seconds` measured where the runs will run: ``parallelism`` jobs at once
    on the same executor (a loaded node trains slower than this process alone)."""
    if executor == "local":  # the local pool's workers: spawned processes
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(parallelism, mp_context=ctx) as pool:
            measured = list(pool.map(epoch_seconds, [5] * parallelism))
        return statistics.mean(m[0] for m in measured), statistics.mean(m[1] for m in measured)
    import submitit

    from sslobjectives.sweep import install_squeue_watcher

    with tempfile.TemporaryDirectory() as tmp:
        install_squeue_watcher()
        ex = submitit.SlurmExecutor(folder=Path(tmp) / "%j")
        ex.update_parameters(time=10, cpus_per_task=1, array_parallelism=parallelism)
        jobs = ex.map_array(epoch_seconds, [5] * parallelism)
        measured = [job.result() for job in jobs]
    return statistics.mean(m[0] for m in measured), statistics.mean(m[1] for m in measured)


def run(
    n_runs: int = 8,
    run_seconds: float = 30.0,
    parallelism: int = 2,
    executor: str = "slurm",
    out: Path | None = None,
    log=print,
) -> dict[str, Any]:
    from sslobjectives.sweep import collect, parse_spec, read_attempts, status, submit

    if executor == "slurm":
        _wait_idle(log)
    per_epoch, _ = calibrate(executor, parallelism)
    # the job function also imports, loads the data and evaluates (~5 s): aim the whole call
    epochs = max(5, round((run_seconds - 5) / per_epoch))
    log(
        f"calibration ({parallelism} {executor} jobs at once): {per_epoch:.3f} s/epoch -> "
        f"{epochs} epochs for ~{run_seconds:.0f} s runs"
    )
    if executor == "slurm":
        _wait_idle(log)
    process_before = process_seconds(parallelism)
    spec = parse_spec(
        {
            "sweep": {"name": "sweep-overhead", "seeds": list(range(n_runs))},
            "base": {**BASE, "epochs": epochs},
            "executor": {
                "kind": executor,
                "timeout_min": 30,
                "cpus_per_task": 1,
                "array_parallelism": parallelism,
            },
        },
        source="<benchmark>",
    )
    tmp = None
    if out is None:
        tmp = tempfile.mkdtemp(prefix="sweep-overhead-")
        out = Path(tmp)
    try:
        t0 = time.perf_counter()
        submit(spec, out)
        t_submitted = time.perf_counter()
        foreign: set[str] = set()
        while True:  # wait_for(), noting other jobs that share the node meanwhile
            if executor == "slurm":
                foreign |= _other_running_jobs(spec.name)
            if not any(s.state in ("pending", "running", "requeued") for s in status(out)):
                break
            time.sleep(1.0)
        t_finished = time.perf_counter()
        report = collect(out)
        t_collected = time.perf_counter()
        # the first collect also computes the baseline rows (raw input, untrained backbone,
        # and one supervised reference per seed), once per dataset and split, then cached in
        # out/baselines/: analysis the user asked for, not sweep machinery. A second collect
        # with the cache warm times the machinery's own share.
        collect(out)
        t_collected_again = time.perf_counter()
        process_after = process_seconds(parallelism)
        process_s = (process_before + process_after) / 2

        states = status(out)
        if any(s.state != "done" for s in states):
            raise RuntimeError(f"not every run finished: {[s.state for s in states]}")
        call_s, train_s, starts, ends = [], [], [], []
        for s in states:
            attempts = read_attempts(s.run_dir)
            call_s.append(sum(a.get("wall_s", 0.0) for a in attempts if a["event"] == "end"))
            starts.append(min(a["time"] for a in attempts if a["event"] == "start"))
            ends.append(max(a["time"] for a in attempts if a["event"] == "end"))
            train_s.append(json.loads((s.run_dir / "result.json").read_text())["runtime_s"])
        wall = t_collected - t0
        wall_nb = (t_finished - t0) + (t_collected_again - t_collected)
        standalone = [c + process_s for c in call_s]
        ideal_standalone = sum(standalone) / parallelism
        ideal = sum(call_s) / parallelism
        ideal_train = sum(train_s) / parallelism
        wall_clock_t0 = time.time() - (time.perf_counter() - t0)
        figures = {
            "executor": executor,
            "runs": n_runs,
            "parallelism": parallelism,
            "epochs": epochs,
            "process_start_import_exit_s": process_s,
            "run_standalone_s_mean": statistics.mean(standalone),
            "run_call_s_mean": statistics.mean(call_s),
            "run_train_s_mean": statistics.mean(train_s),
            "ideal_s": ideal_standalone,
            "ideal_job_function_s": ideal,
            "ideal_train_only_s": ideal_train,
            "wall_s": wall,
            "overhead": wall / ideal_standalone - 1,
            "overhead_vs_job_function": wall / ideal - 1,
            "overhead_vs_train_only": wall / ideal_train - 1,
            # the machinery's seconds per run (wall beyond the job functions' own time,
            # spread over the runs) and their share of the run length aimed at
            "machinery_s_per_run": (wall - ideal) * parallelism / n_runs,
            "machinery_per_run_vs_target_run": (wall - ideal) * parallelism / n_runs / run_seconds,
            "target_run_s": run_seconds,
            "submit_s": t_submitted - t0,
            "first_start_after_submit_s": min(starts) - wall_clock_t0,
            "last_end_to_status_done_s": (t_finished - t0) - (max(ends) - wall_clock_t0),
            "collect_s": t_collected - t_finished,
            "collect_cached_s": t_collected_again - t_collected,
            "baselines_s": (t_collected - t_finished) - (t_collected_again - t_collected),
            # the same figures with the one-off baseline training left out
            "wall_without_baselines_s": wall_nb,
            "overhead_without_baselines": wall_nb / ideal_standalone - 1,
            "machinery_s_per_run_without_baselines": (wall_nb - ideal) * parallelism / n_runs,
            "machinery_per_run_vs_target_run_without_baselines": (
                (wall_nb - ideal) * parallelism / n_runs / run_seconds
            ),
            "table_rows": len(report["rows"]),
            "other_jobs_running_meanwhile": sorted(foreign),
        }
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return figures


def _other_running_jobs(name: str) -> set[str]:
    """Ids of RUNNING SLURM jobs that are not the benchmark's (they take its CPUs)."""
    try:
        proc = subprocess.run(
            ["squeue", "-h", "-t", "RUNNING", "-o", "%i|%j"],
            capture_output=True,
            text=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return set()
    rows = [line.split("|", 1) for line in proc.stdout.splitlines() if "|" in line]
    return {f"{i} ({n})" for i, n in rows if n != name}


def _wait_idle(log, timeout_s: float = 600) -> None:
    """Wait (up to ``timeout_s``) until no other job runs on the cluster."""
    deadline = time.monotonic() + timeout_s
    said = False
    while (busy := _other_running_jobs("")) and time.monotonic() < deadline:
        if not said:
            log(f"waiting for the cluster to be idle: {', '.join(sorted(busy))}")
            said = True
        time.sleep(5)


def format_figures(f: dict[str, Any]) -> str:
    ok = "yes" if f["overhead"] < 0.20 else "NO"
    return "\n".join(
        [
            f"sweep overhead ({f['executor']} executor): {f['runs']} runs x {f['epochs']} epochs, "
            f"{f['parallelism']} at a time",
            f"  mean run, as a plain python process  {f['run_standalone_s_mean']:7.1f} s"
            f"   (job function + {f['process_start_import_exit_s']:.1f} s interpreter, "
            "imports, exit)",
            f"  mean run, call of the job function   {f['run_call_s_mean']:7.1f} s",
            f"  mean run, training loop only         {f['run_train_s_mean']:7.1f} s",
            f"  ideal = sum(standalone) / parallel.  {f['ideal_s']:7.1f} s",
            f"  wall, submit -> collect done         {f['wall_s']:7.1f} s",
            f"  overhead                             {100 * f['overhead']:6.1f} %"
            f"   (target < 20 %: {ok})",
            f"  overhead vs job function time        {100 * f['overhead_vs_job_function']:6.1f} %",
            f"  overhead vs training loop only       {100 * f['overhead_vs_train_only']:6.1f} %",
            f"  machinery per run                    {f['machinery_s_per_run']:7.1f} s"
            f"   ({100 * f['machinery_per_run_vs_target_run']:.0f} % of a "
            f"{f['target_run_s']:.0f} s run; target < 25 %)",
            f"  of which: submit {f['submit_s']:.1f} s, first job start "
            f"{f['first_start_after_submit_s']:.1f} s after submit, last run end -> status "
            f"done {f['last_end_to_status_done_s']:.1f} s, collect {f['collect_s']:.1f} s",
            f"  collect again, baselines cached      {f['collect_cached_s']:7.1f} s"
            f"   (so {f['baselines_s']:.1f} s of the first were the baseline rows, computed "
            "once per dataset and split)",
            f"  without the baseline rows: wall {f['wall_without_baselines_s']:.1f} s, overhead "
            f"{100 * f['overhead_without_baselines']:.1f} %, machinery per run "
            f"{f['machinery_s_per_run_without_baselines']:.1f} s "
            f"({100 * f['machinery_per_run_vs_target_run_without_baselines']:.0f} % of a "
            f"{f['target_run_s']:.0f} s run; target < 25 %)",
        ]
        + (
            [
                "  WARNING: other jobs shared the node meanwhile (figures contended): "
                + ", ".join(f["other_jobs_running_meanwhile"])
            ]
            if f.get("other_jobs_running_meanwhile")
            else []
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep_overhead", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--run-seconds", type=float, default=30.0)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--executor", choices=["slurm", "local"], default="slurm")
    parser.add_argument("--out", type=Path, help="keep the sweep here (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    figures = run(args.runs, args.run_seconds, args.parallelism, args.executor, args.out)
    print(format_figures(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if math.isfinite(figures["overhead"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
