"""eval/run.py: each objective family supplies its end-of-run statistics; two names for the two
marginal entropies; the collapse rule reads what the table shows."""

import json
import math

import pytest
import torch

from sslobjectives.eval.run import collapse_reason
from sslobjectives.objectives import REGISTRY, build
from sslobjectives.results import TABLE_METRICS, load_results
from sslobjectives.train import RunConfig, RunDir, train
from sslobjectives.train.rundir import upgrade_result

K = 16


def _collapsed_logits(n: int = 64) -> torch.Tensor:
    """Every test image sends the teacher the same peaked posterior (one cluster wins)."""
    logits = torch.zeros(n, K)
    logits[:, 0] = 1.0
    return logits + 0.001 * torch.randn(n, K)


def test_sinkhorn_collapse_is_seen_by_the_rule_through_the_posterior_entropy():
    # Sinkhorn balances the teacher by construction: its per-step (normalised) marginal
    # entropy is near log K even for a collapsed representation, so a rule reading it could
    # never fire. The end-of-run statistic is the raw posterior's, and the rule reads it.
    obj = build("sinkhorn")
    h = _collapsed_logits()
    step = obj([h, h.clone()], [h, h.clone()])
    assert float(step.stats["marginal_entropy"]) > 0.9 * math.log(K)
    final = {"effective_rank": 10.0, **obj.final_stats(h)}
    assert "marginal_entropy" not in final
    assert final["posterior_marginal_entropy"] < 0.05
    reason = collapse_reason(final, min_rank=2.0, entropy_frac=0.1, n_clusters=K)
    assert reason is not None and "posterior marginal entropy" in reason
    assert final["cluster_usage"][0] == h.shape[0]


def test_collapse_rule_reads_final_metrics_in_order():
    kw = dict(min_rank=2.0, entropy_frac=0.5, n_clusters=K)
    assert collapse_reason({"effective_rank": 1.0}, **kw).startswith("effective rank 1.000")
    assert collapse_reason({"effective_rank": 3.0, "bit_entropy": 0.2}, **kw).startswith(
        "mean bit entropy 0.200"
    )
    fine = {"effective_rank": 3.0, "posterior_marginal_entropy": math.log(K), "bit_entropy": 0.9}
    assert collapse_reason(fine, **kw) is None
    # the history's normalised-teacher key is not what the rule reads
    assert collapse_reason({"effective_rank": 3.0, "marginal_entropy": 0.0}, **kw) is None


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_family_supplies_its_own_end_of_run_statistics(name):
    obj = build(name)
    h_tr, h_te = torch.randn(20, K), torch.randn(10, K)
    codes = obj.final_codes(h_tr, h_te, with_factors=True)
    stats = obj.final_stats(h_te)
    kind = obj.head_kind
    if kind == "binary":
        assert set(codes) == {"codes_train", "codes_test"}
        assert codes["codes_test"].shape == h_te.shape
        assert {"bit_entropy", "dead_bits", "bit_correlation", "bit_entropy_per_bit"} <= set(stats)
        assert len(stats["bit_entropy_per_bit"]) == K
    elif kind == "cluster":
        assert set(codes) == {"assign_test"}
        assert obj.final_codes(h_tr, h_te, with_factors=False) == {}
        assert {"teacher_temp", "posterior_marginal_entropy", "sample_entropy"} <= set(stats)
        assert stats["teacher_temp"] == obj.config.schedule(None)
    else:
        assert codes == {} and stats == {}
    json.dumps(stats)  # JSON-ready


def test_old_results_are_read_under_the_new_key(tmp_path):
    old = {
        "status": "done",
        "final": {"knn": 0.9, "marginal_entropy": 4.5},
        "history": [{"epoch": 0, "marginal_entropy": 5.0}],
    }
    run = RunDir(tmp_path / "runs" / "a")
    run.path.mkdir(parents=True)
    run.result_path.write_text(json.dumps(old))
    read = run.result()
    assert read["final"] == {"knn": 0.9, "posterior_marginal_entropy": 4.5}
    assert read["history"] == old["history"]  # the per-epoch key kept its name
    (loaded,) = load_results([tmp_path])
    assert loaded["final"]["posterior_marginal_entropy"] == 4.5
    assert "posterior_marginal_entropy" in TABLE_METRICS and "marginal_entropy" not in TABLE_METRICS
    new = {"final": {"posterior_marginal_entropy": 1.0}}
    assert upgrade_result(json.loads(json.dumps(new))) == new


def test_a_cluster_run_writes_the_posterior_entropy_under_its_name(tmp_path):
    cfg = RunConfig(
        objective="sinkhorn",
        dataset="digits",
        epochs=1,
        batch_size=256,
        n_local=1,
        head_dim=K,
        head_hidden=32,
        bottleneck_dim=8,
        warmup_epochs=0,
        knn_k=5,
    )
    result = train(cfg, tmp_path / "r", progress=False)
    final = result["final"]
    assert "posterior_marginal_entropy" in final and "marginal_entropy" not in final
    assert "marginal_entropy" in result["history"][-1]
    assert 0.0 <= final["posterior_marginal_entropy"] <= math.log(K) + 1e-6
    expected = collapse_reason(
        final, min_rank=cfg.collapse_rank, entropy_frac=cfg.collapse_entropy_frac, n_clusters=K
    )
    assert result["collapse_reason"] == expected
    assert result["collapsed"] == (expected is not None)
