"""Smoke run of benchmarks/training.py at a tiny size (no timing asserts)."""

import pytest

from benchmarks.training import format_table, measure
from sslobjectives.train import RunConfig


def test_training_benchmark_measures_step_and_objective_share():
    cfg = RunConfig(batch_size=256, head_dim=32, head_hidden=64, n_local=0, epochs=3)
    row = measure("bits", steps=2, config=cfg)
    assert row["step_ms"] > 0 and row["objective_ms"] > 0
    assert 0 < row["objective_frac"] == pytest.approx(row["objective_ms"] / row["step_ms"])
    assert row["images_per_s"] == pytest.approx(256 / (row["step_ms"] / 1e3))
    assert "bits" in format_table([row])
