"""The run folder protocol (sslobjectives.train.rundir): every reader and writer goes through it."""

import json
import os

import pytest
import torch

from sslobjectives.train import RunConfig
from sslobjectives.train.rundir import (
    ATTEMPTS_FILE,
    RESULT_FILE,
    FileLock,
    RunAlreadyRunning,
    RunDir,
    RunFileError,
    run_dir_for,
    write_json_atomic,
)


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    run = RunDir(tmp_path / "run")
    run.write_result({"status": "done"})

    def boom(_fh):
        raise OSError("disk full")

    from sslobjectives.train import rundir

    with pytest.raises(OSError, match="disk full"):
        rundir.atomic_write_bytes(run.result_path, boom)
    assert run.result() == {"status": "done"}


def test_result_is_read_one_way(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.result() is None and not run.is_done() and not run.holds_run()
    run.path.mkdir()
    (run.path / RESULT_FILE).write_text('{"status": "do')  # not ours: never written torn
    with pytest.raises(RunFileError, match=r"r/result.json is not valid JSON.*delete it"):
        run.result()
    run.write_result({"status": "failed", "error": "x"})
    assert run.result()["status"] == "failed" and not run.is_done() and run.holds_run()
    run.write_result({"status": "done", "n": torch.tensor([1, 2])})
    assert run.result() == {"status": "done", "n": [1, 2]} and run.is_done()


def test_lock_is_exclusive_and_visible(tmp_path):
    run = RunDir(tmp_path)
    assert not run.lock_held()
    with run.lock():
        assert run.lock_held()
        with pytest.raises(RunAlreadyRunning, match="being trained by another process"):
            with run.lock():
                pass
    assert not run.lock_held()
    with FileLock(tmp_path / "s.lock", "busy"):
        with pytest.raises(RuntimeError, match="busy"):
            with FileLock(tmp_path / "s.lock", "busy"):
                pass


def test_attempts_skip_a_torn_line_and_checkpoint_epoch(tmp_path):
    run = RunDir(tmp_path)
    run.log_attempt("start", job_id="1")
    with open(tmp_path / ATTEMPTS_FILE, "a") as fh:
        fh.write('{"event": "en')
    assert [a["event"] for a in run.attempts()] == ["start"]
    assert run.checkpoint_epoch() == 0
    run.save_checkpoint({"epoch": 3, "w": torch.ones(2)})
    assert run.checkpoint_epoch() == 3
    assert not list(tmp_path.glob(".*tmp-*"))  # the temporary file was renamed away
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    assert run.checkpoint_epoch() == -1


def test_config_written_once_and_folder_name_unchanged(tmp_path):
    cfg = RunConfig(objective="bits", epochs=1, seed=4)
    run = RunDir.for_config(tmp_path, cfg)
    assert run.path == run_dir_for(tmp_path, cfg)
    assert run.path == tmp_path / "runs" / f"{cfg.display_name}-s4-{cfg.run_id}"
    run.write_config(cfg.to_dict())
    stamp = os.stat(run.file("config.json")).st_mtime_ns
    run.write_config({"other": 1})
    assert os.stat(run.file("config.json")).st_mtime_ns == stamp
    assert json.loads(run.file("config.json").read_text()) == cfg.to_dict()


def test_readers_do_not_import_the_trainer():
    import subprocess
    import sys

    code = (
        "import sys, sslobjectives.report, sslobjectives.results, sslobjectives.sweep.manager;"
        "print('sslobjectives.train.trainer' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------ identity


TINY = dict(
    epochs=1, batch_size=256, head_dim=32, head_hidden=64, bottleneck_dim=16, knn_k=5,
    warmup_epochs=0, n_local=0,
)  # fmt: skip


def _old_run_id(config: RunConfig) -> str:
    """The run id as every earlier version computed it (named datasets must keep it)."""
    import hashlib

    d = config.to_dict()
    d.pop("label")
    unset_keys = (
        ("init_from", ""),
        ("reset_head_at_start", False),
        ("eval_dataset", ""),
        ("head_kwargs", {}),
        ("augment", {}),
    )
    for key, unset in unset_keys:
        if d[key] == unset:
            d.pop(key)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def test_named_datasets_keep_their_run_ids_and_user_files_enter_by_contents(tmp_path):
    import numpy as np

    for cfg in (RunConfig(), RunConfig(dataset="shapes", dataset_kwargs={"n": 40})):
        assert cfg.run_id == _old_run_id(cfg) and cfg.config_hash.startswith(cfg.run_id)
    path = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 8, 8)), np.arange(20) % 2
    np.savez(path, x=x, y=y)
    first = RunConfig(dataset=str(path)).run_id
    assert RunConfig(dataset=str(path)).run_id == first  # stable while the file is
    np.savez(path, x=x + 1, y=y)  # new contents, same path
    second = RunConfig(dataset=str(path)).run_id
    assert second != first
    np.savez(path, x=x, y=y)  # the old contents back: the old run again
    os.utime(path, ns=(1, 1))
    assert RunConfig(dataset=str(path)).run_id == first
    folder = tmp_path / "images"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "1.png").write_bytes(b"one")
    before = RunConfig(dataset=str(folder)).run_id
    (folder / "a" / "1.png").write_bytes(b"two")
    assert RunConfig(dataset=str(folder)).run_id != before


