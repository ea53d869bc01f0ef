"""benchmarks/: a smoke run of the suite, and the agreements its ratios rest on.

The reference implementations must compute the library's loss and gradients (otherwise the
"vs reference" ratio compares different work), and the compiled objectives the eager ones.
No timing is asserted: figures on a shared CI machine mean nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ sits beside the package, not inside it
    sys.path.insert(0, str(ROOT))

from benchmarks import suite  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402
from benchmarks.measure import peak_bytes  # noqa: E402
from benchmarks.reference import coding_rate_logdet, make_reference  # noqa: E402
from sslobjectives import functional as Fn  # noqa: E402
from sslobjectives.objectives import build  # noqa: E402

CPU = torch.device("cpu")


def _views(dim, n_views=4, n_teacher=2, batch=16, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)

    def logits():
        return torch.randn(batch, dim, generator=gen, dtype=dtype)

    student = [logits().requires_grad_() for _ in range(n_views)]
    return student, [logits() for _ in range(n_teacher)]


def _loss_and_grads(fn, student, teacher):
    loss = fn(student, teacher)
    return loss.detach(), torch.autograd.grad(loss, student)


def _assert_same(a, b, rtol, atol):
    torch.testing.assert_close(a[0], b[0], rtol=rtol, atol=atol)
    for ga, gb in zip(a[1], b[1], strict=True):
        torch.testing.assert_close(ga, gb, rtol=rtol, atol=atol)


CASES = [(name, {}) for name in suite.OBJECTIVES] + [
    ("bits", {"targets": "soft", "tau": 0.5}),
    ("sinkhorn", {"n_iter": 5, "teacher_temp": 0.1}),
    ("sinkhorn", {"start": "posterior"}),
    ("simdino", {"rate_input": "student", "gamma": 0.01}),
    ("dino", {"center_momentum": 0.5, "student_temp": 0.2}),
]


@pytest.mark.parametrize(("name", "cfg"), CASES, ids=lambda c: str(c) if c else "default")
@pytest.mark.parametrize("n_views", [2, 8])
def test_reference_matches_library_loss_and_gradients(name, cfg, n_views):
    """Two consecutive calls, so DINO's running center is compared as well."""
    dim = 24
    objective = build(name, **cfg)
    reference = make_reference(name, objective, dim, CPU)
    for call in range(2):
        student, teacher = _views(dim, n_views, seed=call)
        lib = _loss_and_grads(lambda s, t: objective(s, t, stats=False).loss, student, teacher)
        ref = _loss_and_grads(reference, student, teacher)
        _assert_same(lib, ref, rtol=1e-9, atol=1e-11)


def test_reference_refuses_a_running_prior():
    with pytest.raises(ValueError, match="batch prior"):
        make_reference("kl_inverse_prior", build("kl_inverse_prior", prior_momentum=0.9), 8, CPU)


@pytest.mark.parametrize(("n", "d"), [(6, 20), (20, 6), (8, 8)])
def test_logdet_coding_rate_matches_the_library(n, d):
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    z.requires_grad_()
    lib = _loss_and_grads(lambda s, t: Fn.coding_rate(s[0], 0.5), [z], [])
    ref = _loss_and_grads(lambda s, t: coding_rate_logdet(s[0], 0.5), [z], [])
    _assert_same(lib, ref, rtol=1e-9, atol=1e-11)


def test_compiled_objectives_match_eager_without_graph_breaks():
    """Inductor, fullgraph=True: a graph break in the hot path (stats=False) is an error.

    All five objectives in one compiled function: one compilation instead of five keeps the
    test's cold-cache cost down (C++ code generation dominates it).
    """
    torch._dynamo.reset()
    student, teacher = _views(32, n_views=4, dtype=torch.float32)
    compiled_objectives = [build(name) for name in suite.OBJECTIVES]

    @torch.compile(fullgraph=True)
    def all_losses(s, t):
        return [objective(s, t, stats=False).loss for objective in compiled_objectives]

    compiled = all_losses(student, teacher)
    for name, loss in zip(suite.OBJECTIVES, compiled, strict=True):
        comp = (loss.detach(), torch.autograd.grad(loss, student, retain_graph=True))
        objective = build(name)
        eager = _loss_and_grads(
            lambda s, t, o=objective: o(s, t, stats=False).loss, student, teacher
        )
        _assert_same(comp, eager, rtol=1e-5, atol=1e-6)


