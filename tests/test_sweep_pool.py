"""The local pool (``sslobjectives.sweep.pool``) and process hygiene of compare and sweeps:
the time limit's requeue cap, the folder lock, workers dying with their parent, Ctrl-C, resume
announcements and partial files."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sslobjectives.cli import main
from sslobjectives.sweep import load_spec, read_attempts, status, submit
from sslobjectives.sweep.pool import read_state

ROOT = Path(__file__).resolve().parents[1]
TINY = (
    'dataset = "digits"\nbatch_size = 256\nn_local = 0\nhead_dim = 32\nhead_hidden = 64\n'
    "bottleneck_dim = 16\nwarmup_epochs = 0\nknn_k = 5\n"
)
TINY_SET = [
    "--dataset", "digits",
    "--epochs", "1", "--set", "batch_size=256", "--set", "head_dim=32", "--set", "head_hidden=64",
    "--set", "bottleneck_dim=16", "--set", "knn_k=5", "--set", "warmup_epochs=0",
    "--n-local", "0",
]  # fmt: skip


def write_spec(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body).replace("[base]\n", "[base]\n" + TINY, 1))
    return path


def _wait(predicate, what: str, limit_s: float = 300.0, step_s: float = 0.2):
    """Poll ``predicate`` until it returns a true value (a liveness bound, not a timing
    assertion: a loaded machine only makes it wait longer)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step_s)
    raise AssertionError(f"gave up waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _epoch_seconds(config: dict, epochs: int = 2) -> tuple[float, float]:
    """(seconds per epoch, seconds of set-up) of ``config`` here, one thread, under today's
    load: the time limits below are sized against it (a fixed limit fails on a busy machine)."""
    import tempfile

    import torch

    from sslobjectives.train import RunConfig, train

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


def test_the_pool_honours_max_num_timeout_exactly(tmp_path):
    """max_num_timeout = 0: the first timeout ends the run (no silent extra attempts), and
    status says why; then 1 requeue is allowed with max_num_timeout = 1 (two starts)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    per_epoch, setup_s = _epoch_seconds({**tomllib.loads(TINY), "objective": "bits"})
    window_s = setup_s + 3 * per_epoch  # about 3 epochs per attempt, whatever the load
    delay_s = math.ceil(10 * per_epoch) + 5  # the epoch in progress ends before the kill
    spec_path = write_spec(
        tmp_path / "cap.toml",
        f"""
        [sweep]
        name = "cap"
        [base]
        objective = "bits"
        epochs = 400
        [executor]
        kind = "local"
        timeout_min = {(window_s + delay_s) / 60:.4f}
        signal_delay_s = {delay_s}
        max_num_timeout = 0
        """,
    )
    out = tmp_path / "out"
    report = submit(load_spec(spec_path), out)
    (st,) = status(out)
    assert st.state == "failed" and "max_num_timeout = 0" in st.detail, st
    assert len(report.errors) == 1 and "timed out 1 times" in next(iter(report.errors.values()))
    attempts = read_attempts(st.run_dir)
    assert [a["event"] for a in attempts].count("start") == 1
    state = read_state(out / "submitit", st.job_id)
    assert state["state"] == "TIMEOUT" and state["timeouts"] == 1 and state["attempts"] == 1
    assert not (out / "submitit" / "%j").exists()

    spec_path.write_text(
        spec_path.read_text().replace("max_num_timeout = 0", "max_num_timeout = 1")
    )
    submit(load_spec(spec_path), out)
    (st,) = status(out)
    state = read_state(out / "submitit", st.job_id)
    assert state["state"] == "TIMEOUT" and state["attempts"] == 2 and state["timeouts"] == 2
    starts = [a for a in read_attempts(st.run_dir) if a["event"] == "start"]
    assert len(starts) == 3 and starts[2]["resume_epoch"] >= starts[1]["resume_epoch"] > 0


def test_local_spec_with_several_tasks_is_refused(tmp_path):
    spec_path = write_spec(
        tmp_path / "tasks.toml",
        '[sweep]\nname = "t"\n[base]\nepochs = 1\n[executor]\nkind = "local"\ntasks_per_node = 2\n',
    )
    from sslobjectives.sweep import SpecError

    with pytest.raises(SpecError, match="tasks_per_node: the local pool runs one process"):
        submit(load_spec(spec_path), tmp_path / "out")


def test_compare_folder_lock_ctrl_c_kill_resume_and_partial_files(tmp_path, capsys):
    out = tmp_path / "cmp"
    out.mkdir()
    tiny = list(TINY_SET)
    # long enough that a signal sent after the first checkpoint lands before the end even
    # when the test process is starved for seconds on a loaded machine (12 epochs did not)
    tiny[tiny.index("--epochs") + 1] = "40"
    args = ["compare", "--objectives", "dino", "--seeds", "1", "--out", str(out), *tiny]
    cmd = [sys.executable, "-m", "sslobjectives", *args, "--no-progress"]

    # 1. a folder another process works on is refused, with its pid, in one line
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom sslobjectives.sweep.submission import FolderLock\n"
            f"with FolderLock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main([*args, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {holder.pid}" in err[0], err
    finally:
        holder.kill()
        holder.wait()
    assert f"{holder.pid}" in (out / ".submit.lock").read_text()  # the dead holder's lock stays

    # 2. Ctrl-C (to the whole process group, as a terminal sends it): one line, exit 130
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        start_new_session=True,
    )  # fmt: skip
    ckpt = _wait(lambda: next(out.glob("runs/*/checkpoint.pt"), None), "a first checkpoint")
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert stderr.strip().splitlines()[-1] == "interrupted — resume with the same command"
    assert "Traceback" not in stderr, stderr
    (state_file,) = out.glob("submitit/*/state.json")
    state = json.loads(state_file.read_text())
    assert state["state"] == "CANCELLED"
    assert not _alive(state["worker_pid"])

    # 3. kill -9 of the parent: its worker stops training too; the run resumes afterwards
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())  # fmt: skip

    def training_worker():  # the worker has started the run's second attempt
        starts = [a for a in read_attempts(ckpt.parent) if a["event"] == "start"]
        return starts[-1]["pid"] if len(starts) == 2 else None

    worker = _wait(training_worker, "the worker of the second compare")
    assert _alive(worker)
    proc.kill()
    proc.wait()
    _wait(lambda: not _alive(worker), "the orphaned worker to exit", limit_s=60)
    assert next(ckpt.parent.glob("result.json"), None) is None  # it did not finish meanwhile

    # 4. leftovers of killed processes: partial files are removed; another comparison's
    # table in the folder is replaced, and said so
    partial = ckpt.parent / ".checkpoint.pt.tmp-999999999"
    partial.write_bytes(b"half a checkpoint")
    (out / "runs.csv").write_text("label,seed,run_id\nother,0,zzzzzzzz\n")
    capsys.readouterr()
    assert main([*args, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "resuming dino s0 from epoch " in printed, printed
    assert "removed 1 partial file(s)" in printed
    assert "held the table of another comparison" in printed
    assert not partial.exists()
    result = json.loads((ckpt.parent / "result.json").read_text())
    assert [h["epoch"] for h in result["history"]] == list(range(40))
    starts = [a for a in read_attempts(ckpt.parent) if a["event"] == "start"]
    assert len(starts) == 3 and starts[-1]["resume_epoch"] > 0


def test_the_overall_bar_counts_epochs_of_every_run(tmp_path, capsys):
    """The bar's total is every run's epochs, and it advances once per finished epoch."""
    from sslobjectives.compare import comparison_spec, default_methods, run_comparison

    base = {"dataset": "digits", "epochs": 2, "batch_size": 256, "head_dim": 32,
            "head_hidden": 64, "bottleneck_dim": 16, "knn_k": 5, "warmup_epochs": 0,
            "n_local": 0}  # fmt: skip
    methods = [m for m in default_methods(2) if m.label in ("dino", "bits-fixed")]
    spec = comparison_spec(methods, [0], base, tmp_path, jobs=2)
    import tqdm.auto

    counts = []
    original = tqdm.auto.tqdm

    class Spy(original):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            counts.append(self)

    tqdm.auto.tqdm = Spy
    try:
        report = run_comparison(spec, tmp_path, progress=True)
    finally:
        tqdm.auto.tqdm = original
    assert report["failures"] == []
    (bar,) = counts
    assert bar.total == 4 and bar.n == 4
