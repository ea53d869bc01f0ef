"""The trainer: resume equals uninterrupted, failures are recorded, configs are validated."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sslobjectives.data import DataError, load_dataset
from sslobjectives.eval.run import NEEDS_LABELS
from sslobjectives.objectives.bits import BITS
from sslobjectives.schedules import RunSchedules
from sslobjectives.train import RunConfig, Trainer, read_result, train
from sslobjectives.train.datacheck import check_data
from sslobjectives.train.rundir import read_checkpoint
from sslobjectives.train.trainer import CHECKPOINT_FILE

TINY = dict(
    dataset="digits",
    epochs=3,
    batch_size=256,
    n_local=1,
    head_dim=32,
    head_hidden=64,
    bottleneck_dim=16,
    warmup_epochs=1,
    knn_k=5,
)


def tiny(**kw) -> RunConfig:
    return RunConfig(**{**TINY, **kw})


@pytest.mark.parametrize("objective", ["dino", "bits"])
def test_resume_reaches_the_same_result_as_an_uninterrupted_run(tmp_path, monkeypatch, objective):
    cfg = tiny(objective=objective, reset_period=1 if objective == "bits" else None)
    full = train(cfg, tmp_path / "full", progress=False)

    original = Trainer.train_epoch

    def killed_at_epoch_2(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt("killed")
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", killed_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed", progress=False)
    assert read_result(tmp_path / "resumed") is None  # a killed run has no result
    state = read_checkpoint(tmp_path / "resumed" / CHECKPOINT_FILE)[1]
    assert state["epoch"] == 2
    monkeypatch.setattr(Trainer, "train_epoch", original)
    resumed = train(cfg, tmp_path / "resumed", resume=True, progress=False)

    assert resumed["status"] == full["status"] == "done"
    for a, b in zip(full["history"], resumed["history"], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-6)
        assert a["knn"] == pytest.approx(b["knn"], abs=1e-9)
    for key in ("knn", "linear", "map", "effective_rank"):
        assert full["final"][key] == pytest.approx(resumed["final"][key], rel=1e-5, abs=1e-6)
    assert full["head_resets"] == resumed["head_resets"] == [1, 2] * (objective == "bits")


def test_finished_run_is_not_retrained_and_not_overwritten(tmp_path):
    cfg = tiny(epochs=1)
    first = train(cfg, tmp_path / "r", progress=False)
    stamp = (tmp_path / "r" / "result.json").stat().st_mtime_ns
    again = train(cfg, tmp_path / "r", resume=True, progress=False)
    assert again == json.loads((tmp_path / "r" / "result.json").read_text())
    assert again["run_id"] == first["run_id"]
    assert (tmp_path / "r" / "result.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, tmp_path / "r", progress=False)


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path, monkeypatch):
    original = Trainer.train_epoch

    def killed(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", killed)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(), tmp_path / "r", progress=False)
    monkeypatch.setattr(Trainer, "train_epoch", original)
    with pytest.raises(
        ValueError, match=r"checkpoint.pt is the checkpoint of run \w+ \(dino seed 0\)"
    ):
        train(tiny(lr=0.5), tmp_path / "r", resume=True, progress=False)


def test_non_finite_loss_stops_names_step_and_term_keeps_checkpoint(tmp_path, monkeypatch):
    original = BITS.compute
    calls = {"n": 0}

    def poisoned(self, student, teacher, epoch, stats):
        out = original(self, student, teacher, epoch, stats)
        calls["n"] += 1
        if epoch is not None and epoch >= 1.0:  # second epoch: BCE blows up
            out.terms["bce"] = out.terms["bce"] * float("nan")
            out.loss = out.terms["bce"] - out.terms["rate"]
        return out

    monkeypatch.setattr(BITS, "compute", poisoned)
    result = train(tiny(objective="bits"), tmp_path / "r", progress=False)
    assert result["status"] == "failed"
    assert "'bce'" in result["error"] and "step 5" in result["error"]
    assert result["failed_step"] == 5  # 1347 // 256 = 5 steps per epoch
    on_disk = read_result(tmp_path / "r")
    assert on_disk["status"] == "failed" and on_disk["error"] == result["error"]
    state = read_checkpoint(tmp_path / "r" / CHECKPOINT_FILE)[1]
    assert state["epoch"] == 1  # the last good checkpoint, from before the failure
    assert len(result["history"]) == 1


def test_collapse_is_flagged_not_hidden(tmp_path):
    cfg = tiny(objective="dino", epochs=1, collapse_rank=1e9)
    result = train(cfg, tmp_path / "r", progress=False)
    assert result["status"] == "done"
    assert result["collapsed"] is True
    assert "effective rank" in result["collapse_reason"]


def test_result_records_config_split_versions_and_metrics(tmp_path):
    result = train(tiny(objective="simdino", epochs=1), tmp_path / "r", progress=False)
    assert result["config"]["objective"] == "simdino"
    assert set(result["split"]) >= {"seed", "n_train", "n_test", "train_hash"}
    assert result["versions"]["torch"] == torch.__version__
    for key in ("knn", "linear", "map", "effective_rank"):
        assert 0.0 <= result["final"][key] <= max(1.0, result["final"]["effective_rank"])
    assert result["final"]["knn"] > 0.2  # far above chance (0.1) after one epoch on digits
    assert 0 < result["objective_forward_frac"] < 1


def test_lr_schedule_warms_up_then_decays():
    cfg = tiny(epochs=10, warmup_epochs=2, lr=1e-3, min_lr=1e-5)
    lrs = RunSchedules.for_run(cfg, 10).lr
    assert len(lrs) == 100
    assert lrs[0] == pytest.approx(1e-3 / 20) and lrs[19] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[19:], lrs[20:], strict=False))
    assert lrs[-1] == pytest.approx(1e-5, rel=0.05)


def test_config_errors_name_every_problem_and_the_nearest_key():
    with pytest.raises(ValueError, match="epochs must be int.*batch_size must be int"):
        RunConfig(epochs="3", batch_size=1.5)
    with pytest.raises(ValueError, match="did you mean 'epochs'"):
        RunConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="did you mean 'beta'"):
        RunConfig(objective="bits", objective_cfg={"bta": 0.1})
    with pytest.raises(ValueError, match="unknown objective 'dinoo'.*did you mean 'dino'"):
        RunConfig(objective="dinoo")


def test_run_id_ignores_the_label_and_changes_with_settings():
    assert tiny(label="a").run_id == tiny(label="b").run_id
    assert tiny().run_id != tiny(seed=1).run_id
    assert (
        tiny(objective="bits").run_id != tiny(objective="bits", objective_cfg={"beta": 0.2}).run_id
    )


def test_teacher_temperature_warmup_scales_with_epochs():
    assert tiny(epochs=10).resolved_objective_cfg()["warmup_teacher_temp_epochs"] == 3.0
    explicit = tiny(objective_cfg={"warmup_teacher_temp_epochs": 1})
    assert explicit.resolved_objective_cfg()["warmup_teacher_temp_epochs"] == 1
    assert "warmup_teacher_temp_epochs" not in tiny(objective="bits").resolved_objective_cfg()


def test_the_trainer_hands_the_objective_the_runs_teacher_temperature_schedule(tmp_path):
    trainer = Trainer(tiny(objective="kl_inverse_prior", epochs=10), tmp_path, progress=False)
    assert trainer.schedules.teacher_temp.warmup_epochs == 3.0
    assert trainer.objective.teacher_temp is trainer.schedules.teacher_temp


def test_final_cluster_entropy_is_read_at_the_teacher_temperature(tmp_path):
    """At temperature 1 the unit-norm prototype logits give a near-uniform posterior whatever
    was learnt (entropy ~ log K); at the teacher's temperature the entropy is informative."""
    import math

    result = train(tiny(objective="dino", epochs=1), tmp_path / "r", progress=False)
    final = result["final"]
    assert final["teacher_temp"] == pytest.approx(0.07)
    assert final["sample_entropy"] < math.log(32) - 0.5
    assert sum(final["cluster_usage"]) == 450  # every test image assigned to one cluster


