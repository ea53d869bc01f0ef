"""``RunConfig.init_from``: a run starts from another run's weights (experiment 8)."""

from __future__ import annotations

import json

import pytest
import torch

from sslobjectives.train import RunConfig, train
from sslobjectives.train.rundir import pack_checkpoint, read_checkpoint
from sslobjectives.train.trainer import CHECKPOINT_FILE, Trainer, resolve_init_from

TINY = dict(
    dataset="digits",
    batch_size=256,
    n_local=0,
    head_dim=32,
    head_hidden=64,
    bottleneck_dim=16,
    warmup_epochs=0,
    knn_k=5,
    epochs=1,
)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """One finished 1-epoch bits run: (its run dir, its result)."""
    run_dir = tmp_path_factory.mktemp("src") / "bits-s0"
    result = train(RunConfig(objective="bits", **TINY), run_dir, progress=False)
    assert result["status"] == "done"
    return run_dir, result


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def test_config_rules():
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        RunConfig(**{**TINY, "epochs": 0})
    with pytest.raises(ValueError, match="reset_head_at_start needs init_from"):
        RunConfig(**TINY, reset_head_at_start=True)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        RunConfig(**{**TINY, "epochs": -1}, init_from="x")
    cfg = RunConfig(**{**TINY, "epochs": 0}, init_from="x")
    assert cfg.epochs == 0
    # unset, the new keys leave the run id of a config as it was
    d = RunConfig(**TINY).to_dict()
    assert d["init_from"] == "" and d["reset_head_at_start"] is False
    assert RunConfig(**TINY).run_id != RunConfig(**TINY, init_from="x").run_id


def test_loaded_weights_equal_the_source_and_the_head_reset_changes_only_the_head(source):
    run_dir, _ = source
    state = read_checkpoint(run_dir / CHECKPOINT_FILE)[1]
    for target in (str(run_dir), str(run_dir / CHECKPOINT_FILE)):
        cfg = RunConfig(objective="bits", **{**TINY, "seed": 1}, init_from=target)
        trainer = Trainer(cfg, run_dir.parent / "t", progress=False)
        assert not _same(trainer.student.state_dict(), state["student"])  # seed 1 differs
        trainer.load_init()
        assert _same(trainer.student.state_dict(), state["student"])
        assert _same(trainer.teacher.state_dict(), state["teacher"])
        assert trainer.init["run_id"] == state["run_id"]
        assert trainer.optimizer.state_dict()["state"] == {}  # the optimiser starts fresh

    cfg = RunConfig(
        objective="bits", **{**TINY, "seed": 1}, init_from=str(run_dir), reset_head_at_start=True
    )
    trainer = Trainer(cfg, run_dir.parent / "r", progress=False)
    trainer.load_init()
    backbone = {k: v for k, v in state["student"].items() if k.startswith("backbone.")}
    got = trainer.student.state_dict()
    assert all(torch.equal(got[k], v) for k, v in backbone.items())
    assert not torch.equal(got["head.mlp.0.weight"], state["student"]["head.mlp.0.weight"])
    assert _same(trainer.teacher.module.head.state_dict(), trainer.student.head.state_dict())
    assert trainer.init["head_reset"] is True


def test_epochs_zero_evaluates_the_source_weights_only(source, tmp_path):
    run_dir, src = source
    pattern = str(run_dir.parent / "bits-s{seed}")  # {seed} -> 0
    cfg = RunConfig(objective="bits", **{**TINY, "epochs": 0}, init_from=pattern)
    result = train(cfg, tmp_path / "eval", progress=False)
    assert result["status"] == "done" and result["history"] == []
    assert result["init"]["path"] == str(run_dir / CHECKPOINT_FILE)
    # same data, same teacher weights: the same evaluation as the source's own
    for key in ("knn", "linear", "map", "code_map", "bit_entropy"):
        assert result["final"][key] == pytest.approx(src["final"][key]), key
    assert not (tmp_path / "eval" / CHECKPOINT_FILE).exists()
    assert json.loads((tmp_path / "eval" / "result.json").read_text())["status"] == "done"


def test_continued_training_resumes_from_its_own_checkpoint_not_the_source(source, tmp_path):
    run_dir, _ = source
    cfg = RunConfig(objective="bits", **TINY, init_from=str(run_dir))
    out = tmp_path / "adapt"
    train(cfg, out, progress=False)
    own = read_checkpoint(out / CHECKPOINT_FILE)[1]
    (out / "result.json").unlink()  # as if killed after the last checkpoint
    trainer = Trainer(cfg, out, progress=False)
    assert trainer.load_checkpoint()
    assert _same(trainer.student.state_dict(), own["student"])


def test_bad_init_from_is_a_clear_error(source, tmp_path):
    run_dir, _ = source
    cases = [
        (str(tmp_path / "missing"), "does not exist"),
        (str(run_dir.parent / "*"), "must match exactly one path"),  # bits-s0 and others
        (str(tmp_path / "nothing-*"), "matched 0"),
    ]
    (run_dir.parent / "other").mkdir(exist_ok=True)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    cases.append((str(unfinished), "has no result"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(pack_checkpoint({"weights": torch.zeros(2)}))
    cases.append((str(junk), "not a trainer checkpoint"))
    unchecked = tmp_path / "unchecked.pt"
    torch.save({"weights": torch.zeros(2)}, unchecked)
    cases.append((str(unchecked), "without checksum"))
    not_torch = tmp_path / "text.pt"
    not_torch.write_text("hello")
    cases.append((str(not_torch), "not a readable checkpoint"))
    for init_from, message in cases:
        cfg = RunConfig(objective="bits", **TINY, init_from=init_from)
        with pytest.raises(ValueError, match=message):
            train(cfg, tmp_path / f"run-{abs(hash(init_from))}", progress=False)
    # a checkpoint of another model: dino's cluster head cannot take bits weights
    cfg = RunConfig(objective="dino", **TINY, init_from=str(run_dir))
    with pytest.raises(ValueError, match="do not fit this run's model"):
        train(cfg, tmp_path / "dino", progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        resolve_init_from(str(tmp_path / "x-s{seed}"), 7)
