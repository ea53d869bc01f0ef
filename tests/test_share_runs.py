"""scripts/share-runs.py: a sweep gets the finished runs it shares with other sweeps (the same
run id) copied in instead of training them again; only finished results of this code are
copied, under the folder name the sweep gives the run. And the experiments' specs share the
runs their comments say they share with `sslobj compare`'s (docs/compare/runs)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from sslobjectives.sweep.spec import load_spec
from sslobjectives.train.rundir import code_version, run_dir_for

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("share_runs", ROOT / "scripts" / "share-runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(
        '[sweep]\nname = "s"\nseeds = [0, 1]\n'
        '[base]\ndataset = "digits"\nepochs = 1\nobjective = "bits"\n'
        '[zip]\nlabel = ["mine", "other"]\nhead_dim = [32, 64]\n'
        '[executor]\nkind = "debug"\n'
    )
    return path


def _finished(folder: Path, run_id: str, code=None, status="done") -> Path:
    folder.mkdir(parents=True)
    code = code_version() if code is None else code
    result = {"status": status, "run_id": run_id, "code": code, "final": {"knn": 0.5}}
    (folder / "result.json").write_text(json.dumps(result))
    (folder / "config.json").write_text("{}")
    return folder


def test_a_finished_fresh_run_with_the_same_id_is_copied_under_the_sweeps_name(tmp_path):
    script = _script()
    spec_path = _spec_file(tmp_path)
    planned = {(r.config.label, r.config.seed): r for r in load_spec(spec_path).expand()}
    source = tmp_path / "compare" / "runs"
    mine0 = planned[("mine", 0)]
    # the same run under another label elsewhere: copied, renamed to the sweep's folder name
    _finished(source / f"bits-fixed-s0-{mine0.run_id}", mine0.run_id)
    # a result of other code: never copied (it would be trained again)
    mine1 = planned[("mine", 1)]
    _finished(source / f"x-s1-{mine1.run_id}", mine1.run_id, code={"source": "0" * 16})
    # an unfinished run: not copied
    other0 = planned[("other", 0)]
    _finished(source / f"x-s0-{other0.run_id}", other0.run_id, status="failed")
    # a run the spec does not plan: ignored
    _finished(source / "y-s0-0123456789ab", "0123456789ab")

    out = tmp_path / "sweep"
    copied = script.share(spec_path, out, [source])
    dest = run_dir_for(out, mine0.config)
    assert [d for _, d in copied] == [dest]
    assert dest.name == f"mine-s0-{mine0.run_id}"
    assert json.loads((dest / "result.json").read_text())["run_id"] == mine0.run_id
    assert sorted(p.name for p in (out / "runs").iterdir()) == [dest.name]
    # a second call copies nothing: the sweep's own finished run stays
    assert script.share(spec_path, out, [source]) == []


def test_an_unfinished_attempt_in_the_sweep_is_replaced_by_the_finished_copy(tmp_path):
    script = _script()
    spec_path = _spec_file(tmp_path)
    run = next(r for r in load_spec(spec_path).expand() if r.config.label == "other")
    source = _finished(tmp_path / "src" / f"z-s{run.config.seed}-{run.run_id}", run.run_id)
    dest = run_dir_for(tmp_path / "sweep", run.config)
    dest.mkdir(parents=True)
    (dest / "checkpoint.pt").write_bytes(b"half a run")
    copied = script.share(spec_path, tmp_path / "sweep", [source.parent])
    assert copied == [(source, dest)]
    assert not (dest / "checkpoint.pt").exists() and (dest / "result.json").exists()


def test_the_command_line_prints_what_it_copied(tmp_path, capsys):
    script = _script()
    spec_path = _spec_file(tmp_path)
    run = load_spec(spec_path).expand()[0]
    src = tmp_path / "src"
    _finished(src / f"a-s{run.config.seed}-{run.run_id}", run.run_id)
    assert script.main([str(spec_path), str(tmp_path / "out"), str(src)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("shared ") and "1 finished run(s) copied in" in captured.err


@pytest.mark.parametrize(
    "name, shared",
    [
        ("01_objective_comparison_testbed.toml", 30),  # compare's runs, 5 seeds
        ("02_reset_period.toml", 0),  # the bits ablations run 30 epochs
        ("03_coding_rate_weight.toml", 0),
        ("04_channel_width.toml", 0),
        ("05_hard_vs_soft_targets.toml", 0),
        ("06_centering_vs_inverse_prior.toml", 10),  # 1b's dino and kl_inverse_prior
        ("07_what_the_bits_say.toml", 0),
        ("08_domain_shift_1_pretrain.toml", 10),  # 1b's bits-reset and dino
    ],
)
def test_the_specs_share_the_runs_their_comments_say_with_the_default_comparison(
    name, shared, comparison_run_ids
):
    ids = {r.run_id for r in load_spec(ROOT / "experiments" / name).expand()}
    assert len(ids & comparison_run_ids) == shared


@pytest.mark.parametrize(
    "name, label, same",
    [
        ("03_coding_rate_weight.toml", "beta-0.1", "reset-none"),
        ("04_channel_width.toml", None, "reset-none"),  # 256 bits
        ("05_hard_vs_soft_targets.toml", "hard", "reset-none"),
        ("07_what_the_bits_say.toml", None, "reset-6"),  # 256 bits
    ],
)
def test_the_bits_ablations_share_their_reference_with_experiment_two(name, label, same):
    """The bits ablations' reference (bits-fixed at 30 epochs) is experiment 2's reset-none,
    and experiment 7's 256 bits its reset-6, as their spec comments say: the only runs they
    share with experiment 2."""

    def by_label(spec_name: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for r in load_spec(ROOT / "experiments" / spec_name).expand():
            key = r.config.label or str(r.config.head_dim)
            out.setdefault(key, set()).add(r.run_id)
        return out

    two, ours = by_label("02_reset_period.toml"), by_label(name)
    shared = set().union(*ours.values()) & set().union(*two.values())
    assert len(two[same]) == 5 and shared == two[same]
    assert ours[label or "256"] == two[same]


def test_reproduce_results_shares_runs_before_every_submit():
    text = (ROOT / "scripts" / "reproduce-results.sh").read_text()
    share = text.index('python scripts/share-runs.py "$spec" "$out/$name"')
    assert share < text.index('sslobj sweep submit "$spec"')


def test_reproduce_results_runs_in_a_fresh_clone_without_compare_baselines(tmp_path):
    """A fresh clone has no docs/compare/baselines (not in git): the script must seed nothing
    and go on (it once stopped at its first line of work: cp of an unmatched glob). The
    training commands are stubs here; the shell logic around them is the script's own."""
    import os
    import shutil
    import subprocess
    import sys

    repo = tmp_path / "clone"
    (repo / "scripts").mkdir(parents=True)
    (repo / "experiments").mkdir()
    shutil.copy(ROOT / "scripts" / "reproduce-results.sh", repo / "scripts")
    log = tmp_path / "calls.log"
    (repo / "scripts" / "share-runs.py").write_text(
        f"import sys\nopen({str(log)!r}, 'a').write('share ' + ' '.join(sys.argv[1:]) + '\\n')\n"
    )
    (repo / "experiments" / "01_a.toml").write_text('[sweep]\nname = "a"\n')
    (repo / "experiments" / "02_b.toml").write_text('[sweep]\nname = "b"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "sslobj"
    stub.write_text(f'#!/bin/sh\necho "sslobj $*" >> {log}\n')
    stub.chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "scripts/reproduce-results.sh"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert calls == [
        "share experiments/01_a.toml results/sweeps/a",
        "sslobj sweep submit experiments/01_a.toml --executor local --out results/sweeps/a",
        "share experiments/02_b.toml results/sweeps/b",
        "sslobj sweep submit experiments/02_b.toml --executor local --out results/sweeps/b",
        "sslobj report results/sweeps -o docs/RESULTS.md",
    ]
    assert (repo / "results" / "sweeps" / "a" / "baselines").is_symlink()
    assert list((repo / "results" / "sweeps" / "baselines").iterdir()) == []


def test_prefill_baselines_lists_what_the_report_reads_once_longest_first(tmp_path):
    """scripts/prefill-baselines.py: per sweep, the done runs grouped by what a baseline
    depends on (the budget here), over each group's seeds; two sweeps sharing one cache (as
    reproduce-results.sh links them) share its entries; supervised references first."""
    import importlib.util

    from sslobjectives.train.config import RunConfig

    spec = importlib.util.spec_from_file_location(
        "prefill_baselines", ROOT / "scripts" / "prefill-baselines.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = tmp_path / "sweeps"
    (root / "baselines").mkdir(parents=True)

    def run(sweep: str, epochs: int, seed: int, status: str = "done") -> None:
        folder = root / sweep / "runs" / f"r{epochs}-{seed}"
        folder.mkdir(parents=True)
        cfg = RunConfig(dataset="digits", epochs=epochs, seed=seed).to_dict()
        (folder / "result.json").write_text(json.dumps({"status": status, "config": cfg}))

    for sweep in ("a", "b"):
        (root / sweep).mkdir()
        (root / sweep / "baselines").symlink_to("../baselines")
    run("a", 2, 0), run("a", 2, 1), run("a", 3, 0), run("a", 3, 5, status="failed")
    run("b", 2, 1), run("b", 2, 2)  # seed 1 at 2 epochs is a's too: listed once
    jobs = module.jobs_of(root)
    kinds = [kind for kind, _, _ in jobs]
    assert kinds == sorted(kinds, key=module.KINDS.index)  # supervised first
    supervised = sorted((c["epochs"], c["seed"]) for k, c, _ in jobs if k == "supervised")
    assert supervised == [(2, 0), (2, 1), (2, 2), (3, 0)]  # no failed run's seed 5
    # the untrained backbone does not depend on the budget: one entry per seed
    untrained = sorted(c["seed"] for k, c, _ in jobs if k == "untrained")
    assert untrained == [0, 1, 2]