def test_peak_bytes_counts_what_a_step_allocates():
    n = 1 << 20

    def step():
        a = torch.ones(n)  # 4 MiB, freed before b exists
        del a
        b = torch.ones(2 * n)  # 8 MiB, returned
        return b

    def other():
        return torch.ones(n // 2)  # 2 MiB

    peaks = peak_bytes({"step": step, "other": other}, CPU, {"step": 100, "other": 0})
    assert 100 + 8 * n <= peaks["step"] < 100 + 12 * n
    assert 2 * n <= peaks["other"] < 4 * n


def test_tiny_suite_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--tiny", "--rounds", "1", "--json", str(out)]) == 0  # eager only
    table = capsys.readouterr().out
    report = json.loads(out.read_text())
    objectives = [r["objective"] for r in report["rows"]]
    assert objectives == [*suite.OBJECTIVES, "coding_rate", "coding_rate"]
    for name in suite.OBJECTIVES:
        assert f"| {name} | tiny |" in table
    for row in report["rows"]:
        assert row["ms"]["library/eager"] > 0
        assert set(row["met"]) == set(row["limits"]) == set(row["ratios"]) - set()
        assert row["agreement"]["reference"]["grad_rel"] < 1e-4
    assert main(["--render", str(out)]) == 0
    assert capsys.readouterr().out.strip() == suite.format_table(report)


def test_tiny_suite_compiled_path(tmp_path):
    """The compiled columns, through aot_eager (dynamo with fullgraph, no code generation)."""
    out = tmp_path / "bench.json"
    args = ["--tiny", "--objectives", "kl_inverse_prior", "--rounds", "1", "--no-coding-rate"]
    assert main([*args, "--backend", "aot_eager", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["graphs"]["graph_breaks"] == 0
    assert set(row["ratios"]["vs_reference"]) == {"eager", "compiled"}
    assert row["agreement"]["compiled"]["grad_rel"] < 1e-5


def test_unknown_size_or_objective_is_refused(capsys):
    assert main(["--sizes", "huge"]) == 2
    assert "valid" in capsys.readouterr().err


def test_sslobj_bench_forwards_its_options_to_benchmarks(capsys):
    from sslobjectives import cli

    assert cli.main(["bench", "--sizes", "huge"]) == 2
    assert "unknown size" in capsys.readouterr().err


def test_sslobj_bench_says_when_benchmarks_is_absent(monkeypatch, capsys):
    from sslobjectives import cli

    monkeypatch.setattr(Path, "is_file", lambda self: False)
    assert cli.main(["bench", "--tiny"]) == 2
    err = capsys.readouterr().err
    assert "not installed with the package" in err and "clone of the source repository" in err
    assert len(err.strip().splitlines()) == 1


def test_knn_benchmark_smoke_checks_both_searches_agree(tmp_path, capsys, monkeypatch):
    """benchmarks/knn.py: a tiny run writes its report; both searches give the same k-NN;
    a search that disagrees with the full sort is refused."""
    from benchmarks import knn

    out = tmp_path / "knn.json"
    assert knn.main(["--tiny", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["search_ms"]["topk"] > 0 and report["search_ratio"] > 0
    assert "ratio" in capsys.readouterr().out
    monkeypatch.setattr(knn.metrics, "_top_k_stable", lambda sim, k: (sim[:, :k], sim[:, :k]))
    with pytest.raises(AssertionError, match="disagree"):
        knn.run(60, 200, 16, 5, rounds=1)


def test_knn_benchmark_figures_in_results_md_are_the_committed_reports():
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    report = json.loads((root / "results-knn.json").read_text())
    text = " ".join((root / "RESULTS.md").read_text().split())
    s, k = report["search_ms"], report["knn_ms"]
    assert f"{s['topk']:.1f} ms against {s['full_sort']:.1f} ms" in text
    assert f"a median ratio of {report['search_ratio']:.3f}" in text
    assert f"{k['topk']:.1f} ms against {k['full_sort']:.1f} ms ({report['knn_ratio']:.3f})" in text
    assert report["search_ratio"] < report["target_search_ratio"]
