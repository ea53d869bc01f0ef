"""The researcher's daily loop: `sslobj train` / `config` (one run from a file, every setting
listed, dotted keys everywhere), `export` / `eval` of a trained backbone, live metrics, and
`--help` without torch."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sslobjectives.cli import build_parser, main
from sslobjectives.commands import evaluate as eval_cmd
from sslobjectives.commands.export import export, run_backbone
from sslobjectives.commands.train import load_run_config, train_one
from sslobjectives.compare import apply_overrides, default_methods
from sslobjectives.live import RunLogger, open_loggers
from sslobjectives.objectives import REGISTRY
from sslobjectives.settings import attribute_docs, settings
from sslobjectives.sweep.spec import SpecError, parse_spec
from sslobjectives.train import train
from sslobjectives.train.config import RunConfig
from sslobjectives.train.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]

#: a run that trains in seconds on digits: 1347 train images / 128 = 10 steps per epoch
SMALL = """\
objective = "dino"
epochs = 2
n_local = 0
head_dim = 32
head_hidden = 32
bottleneck_dim = 16
"""


class Recorder(RunLogger):
    """A logger backend that keeps every call (the interface test's fake backend)."""

    def __init__(self):
        self.steps, self.epochs, self.final, self.closed = [], [], None, False

    def log_step(self, step, scalars):
        self.steps.append((step, dict(scalars)))

    def log_epoch(self, epoch, record):
        self.epochs.append((epoch, dict(record)))

    def log_final(self, final):
        self.final = final

    def close(self):
        self.closed = True


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small run trained through `sslobj train`'s code with a recording logger and the
    real TensorBoard backend side by side."""
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    root = tmp_path_factory.mktemp("daily")
    (root / "run.toml").write_text(SMALL)
    config = load_run_config(root / "run.toml")
    out = root / "out"
    run_dir = out / "runs" / f"dino-s0-{config.run_id}"
    recorder = Recorder()
    board = open_loggers(["tensorboard"], run_dir, config.to_dict())
    from sslobjectives.live import LoggerGroup

    torch.set_num_threads(1)
    result = train(
        config, run_dir, resume=True, progress=False, logger=LoggerGroup([recorder, board])
    )
    board.close()
    return {
        "root": root,
        "config": config,
        "out": out,
        "run_dir": run_dir,
        "result": result,
        "recorder": recorder,
    }


# --------------------------------------------------------------------------- 16.1 settings


def test_every_setting_and_every_objective_key_has_a_meaning():
    for cls in [RunConfig, *(c.Config for c in REGISTRY.values())]:
        listed = settings(cls)
        assert [s.name for s in listed] == [f.name for f in dataclasses.fields(cls)]
        missing = [s.name for s in listed if not s.meaning]
        assert not missing, f"{cls.__name__}: no meaning in the docstring for {missing}"


def test_settings_come_from_the_docstring_not_a_copy():
    docs = attribute_docs(RunConfig)
    listed = {s.name: s for s in settings(RunConfig)}
    assert docs["batch_size"].startswith(listed["batch_size"].meaning.rstrip("."))
    assert listed["lr"].meaning == listed["min_lr"].meaning  # a group shares its entry
    assert listed["reset_period"].type == "int | None" and listed["reset_period"].default == "none"
    assert listed["epochs"].default == "30"


def test_config_command_prints_every_key_and_objective_keys(capsys):
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    for f in dataclasses.fields(RunConfig):
        assert re.search(rf"^{f.name}\s", out, re.M), f.name
    for name, cls in REGISTRY.items():
        assert f"Objective {name!r}" in out
        for f in dataclasses.fields(cls.Config):
            assert re.search(rf"^{f.name}\s", out, re.M), (name, f.name)
    assert "``" not in out  # docstring markup is rendered as plain text

    assert main(["config", "--objective", "bits"]) == 0
    out = capsys.readouterr().out
    assert "Objective 'bits'" in out and "Objective 'dino'" not in out
    assert re.search(r"^beta\s+float\s+0.1\s", out, re.M)
    assert main(["config", "--objective", "bitz"]) == 2
    assert "did you mean 'bits'" in capsys.readouterr().err


# ------------------------------------------------------------------------ 16.1 dotted keys


def test_compare_set_reaches_into_table_settings():
    base, methods = apply_overrides(
        {"dataset_kwargs": {"n": 100}},
        default_methods(10),
        ["dataset_kwargs.resize=32", "backbone_kwargs.norm=batch", "bits.beta=0.2", "lr=0.01"],
    )
    assert base["dataset_kwargs"] == {"n": 100, "resize": 32}
    assert base["backbone_kwargs"] == {"norm": "batch"}
    assert base["lr"] == 0.01
    assert {m.label: m.objective_cfg for m in methods}["bits-reset"] == {"beta": 0.2}
    with pytest.raises(ValueError, match="lr is not a table"):
        apply_overrides({}, default_methods(10), ["lr.x=1"])
    with pytest.raises(ValueError, match="did you mean 'dataset_kwargs'"):
        apply_overrides({}, default_methods(10), ["dataset_kwarg.resize=32"])


def test_spec_base_takes_quoted_dotted_keys():
    spec = parse_spec(
        {
            "sweep": {"name": "dotted"},
            "base": {"dataset": "shapes", "dataset_kwargs.n": 60, "dataset_kwargs": {"size": 16}},
        }
    )
    assert spec.expand()[0].config.dataset_kwargs == {"n": 60, "size": 16}
    with pytest.raises(SpecError, match="epochs is not a table"):
        parse_spec({"sweep": {"name": "x"}, "base": {"epochs.n": 1}})


def test_train_file_is_read_and_checked_like_a_spec_base(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(SMALL + 'seed = 3\ndataset = "shapes"\ndataset_kwargs.n = 60\n')
    config = load_run_config(
        path, ["dataset_kwargs.size=16", "objective_cfg.center_momentum=0.8", "reset_period=none"]
    )
    assert config.seed == 3 and config.epochs == 2
    assert config.dataset_kwargs == {"n": 60, "size": 16}
    assert config.objective_cfg["center_momentum"] == 0.8
    assert config.reset_period is None
    path.write_text('epochss = 2\nlr = "fast"\nobjective = "dino"\n')
    with pytest.raises(SpecError) as err:
        load_run_config(path, ["objective_cfg.beta=1", "nokey=1"])
    problems = err.value.problems
    assert any("unknown setting 'nokey'" in p for p in problems)
    assert not any("[base]" in p for p in problems)
    path.write_text('epochss = 2\nlr = "fast"\n')
    with pytest.raises(SpecError) as err:
        load_run_config(path)
    text = str(err.value)
    assert "did you mean 'epochs'" in text and "lr must be float" in text  # every problem at once


def test_train_command_refuses_bad_files_in_one_message(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text("epochs = [\n")
    assert main(["train", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read the config" in capsys.readouterr().err
    path.write_text(SMALL)
    assert main(["train", str(path), "--log", "tensorbord"]) == 2
    assert "did you mean 'tensorboard'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- 16.1 train


def test_train_equals_a_run_of_compare_and_rerun_resumes(trained, tmp_path, capsys):
    config, out = trained["config"], trained["out"]
    # the command itself, into the folder the fixture trained: it reuses the finished run
    code = main(["train", str(trained["root"] / "run.toml"), "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"run folder: {trained['run_dir']}" in printed
    for name in ("runs.csv", "summary.csv", "table.txt", "curves.png"):
        assert (out / name).is_file(), name
    stored = RunDir(trained["run_dir"]).result()
    assert stored["final"] == trained["result"]["final"]
    assert stored["history"] == trained["result"]["history"]

    # compare trains the same config into the same folder name with the same result
    sets = ["head_dim=32", "head_hidden=32", "bottleneck_dim=16"]
    args = ["compare", "--dataset", "digits", "--objectives", "dino", "--seeds", "1"]
    args += ["--epochs", "2", "--n-local", "0"]
    args += [x for kv in sets for x in ("--set", kv)] + ["--out", str(tmp_path / "cmp")]
    assert main([*args, "--no-progress"]) == 0
    capsys.readouterr()
    twin = RunDir(tmp_path / "cmp" / "runs" / trained["run_dir"].name).result()
    assert twin["final"] == stored["final"]
    # the report files of compare (it also keeps its sweep bookkeeping: lock, manifest)
    for name in ("runs.csv", "summary.csv", "table.txt", "curves.png", "runs"):
        assert (tmp_path / "cmp" / name).exists() and (out / name).exists(), name
    assert (out / "table.txt").read_text() == (tmp_path / "cmp" / "table.txt").read_text()

    # an interrupted run (checkpoint, no result) resumes from its checkpoint: no epoch is
    # trained again, so the history (with its timings) is the stored one
    rerun = tmp_path / "rerun"
    import shutil

    shutil.copytree(trained["run_dir"], rerun / "runs" / trained["run_dir"].name)
    RunDir(rerun / "runs" / trained["run_dir"].name).result_path.unlink()
    outcome = train_one(config, rerun, progress=False)
    assert outcome["result"]["history"] == stored["history"]
    assert outcome["result"]["final"] == stored["final"]


# ---------------------------------------------------------------------------- 16.3 live


def test_the_trainer_calls_the_logger_with_what_result_json_keeps(trained):
    rec, result = trained["recorder"], trained["result"]
    steps_per_epoch = 1347 // 128
    assert [s for s, _ in rec.steps] == list(range(2 * steps_per_epoch))
    assert {"loss", "cross_entropy", "marginal_entropy"} <= rec.steps[0][1].keys()
    assert "marginal_entropy" not in rec.steps[1][1]  # diagnostics only on sampled steps
    assert [e for e, _ in rec.epochs] == [0, 1]
    assert [r for _, r in rec.epochs] == result["history"]
    assert rec.final == result["final"]
    # per epoch, the logged steps' mean loss is the history's loss
    first = [s["loss"] for _, s in rec.steps[:steps_per_epoch]]
    assert sum(first) / len(first) == pytest.approx(result["history"][0]["loss"])


def test_tensorboard_event_file_holds_the_history(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(trained["run_dir"] / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {
        "step/loss",
        "step/cross_entropy",
        "epoch/knn",
        "epoch/effective_rank",
        "epoch/marginal_entropy",  # a diagnostic, averaged over the epoch's sampled steps
        "final/knn",
    } <= set(tags)
    history = trained["result"]["history"]
    knn = acc.Scalars("epoch/knn")
    assert [e.step for e in knn] == [1, 2]
    assert [e.value for e in knn] == pytest.approx([h["knn"] for h in history], abs=1e-6)
    assert len(acc.Scalars("step/loss")) == len(trained["recorder"].steps)
    assert acc.Scalars("final/knn")[0].value == pytest.approx(trained["result"]["final"]["knn"])


def test_wandb_offline_run_mirrors_the_history(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_PROJECT", "daily-loop-probe")
    config = RunConfig(
        objective="dino",
        epochs=1,
        n_local=0,
        head_dim=16,
        head_hidden=16,
        bottleneck_dim=8,
        batch_size=256,
    )
    run_dir = tmp_path / "runs" / "w"
    logger = open_loggers(["wandb"], run_dir, {**config.to_dict(), "run_id": config.run_id})
    try:
        result = train(config, run_dir, progress=False, logger=logger)
    finally:
        logger.close()
    # wandb 0.31 ships no reader of its offline record file, and writes the summary into it
    # (no wandb-summary.json): read each logged value back as the JSON text stored right
    # after its key in a protobuf record
    records = list(run_dir.glob(f"wandb/offline-run-*-{config.run_id}/run-{config.run_id}.wandb"))
    assert len(records) == 1, list(run_dir.rglob("*"))[:20]
    blob = b""

    def logged(key: str, value: float) -> bool:
        text = json.dumps(value).encode()
        return (
            re.search(re.escape(key.encode()) + rb"[^/]{1,8}?" + re.escape(text), blob) is not None
        )

    # wandb-core may still be writing the record file when finish() returns: wait for the
    # final record (a bounded wait, not a timing assertion)
    import time

    for _ in range(120):
        blob = records[0].read_bytes()
        if logged("final/knn", result["final"]["knn"]):
            break
        time.sleep(0.5)
    assert logged("epoch/knn", result["history"][-1]["knn"])
    assert logged("epoch/effective_rank", result["history"][-1]["effective_rank"])
    assert logged("final/knn", result["final"]["knn"])
    assert b"daily-loop-probe" in blob  # the project named by $WANDB_PROJECT
    assert not logged("epoch/knn", result["history"][-1]["knn"] + 0.125)  # the probe can fail
    assert blob.count(b"step/loss") >= 1347 // 256


def test_a_missing_backend_library_names_its_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"pip install 'sslobjectives\[wandb\]'"):
        open_loggers(["wandb"], tmp_path, {})
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"pip install 'sslobjectives\[tensorboard\]'"):
        open_loggers(["tensorboard"], tmp_path, {})


# ----------------------------------------------------------------------- 16.2 export/eval


def test_export_loads_weights_only_and_the_readme_snippet_embeds(trained, tmp_path, monkeypatch):
    payload = export(trained["run_dir"], tmp_path / "backbone.pt")
    loaded = torch.load(tmp_path / "backbone.pt", weights_only=True)
    assert loaded["backbone"] == "cnn" and loaded["image_shape"] == [1, 8, 8]
    assert loaded["provenance"]["run_id"] == trained["config"].run_id
    assert loaded["provenance"]["epoch"] == 2 and payload["out_dim"] == loaded["out_dim"]

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("`sslobj export RUN_DIR") :]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(snippet.strip().splitlines()) == 3
    from sslobjectives.data import load_dataset

    images = load_dataset("digits").x_test[:16]
    monkeypatch.chdir(tmp_path)
    scope = {"images": images}
    exec(snippet, scope)
    teacher, _ = run_backbone(trained["run_dir"])
    with torch.no_grad():
        assert torch.allclose(scope["features"], teacher(images))
    # the teacher in the file is the run's: its features are not those of a fresh init
    state = RunDir(trained["run_dir"]).load_checkpoint()
    w = state["teacher"]["module.backbone." + next(iter(loaded["state_dict"]))]
    assert torch.equal(w, next(iter(loaded["state_dict"].values())))


def test_eval_on_the_runs_data_reproduces_its_final_metrics(trained, tmp_path, capsys):
    rows = eval_cmd.evaluate(trained["run_dir"])
    final = trained["result"]["final"]
    assert len(rows) == 1 and rows[0]["dim"] == 128
    assert rows[0]["knn"] == pytest.approx(final["knn"], abs=1e-6)
    assert rows[0]["map"] == pytest.approx(final["map"], abs=1e-6)
    assert rows[0]["linear"] == pytest.approx(final["linear"], abs=1e-6)
    path = tmp_path / "rows.json"
    assert main(["eval", str(trained["run_dir"]), "--dataset", "digits", "--json", str(path)]) == 0
    assert "dino s0 teacher (epoch 2)" in capsys.readouterr().out
    assert json.loads(path.read_text())[0]["knn"] == pytest.approx(final["knn"], abs=1e-6)


def test_eval_on_another_dataset_and_a_baseline_row_beside_the_run(trained, tmp_path):
    # another dataset of the same shape: digits under another split
    rows = eval_cmd.evaluate(trained["run_dir"], "digits", ["data_seed=1", "knn_k=5"])
    assert 0.5 < rows[0]["knn"] <= 1.0
    assert rows[0]["knn"] != pytest.approx(trained["result"]["final"]["knn"], abs=1e-9)

    def raw_pixels(ctx):
        flat = [x.flatten(1) for x in (ctx.data.x_train, ctx.data.x_test)]
        return [
            {"representation": "raw pixels", "dim": flat[0].shape[1], **eval_cmd.score(*flat, ctx)}
        ]

    rows = eval_cmd.evaluate(trained["run_dir"], sources=[*eval_cmd.ROW_SOURCES, raw_pixels])
    assert [r["representation"] for r in rows][1] == "raw pixels"
    table = eval_cmd.format_rows(rows)
    assert "raw pixels" in table and "dino s0 teacher" in table


def test_eval_refuses_another_image_shape_in_one_line(trained, capsys):
    code = main(
        ["eval", str(trained["run_dir"]), "--dataset", "shapes", "--set", "dataset_kwargs.n=40"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "1x32x32" in err and "1x8x8" in err
    assert main(["eval", str(trained["run_dir"]), "--set", "lr=1"]) == 2
    assert "eval takes dataset_kwargs" in capsys.readouterr().err


def test_export_refuses_what_is_not_a_run(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "b.pt")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "b.pt")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    from sslobjectives.models import load_backbone

    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not an exported backbone"):
        load_backbone(tmp_path / "x.pt")


# ------------------------------------------------------------------------ 16.4 --help


def _subcommands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    # bench hands --help to benchmarks/, which measures torch code
    return [name for name in sub.choices if name != "bench"]


HELP_PROBE = """
import runpy, sys
sys.argv = ["sslobj", *sys.argv[1:], "--help"]
try:
    runpy.run_module("sslobjectives", run_name="__main__")
except SystemExit as stop:
    assert stop.code == 0, stop.code
heavy = sorted(m for m in ("torch", "numpy", "sympy", "submitit") if m in sys.modules)
print("HEAVY", heavy)
"""


@pytest.mark.parametrize("command", [[], *([c] for c in _subcommands()), ["sweep", "submit"]])
def test_help_answers_without_importing_torch(command):
    proc = subprocess.run(
        [sys.executable, "-c", HELP_PROBE, *command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: sslobj" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY []", proc.stdout[-500:]


def test_every_subcommand_is_probed():
    assert {"train", "config", "export", "eval", "compare", "sweep", "report"} <= set(
        _subcommands()
    )