def test_diagnostics_are_sampled_every_few_steps_and_on_the_last(tmp_path):
    from sslobjectives.train.trainer import STATS_EVERY

    trainer = Trainer(tiny(objective="bits", epochs=1, batch_size=64), tmp_path, progress=False)
    n = trainer.steps_per_epoch  # 1347 // 64 = 21
    due = [it for it in range(n) if trainer._stats_due(it)]
    assert due == [*range(0, n, STATS_EVERY), n - 1] or due == list(range(0, n, STATS_EVERY))
    record = trainer.train_epoch(0)
    assert {"loss", "bce", "rate", "bit_entropy", "dead_bits"} <= set(record)


# ------------------------------------------------------------------ user data (issue 14)


def _digits_npz(path, labels=True):
    """sklearn's digits as a user saves them: float pixels in 0..16, keys X (and Y)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    arrays = {"X": bunch.images}
    if labels:
        arrays["Y"] = bunch.target
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("objective", ["dino", "bits"])
def test_unlabelled_data_trains_and_reports_label_free_diagnostics(tmp_path, objective):
    data = _digits_npz(tmp_path / "unlabelled.npz", labels=False)
    result = train(tiny(objective=objective, dataset=data), tmp_path / "run", progress=False)
    assert result["status"] == "done"
    final = result["final"]
    assert final["labels"] == NEEDS_LABELS
    assert not {"knn", "linear", "map"} & set(final)
    assert final["effective_rank"] > 1
    entropy = "bit_entropy" if objective == "bits" else "posterior_marginal_entropy"
    assert final[entropy] > 0
    assert all("knn" not in h and math.isfinite(h["loss"]) for h in result["history"])
    assert result["dataset"]["labelled"] is False
    assert result["dataset"]["scaling"] == {"method": "min-max", "min": 0.0, "max": 16.0}
    assert read_result(tmp_path / "run")["final"]["labels"] == NEEDS_LABELS


def test_eval_dataset_evaluates_on_a_separate_labelled_set(tmp_path):
    data = _digits_npz(tmp_path / "unlabelled.npz", labels=False)
    cfg = tiny(dataset=data, eval_dataset="digits")
    result = train(cfg, tmp_path / "run", progress=False)
    assert result["status"] == "done"
    assert 0.2 < result["final"]["knn"] <= 1 and "labels" not in result["final"]
    assert all("knn" in h for h in result["history"])
    assert result["eval_dataset"]["name"] == "digits"
    assert result["eval_dataset"]["split"] == load_dataset("digits").split


def test_eval_dataset_key_leaves_the_ids_of_configs_without_it_unchanged():
    # the id of the default config before eval_dataset existed (and of main at that time)
    assert RunConfig().run_id == "57247054513e"
    assert RunConfig(eval_dataset="digits").run_id != RunConfig().run_id
    assert RunConfig.from_dict({"eval_dataset": "shapes"}).eval_dataset == "shapes"


def test_eval_dataset_must_be_labelled_and_of_the_same_shape(tmp_path):
    unlabelled = _digits_npz(tmp_path / "u.npz", labels=False)
    with pytest.raises(DataError, match="evaluation set has no labels"):
        check_data([tiny(dataset="digits", eval_dataset=unlabelled)])
    with pytest.raises(DataError, match=r"shape \(1, 32, 32\).*\(1, 8, 8\)"):
        check_data([tiny(dataset="digits", eval_dataset="shapes")])


def test_vectors_train_with_the_mlp_backbone_and_others_refuse_them(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    v = rng.normal(size=(300, 12)) + 3.0 * np.eye(3)[y].repeat(4, axis=1)
    np.savez(tmp_path / "v.npz", x=v, y=y)
    data = str(tmp_path / "v.npz")
    cfg = tiny(dataset=data, backbone="mlp", batch_size=64)
    (note,) = check_data([cfg])
    assert "scaled min-max" in note
    result = train(cfg, tmp_path / "run", progress=False)
    assert result["status"] == "done" and result["final"]["knn"] > 0.5
    with pytest.raises(DataError, match="use the mlp backbone"):
        check_data([cfg.replace(backbone="cnn")])
    with pytest.raises(DataError, match="use the mlp backbone"):
        Trainer(cfg.replace(backbone="vit"), tmp_path / "vit", progress=False)
def test_head_kwargs_reach_the_head_are_checked_and_keep_old_run_ids():
    from sslobjectives.train.trainer import build_run_student, dataset_for

    # The id of the default config before head_kwargs existed (tests/test_config_values.py
    # pins it too): an unset head_kwargs must not change any earlier run's id.
    assert RunConfig().run_id == "57247054513e"
    fixed = tiny(objective="bits", head_kwargs={"logit_norm": "batch"})
    assert fixed.run_id != tiny(objective="bits").run_id
    assert fixed.to_dict()["head_kwargs"] == {"logit_norm": "batch"}
    student = build_run_student(fixed, dataset_for(fixed), "binary")
    assert isinstance(student.head.norm, torch.nn.BatchNorm1d)
    plain = build_run_student(tiny(objective="bits"), dataset_for(fixed), "binary")
    assert isinstance(plain.head.norm, torch.nn.Identity)
    with pytest.raises(ValueError, match="unknown option 'logit_nrm'.*did you mean 'logit_norm'"):
        tiny(objective="bits", head_kwargs={"logit_nrm": "batch"})
    with pytest.raises(ValueError, match="unknown option 'logit_norm' for the cluster head"):
        tiny(objective="dino", head_kwargs={"logit_norm": "batch"})
    with pytest.raises(ValueError, match="logit_norm must be one of none, batch, got 'layer'"):
        tiny(objective="bits", head_kwargs={"logit_norm": "layer"})


def test_bits_channel_opens_with_the_logit_norm(tmp_path):
    """With the plain head the teacher logits stay near 0 and the BCE near B ln 2 (channel
    closed); the affine-free BatchNorm on the logits opens it."""
    import math

    from sslobjectives.eval.run import extract

    def channel(head_kwargs, name):
        # batch 64: 63 steps (batch 256 gives 15, too few for the BCE to move)
        cfg = tiny(objective="bits", epochs=3, batch_size=64, head_kwargs=head_kwargs)
        trainer = Trainer(cfg, tmp_path / name, progress=False)
        result = trainer.run()
        _, logits = extract(trainer.teacher.module, trainer.data.x_test, trainer.device)
        bce = result["history"][-1]["bce"] / (cfg.head_dim * math.log(2))
        return float(logits.abs().median()), bce

    closed_scale, bce = channel({}, "closed")
    assert closed_scale < 0.02 and bce > 0.95
    # after 3 tiny epochs the raw logits' variance is still comparable to BatchNorm's eps,
    # which keeps the normalised scale below 1; it is an order of magnitude above closed
    scale, bce = channel({"logit_norm": "batch"}, "open")
    assert scale > 10 * closed_scale and bce < 0.92
