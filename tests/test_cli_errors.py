"""Every user error of the CLI is one line on stderr naming the problem, exit status 2, no
traceback, before any run starts; failures after start are recorded per run and summarised
with exit status 1 (issue 15, items 4 and 2)."""

from __future__ import annotations

import json
import pickle
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from sslobjectives.cli import main, one_line
from sslobjectives.train import RunConfig, train
from sslobjectives.train.rundir import RunDir, run_dir_for

TINY = [
    "--dataset", "digits",
    "--epochs", "1", "--set", "batch_size=256", "--set", "head_dim=32", "--set", "head_hidden=64",
    "--set", "bottleneck_dim=16", "--set", "knn_k=5", "--set", "warmup_epochs=0",
    "--n-local", "0", "--no-progress", "--jobs", "1",
]  # fmt: skip
TINY_CFG = dict(
    epochs=1, batch_size=256, head_dim=32, head_hidden=64, bottleneck_dim=16, knn_k=5,
    warmup_epochs=0, n_local=0,
)  # fmt: skip


def refused(capsys, argv: list[str], *fragments: str) -> str:
    """Run the CLI; it must exit 2 with exactly one line on stderr holding ``fragments``."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def refused_by_argparse(capsys, argv: list[str], *fragments: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert info.value.code == 2 and len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["compare", "--seeds", "0"], "--seeds"),
        (["compare", "--seeds", ""], "--seeds"),
        (["compare", "--seeds", "-2"], "--seeds"),
        (["compare", "--seeds", "1,1"], "repeats a seed"),
        (["compare", "--seeds", "0,-1"], "--seeds"),
        (["compare", "--seeds", "x"], "--seeds"),
        (["compare", "--threads", "0"], "--threads"),
        (["compare", "--threads", "-1"], "--threads"),
        (["train", "run.toml", "--threads", "0"], "--threads"),
        (["eval", "runs/x", "--threads", "0"], "--threads"),
        (["compare", "--jobs", "0"], "--jobs"),
        (["compare", "--epochs", "0"], "--epochs"),
        (["compare", "--batch-size", "0"], "--batch-size"),
        (["compare", "--n-local", "-1"], "--n-local"),
        (["compare", "--device", "tpu"], "--device"),
        (["compare", "--bogus"], "unrecognized arguments"),
        (["demo", "--batch", "0"], "--batch"),
        (["demo", "--dim", "0"], "--dim"),
        (["demo", "--local-views", "-1"], "--local-views"),
        (["demo", "--seed", "x"], "--seed"),
        (["sweep", "plan"], "spec"),
        (["nosuchcommand"], "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(capsys, argv, fragment):
    line = refused_by_argparse(capsys, argv, fragment)
    assert "--help" in line  # the fix: where the valid values are


@pytest.mark.parametrize(
    "sets, fragments",
    [
        (["--dataset", "digts"], ["unknown dataset 'digts'", "did you mean 'digits'"]),
        (["--dataset", "/nonexistent/x.npz"], ["unknown dataset", ".npz file"]),
        (["--objectives", "dinoo"], ["unknown objective 'dinoo'", "did you mean 'dino'"]),
        (["--set", "epoch=3"], ["did you mean 'epochs'"]),
        (["--set", "lr"], ["expected key=value"]),
        (["--set", "bitz.beta=0.2"], ["did you mean 'bits'"]),
        (["--set", "bits.bta=0.2"], ["did you mean 'beta'"]),
        (["--set", "lr=-1"], ["lr must be > 0"]),
        (["--set", "head_dim=abc"], ["head_dim must be int"]),
        (["--set", "batch_size=100000"], ["exceeds the", "--batch-size"]),
    ],
)
def test_compare_errors_known_before_start_are_one_line(tmp_path, capsys, sets, fragments):
    out = tmp_path / "out"
    refused(capsys, ["compare", *TINY, "--out", str(out), *sets], *fragments)
    assert not (out / "runs").exists()  # nothing started


def test_plan_problems_of_several_objectives_are_one_line(tmp_path, capsys):
    line = refused(
        capsys,
        ["compare", *TINY, "--out", str(tmp_path), "--set", "bits.bta=1", "--set", "dino.x=1"],
    )
    assert "bits" in line and "dino" in line


def test_one_line_joins_the_problems_of_a_multi_line_error():
    assert one_line("a.toml: 2 problems:\n  - x\n  - y") == "a.toml: 2 problems: x; y"
    assert one_line("first\nsecond") == "first; second"


def _npz(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    np.savez(path, x=x, y=y)
    return path


def test_one_class_data_is_refused_before_training(tmp_path, capsys):
    x = np.random.default_rng(0).random((40, 8, 8)).astype(np.float32)
    data = _npz(tmp_path / "one.npz", x, np.zeros(40, dtype=np.int64))
    out = tmp_path / "out"
    argv = ["compare", *TINY, "--set", "batch_size=8", "--dataset", str(data), "--out", str(out)]
    refused(capsys, argv, "one class", "two classes or more")
    assert not (out / "runs").exists()


def test_output_folder_that_cannot_be_written_is_one_line_naming_it(tmp_path, capsys):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    refused(capsys, ["compare", *TINY, "--out", str(blocker / "out")], str(blocker))


def test_unwritable_output_folder(tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        refused(capsys, ["compare", *TINY, "--out", str(ro / "out")], "ro")
    finally:
        ro.chmod(0o700)


def test_a_bug_is_one_line_and_exit_1_with_the_traceback_on_request(capsys, monkeypatch):
    import sslobjectives.demo as demo

    def broken(**_):
        raise KeyError("oops")

    monkeypatch.setattr(demo, "run_demo", broken)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "internal error: KeyError" in err
    assert "SSLOBJ_DEBUG=1" in err
    monkeypatch.setenv("SSLOBJ_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["demo"])


# ------------------------------------------------------------------------------ run folders


def _compare_cfg(objective: str, out: Path, seed: int = 0) -> RunConfig:
    return RunConfig(objective=objective, label=objective, seed=seed, **TINY_CFG)


@pytest.fixture(scope="module")
def kl_run(tmp_path_factory) -> tuple[RunConfig, Path]:
    """A finished kl_inverse_prior run, as `compare` would have written it."""
    out = tmp_path_factory.mktemp("kl")
    cfg = _compare_cfg("kl_inverse_prior", out)
    run_dir = run_dir_for(out, cfg)
    train(cfg, run_dir, progress=False)
    return cfg, run_dir


def test_a_result_copied_into_another_runs_folder_is_refused_naming_it(tmp_path, capsys, kl_run):
    _, kl_dir = kl_run
    out = tmp_path / "out"
    dino = run_dir_for(out, _compare_cfg("dino", out))
    dino.mkdir(parents=True)
    shutil.copy(kl_dir / "result.json", dino / "result.json")
    line = refused(
        capsys,
        ["compare", *TINY, "--objectives", "dino", "kl_inverse_prior", "--out", str(out)],
        str(dino / "result.json"),
        "kl_inverse_prior seed 0",
        "move it back",
    )
    assert "not of run" in line
    assert not (out / "table.txt").exists()


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b'{"status": "do', "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[1, 2]", "not a result"),
    ],
)
def test_a_corrupt_result_names_the_file(tmp_path, capsys, content, fragment):
    out = tmp_path / "out"
    run = run_dir_for(out, _compare_cfg("dino", out))
    run.mkdir(parents=True)
    (run / "result.json").write_bytes(content)
    refused(
        capsys,
        ["compare", *TINY, "--objectives", "dino", "--out", str(out)],
        str(run / "result.json"),
        fragment,
    )


class _Payload:
    """A pickle that, when loaded, creates a marker file (stands in for ``os.system``)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _checkpoint_cases(tmp_path: Path, kl_dir: Path) -> dict[str, bytes]:
    good = (kl_dir / "checkpoint.pt").read_bytes()
    flipped = bytearray(good)
    rng = np.random.default_rng(0)
    for i in rng.choice(np.arange(len(good) // 4, len(good) - 64), 50, replace=False):
        flipped[i] ^= 0xFF
    malicious = tmp_path / "malicious.pt"
    torch.save({"epoch": 1, "x": _Payload(tmp_path / "PWNED")}, malicious)
    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "flipped": bytes(flipped),
        "malicious": malicious.read_bytes(),
        "raw pickle": pickle.dumps(_Payload(tmp_path / "PWNED")),
    }


def test_damaged_or_malicious_checkpoints_are_refused_in_one_line(tmp_path, capsys, kl_run):
    cfg, kl_dir = kl_run
    for name, blob in _checkpoint_cases(tmp_path, kl_dir).items():
        out = tmp_path / name
        run = run_dir_for(out, cfg)
        run.mkdir(parents=True)
        (run / "checkpoint.pt").write_bytes(blob)
        argv = ["compare", *TINY, "--objectives", "kl_inverse_prior", "--out", str(out)]
        line = refused(capsys, argv, str(run / "checkpoint.pt"), "delete it")
        assert "weights_only=False" not in line, name
        assert not (tmp_path / "PWNED").exists(), name
        with pytest.raises(ValueError, match="checkpoint"):  # the API refuses it as well
            train(cfg, run, resume=True, progress=False)
        assert not (tmp_path / "PWNED").exists(), name


def test_a_checkpoint_of_another_run_is_refused(tmp_path, capsys, kl_run):
    cfg, kl_dir = kl_run
    out = tmp_path / "out"
    dino = run_dir_for(out, _compare_cfg("dino", out))
    dino.mkdir(parents=True)
    shutil.copy(kl_dir / "checkpoint.pt", dino / "checkpoint.pt")
    refused(
        capsys,
        ["compare", *TINY, "--objectives", "dino", "--out", str(out)],
        str(dino / "checkpoint.pt"),
        "kl_inverse_prior seed 0",
    )


# ------------------------------------------------------------------------ failures after start


SINGULAR = """
import torch

from sslobjectives.objectives.cluster import DINO


class Singular(DINO):
    name = "singular"

    def compute(self, student, teacher, epoch, stats):
        raise torch.linalg.LinAlgError("linalg.cholesky: the input is not positive-definite")
"""


def test_every_run_failing_is_a_summary_with_reasons_and_exit_1(tmp_path, capsys, monkeypatch):
    # runs train in worker processes: the failure comes from a real (plug-in) objective there
    (tmp_path / "singular_objective.py").write_text(SINGULAR)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    name = "singular_objective:Singular"
    argv = ["compare", *TINY, "--objectives", name, "--seeds", "2", "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "2 of 2 runs failed" in err and "Traceback" not in err
    assert err.count("FAILED") == 2 and err.count("not positive-definite") == 2
    results = [json.loads(p.read_text()) for p in out.glob("runs/*/result.json")]
    assert len(results) == 2  # recorded with each run
    assert all(r["status"] == "failed" and "positive-definite" in r["error"] for r in results)


def test_a_crash_outside_the_training_loop_is_that_runs_recorded_failure(
    tmp_path, capsys, monkeypatch
):
    # in this process (debug executor), so that the evaluation can be broken here
    from sslobjectives.eval import run as evaluation

    def broken(*a, **k):
        raise RuntimeError("evaluation exploded")

    monkeypatch.setattr(evaluation, "final_metrics", broken)
    spec = _spec(tmp_path, '[sweep]\nname = "e"\n[executor]\nkind = "debug"\n' + SWEEP_BASE)
    out = tmp_path / "o"
    capsys.readouterr()
    assert main(["sweep", "submit", str(spec), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "RuntimeError: evaluation exploded" in captured.out
    results = [json.loads(p.read_text()) for p in out.glob("runs/*/result.json")]
    assert results and all(r["status"] == "failed" for r in results)
    assert all("evaluation exploded" in r["error"] for r in results)


# ------------------------------------------------------------------------------ sweeps


def _spec(tmp_path: Path, body: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


SWEEP_BASE = """
[base]
epochs = 1
batch_size = 256
n_local = 0
head_dim = 32
head_hidden = 64
bottleneck_dim = 16
warmup_epochs = 0
knn_k = 5
"""


@pytest.mark.parametrize(
    "body, fragment",
    [
        ('[sweep]\nname = "' + "x" * 300 + '"\n', "at most 100 characters"),
        ('[sweep]\nname = "x"\n[grid]\nlr = [0.1, 0.1]\n', "duplicate values"),
        ('[sweep]\nname = "x"\n[executor]\nslurm_srun_args = ["bash", "-c", "id"]\n', "srun"),
        (
            '[sweep]\nname = "x"\n[executor]\nslurm_additional_parameters = '
            '{export = "ALL,BASH_ENV=/tmp/x"}\n',
            "environment",
        ),
        ('[sweep]\nname = "x"\n[executor]\nslurm_additional_parameters = {wrap = "id"}\n', "wrap"),
        ('[sweep]\nname = "x"\n[executor]\nslurm_setup = ["id"]\n', "shell commands"),
        ('[sweep]\nname = "x"\n[executor]\nslurm_account = "--task-prolog=/x"\n', "start with '-'"),
        ('[sweep]\nname = "x"\n[executor]\nslurm_qos = "a b"\n', "not allowed"),
        ('[sweep]\nname = "x"\n[executor]\nslurm_exclusive = "yes"\n', "true or false"),
        ('[sweep]\nname = "x"\n[executor]\nslurm_use_srun = false\n', "not allowed"),
        ('[sweep]\nname = "x"\n[executor]\nslurm_wrap = "id"\n', "unknown key"),
        ('[sweep]\nname = "x"\n[executor]\npartition = "-p x"\n', "partition"),
        ("[sweep\n", "not valid TOML"),
    ],
)
def test_bad_specs_are_one_line_and_exit_2(tmp_path, capsys, body, fragment):
    spec = _spec(tmp_path, body + SWEEP_BASE if "[base]" not in body else body)
    refused(capsys, ["sweep", "plan", str(spec), "--out", str(tmp_path / "o")], fragment)
    refused(capsys, ["sweep", "submit", str(spec), "--out", str(tmp_path / "o")], fragment)
    assert not (tmp_path / "o").exists()


def test_allowed_slurm_settings_pass_typed(tmp_path, capsys):
    from sslobjectives.sweep.spec import load_spec

    spec = _spec(
        tmp_path,
        '[sweep]\nname = "x"\n[executor]\nkind = "slurm"\nslurm_account = "lab-1"\n'
        'slurm_constraint = "a100&(ib|eth)"\nslurm_comment = "ablation: beta, 3 seeds"\n'
        "slurm_exclusive = true\nslurm_signal_delay_s = 30\n" + SWEEP_BASE,
    )
    ex = load_spec(spec).executor
    assert ex.slurm == {
        "account": "lab-1",
        "constraint": "a100&(ib|eth)",
        "comment": "ablation: beta, 3 seeds",
        "exclusive": True,
    }
    assert ex.signal_delay_s == 30


def test_non_utf8_spec_is_one_line(tmp_path, capsys):
    spec = tmp_path / "latin1.toml"
    spec.write_bytes('[sweep]\nname = "caf\xe9"\n'.encode("latin-1"))
    refused(capsys, ["sweep", "plan", str(spec)], "not UTF-8", "save the spec as UTF-8")


def test_a_huge_grid_is_refused_at_once_by_its_size(tmp_path, capsys):
    import time

    axis = ", ".join(str(i) for i in range(1, 101))
    body = (
        '[sweep]\nname = "huge"\nseeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n'
        f"[grid]\nhead_dim = [{axis}]\nknn_k = [{axis}]\nhead_hidden = [{axis}]\n" + SWEEP_BASE
    )
    body = body.replace("head_dim = 32\n", "").replace("knn_k = 5\n", "")
    body = body.replace("head_hidden = 64\n", "")
    spec = _spec(tmp_path, body)
    t0 = time.perf_counter()
    refused(capsys, ["sweep", "plan", str(spec)], "10000000 runs", "split it")
    # not a wall-clock claim: the refusal must not expand 10^7 runs (that takes hours)
    assert time.perf_counter() - t0 < 60


def test_zip_duplicate_check_counts_rows_once():
    """The repeated-row check of [zip] is one pass (a Counter), not rows.count per row."""
    from sslobjectives.sweep.spec import SpecError, parse_spec

    n = 3000
    data = {
        "sweep": {"name": "z"},
        "base": {"epochs": 1},
        "zip": {"knn_k": list(range(1, n + 1)) + [1]},
    }
    with pytest.raises(SpecError, match=r"repeated rows \(knn_k\): \['\[1\]'\]"):
        parse_spec(data)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"runs": [{"run_id": "a", "label": "x", "dir": "../../etc"}]}', "leaves the sweep"),
        (b'{"runs": [{"run_id": "a"}]}', "without run_id, dir or label"),
    ],
)
def test_a_corrupt_manifest_names_the_file(tmp_path, capsys, content, fragment):
    (tmp_path / "manifest.json").write_bytes(content)
    for command in ("status", "collect"):
        refused(capsys, ["sweep", command, str(tmp_path)], "manifest.json", fragment)


def test_status_of_a_folder_that_is_no_sweep_is_one_line(tmp_path, capsys):
    refused(capsys, ["sweep", "status", str(tmp_path / "nothing")], "not a sweep directory")


# ------------------------------------------------------------------------------ no pickles


def _debug_sweep(tmp_path: Path, seeds: str = "[0, 1]") -> tuple[Path, Path]:
    spec = _spec(
        tmp_path,
        f'[sweep]\nname = "tiny"\nseeds = {seeds}\n[executor]\nkind = "debug"\n' + SWEEP_BASE,
    )
    out = tmp_path / "sweep"
    assert main(["sweep", "submit", str(spec), "--out", str(out)]) == 0
    return spec, out


def test_no_command_unpickles_a_file_of_the_sweep_folder(tmp_path, capsys):
    spec, out = _debug_sweep(tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Payload(marker))
    job_ids = [j for s in manifest["submissions"] for j in s["jobs"].values()]
    for job_id in job_ids:  # every place submitit keeps a job's pickles
        folder = out / "submitit" / str(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        for name in (f"{job_id}_0_result.pkl", f"{job_id}_submitted.pkl"):
            (folder / name).write_bytes(payload)
    # a run without result: status used to read its outcome from the result pickle
    first = out / manifest["runs"][0]["dir"]
    (first / "result.json").unlink()
    for argv in (
        ["sweep", "status", str(out)],
        ["sweep", "status", str(out), "--json"],
        ["sweep", "plan", str(spec), "--out", str(out)],
        ["sweep", "collect", str(out)],
    ):
        main(argv)
        assert not marker.exists(), argv
    capsys.readouterr()
    assert main(["sweep", "submit", str(spec), "--out", str(out)]) == 0  # reruns that run
    assert not marker.exists()
    assert "FAILED" not in capsys.readouterr().out


def test_collect_does_not_count_a_seed_twice(tmp_path, capsys):
    spec, out = _debug_sweep(tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    seed0, seed1 = (out / r["dir"] for r in manifest["runs"])
    shutil.copy(seed0 / "result.json", seed1 / "result.json")
    refused(capsys, ["sweep", "collect", str(out)], str(seed1 / "result.json"), "not of run")
    # submit refuses before submitting anything; status shows the run failed, naming the file
    refused(capsys, ["sweep", "submit", str(spec), "--out", str(out)], str(seed1 / "result.json"))
    assert main(["sweep", "status", str(out)]) == 0
    assert "not of run" in capsys.readouterr().out


def test_debug_sweep_with_a_failing_run_exits_1_with_the_reason(tmp_path, capsys, monkeypatch):
    from sslobjectives.objectives.cluster import DINO

    def broken(self, *a, **k):
        raise torch.linalg.LinAlgError("singular")

    monkeypatch.setattr(DINO, "forward", broken)
    spec = _spec(tmp_path, '[sweep]\nname = "f"\n[executor]\nkind = "debug"\n' + SWEEP_BASE)
    capsys.readouterr()
    assert main(["sweep", "submit", str(spec), "--out", str(tmp_path / "o")]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "singular" in captured.out
    assert "1 runs failed" in captured.err and "Traceback" not in captured.err


def test_a_spec_one_run_over_the_limit_is_refused(tmp_path, capsys):
    from sslobjectives.sweep.spec import MAX_RUNS

    assert MAX_RUNS == 10_000 == 73 * 137 - 1  # the README's number
    body = (
        '[sweep]\nname = "big"\n[grid]\n'
        f"knn_k = {list(range(1, 74))}\nhead_hidden = {list(range(1, 138))}\n"
        + SWEEP_BASE.replace("head_hidden = 64\n", "").replace("knn_k = 5\n", "")
    )
    refused(capsys, ["sweep", "plan", str(_spec(tmp_path, body))], "10001 runs", "10000")


def test_compare_reruns_results_of_other_code_unless_asked(tmp_path, capsys, monkeypatch):
    from sslobjectives.train import rundir

    out = tmp_path / "out"
    argv = ["compare", *TINY, "--objectives", "dino", "--seeds", "1", "--out", str(out)]
    assert main(argv) == 0
    run = RunDir(run_dir_for(out, _compare_cfg("dino", out)))
    # the finished run's result as other code would have written it (runs train in worker
    # processes, so the file is changed rather than this process's idea of the code)
    other = {"version": "9.9.9", "commit": None, "dirty": None}
    data = json.loads(run.result_path.read_text())
    data["code"] = other
    run.result_path.write_text(json.dumps(data))
    first = run.result()
    capsys.readouterr()
    assert main([*argv, "--reuse-stale"]) == 0
    out_text = capsys.readouterr().out
    assert "1 finished runs come from other code (dino s0): kept" in out_text
    note = "note: 1 stale result (written by other code) included (--reuse-stale): dino s0"
    assert note in out_text and note in (out / "table.txt").read_text()
    assert run.result() == first
    assert main(argv) == 0
    assert "rerun (--reuse-stale keeps them)" in capsys.readouterr().out
    assert run.result()["code"] == rundir.code_version()
    assert list(run.path.glob("result.stale-*.json"))


def test_a_full_disk_during_a_run_is_that_runs_failure_and_leaves_no_partial_file(
    tmp_path, capsys, monkeypatch
):
    import errno

    from sslobjectives.train import rundir

    def full(fh):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    original = rundir.atomic_write_bytes

    def checkpoint_on_full_disk(path, write):
        if Path(path).name == "checkpoint.pt":
            return original(path, full)
        return original(path, write)

    monkeypatch.setattr(rundir, "atomic_write_bytes", checkpoint_on_full_disk)
    # in this process (debug executor), so that the disk can be made full here
    body = '[sweep]\nname = "d"\nseeds = [0]\n[executor]\nkind = "debug"\n' + SWEEP_BASE
    spec = _spec(tmp_path, body)
    out = tmp_path / "o"
    capsys.readouterr()
    assert main(["sweep", "submit", str(spec), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "OSError" in captured.out and "No space left" in captured.out
    (run,) = [p.parent for p in out.glob("runs/*/result.json")]
    assert RunDir(run).result()["status"] == "failed"
    assert not list(run.glob(".*tmp-*"))  # the partial checkpoint was removed


def test_a_stale_sweep_run_is_shown_and_resubmitted_unless_asked(tmp_path, capsys, monkeypatch):
    from sslobjectives.sweep.states import status
    from sslobjectives.train import rundir

    spec, out = _debug_sweep(tmp_path, seeds="[0]")
    other = {"version": "9.9.9", "commit": None, "dirty": None}
    monkeypatch.setattr(rundir, "code_version", lambda: other)
    [st] = status(out)
    assert st.state == "done" and "9.9.9" in st.stale and "stale" in st.detail
    capsys.readouterr()
    assert main(["sweep", "submit", str(spec), "--out", str(out), "--reuse-stale"]) == 0
    assert "nothing to submit" in capsys.readouterr().out
    assert main(["sweep", "submit", str(spec), "--out", str(out)]) == 0
    assert "its result is stale" in capsys.readouterr().out
    [st] = status(out)
    assert st.state == "done" and st.stale is None
