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