def test_the_code_version_is_recorded_but_not_in_the_run_id(tmp_path, monkeypatch):
    from sslobjectives.train import rundir

    cfg = RunConfig(**TINY)
    run = RunDir(tmp_path)
    run.write_result({"status": "done", "label": "dino", "seed": 0}, cfg)
    written = run.result(expect=cfg)
    assert written["code"] == rundir.code_version() and rundir.stale_reason(written) is None
    assert {"run_id", "config_hash", "data_fingerprint"} <= written.keys()
    other = {"version": "0.0.1", "commit": "f" * 40, "dirty": True}
    monkeypatch.setattr(rundir, "code_version", lambda: other)
    assert RunConfig(**TINY).run_id == cfg.run_id  # ids stay stable across code versions
    assert "written by sslobjectives" in rundir.stale_reason(written)
    assert "ffffffffff (dirty)" in rundir.stale_reason(written)


def test_staleness_is_decided_by_the_package_sources_not_the_commit(tmp_path, monkeypatch):
    from sslobjectives.train import rundir

    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    (pkg / "README.md").write_text("docs")
    first = rundir.source_hash(pkg)
    (pkg / "README.md").write_text("other docs")  # not a source: same hash
    (pkg / "sub" / "__pycache__").mkdir()
    (pkg / "sub" / "__pycache__" / "b.cpython.py").write_text("junk")
    assert rundir.source_hash(pkg) == first
    (pkg / "sub" / "b.py").write_text("y = 3\n")  # a module changed: another hash
    assert rundir.source_hash(pkg) != first
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    (pkg / "sub" / "b.py").rename(pkg / "b2.py")  # same bytes, other path: another hash
    assert rundir.source_hash(pkg) != first

    ours = rundir.code_version()
    assert len(ours["source"]) == 16
    # another commit (a docs-only one) with the same sources: fresh
    other_commit = {**ours, "commit": "e" * 40, "dirty": not ours["dirty"]}
    assert rundir.stale_reason({"code": other_commit}) is None
    # other sources: stale, whatever the commit says
    other_source = {**ours, "source": "0" * 16}
    assert "sources 0000000000000000" in rundir.stale_reason({"code": other_source})
    # a record from before the source hash: every recorded field must match
    old = {k: v for k, v in ours.items() if k != "source"}
    assert rundir.stale_reason({"code": old}) is not None  # ours has a source, theirs not
    monkeypatch.setattr(rundir, "code_version", lambda: old)
    assert rundir.stale_reason({"code": old}) is None


def test_a_result_of_other_code_is_rerun_or_kept_when_asked(tmp_path, monkeypatch):
    from sslobjectives.train import rundir, train
    from sslobjectives.train import trainer as trainer_module

    cfg = RunConfig(**TINY)
    first = train(cfg, tmp_path / "r", progress=False)
    kept = train(cfg, tmp_path / "r", resume=True, progress=False)
    assert kept == first  # same code: reused
    other = {"version": "0.0.1", "commit": None, "dirty": None}
    monkeypatch.setattr(rundir, "code_version", lambda: other)
    reused = train(cfg, tmp_path / "r", resume=True, progress=False, reuse_stale=True)
    assert reused["code"] == first["code"]  # kept only when asked
    calls = []
    original = trainer_module.Trainer.run

    def counted(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(trainer_module.Trainer, "run", counted)
    rerun = train(cfg, tmp_path / "r", resume=True, progress=False)
    assert calls == [1] and rerun["code"] == other  # trained again, by this code
    stale = sorted((tmp_path / "r").glob("result.stale-*.json"))
    assert len(stale) == 1 and json.loads(stale[0].read_text())["code"] == first["code"]
    retired = [a for a in RunDir(tmp_path / "r").attempts() if a["event"] == "retired"]
    assert "written by sslobjectives" in retired[0]["reason"]


def test_checkpoints_carry_identity_code_and_a_checksum(tmp_path):
    from sslobjectives.train.rundir import pack_checkpoint, read_checkpoint

    cfg = RunConfig(**TINY)
    run = RunDir(tmp_path)
    run.save_checkpoint({"epoch": 2, "w": torch.arange(1000.0), "run_id": cfg.run_id}, cfg)
    header = run.checkpoint_header()
    assert header["run_id"] == cfg.run_id and header["config_hash"] == cfg.config_hash
    assert header["epoch"] == 2 and isinstance(header["code"], dict)
    assert torch.equal(run.load_checkpoint(expect=cfg)["w"], torch.arange(1000.0))
    with pytest.raises(RunFileError, match="is the checkpoint of run"):
        run.load_checkpoint(expect=RunConfig(**{**TINY, "lr": 0.5}))
    blob = bytearray(pack_checkpoint({"epoch": 2, "w": torch.arange(1000.0)}, cfg))
    # flip bytes inside the payload: the zip container may not notice, the checksum must
    start = blob.find(b"\x00\x00\x80\x3f")  # 1.0 in float32, in the tensor data
    assert start > 0
    for i in range(start, start + 50):
        blob[i] ^= 0xFF
    (tmp_path / "checkpoint.pt").write_bytes(bytes(blob))
    with pytest.raises(RunFileError, match="checkpoint.pt: the checkpoint fails its checksum"):
        read_checkpoint(tmp_path / "checkpoint.pt")
    assert run.checkpoint_epoch() == -1
