"""Distributed semantics: two gloo processes, each with half a batch, compute what one process
computes on the whole batch; a single process calls no collective.

One spawn runs every check; each rank saves its results to a file, asserted in the parent.
"""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import sslobjectives.functional as Fn
from sslobjectives._dist import gather_rows
from sslobjectives.objectives import build

WORLD = 2
BATCH, K, N_VIEWS, N_TEACHER = 8, 6, 4, 2
STEPS = 2

CASES = {
    "dino": ("dino", {"teacher_temp": 0.5, "warmup_teacher_temp": 0.3}),
    "kl_inverse_prior_batch": ("kl_inverse_prior", {"teacher_temp": 0.3}),
    "kl_inverse_prior_running": ("kl_inverse_prior", {"teacher_temp": 0.3, "prior_momentum": 0.7}),
    "sinkhorn": ("sinkhorn", {"teacher_temp": 0.3, "n_iter": 4}),
    "bits": ("bits", {}),
    "bits_soft": ("bits", {"targets": "soft", "tau": 0.5}),
    "simdino": ("simdino", {"gamma": 0.1, "rate_input": "student"}),
    "simdino_default": ("simdino", {}),
    "sinkhorn_posterior": ("sinkhorn", {"teacher_temp": 0.3, "start": "posterior"}),
}


def batches(step: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1234 + step)
    return [2 * torch.randn(BATCH, K, generator=gen, dtype=torch.float64) for _ in range(N_VIEWS)]


def teacher_batches(step: int) -> list[torch.Tensor]:
    """The teacher's outputs of the global views: not the student's, so that an objective
    reading its targets from the student would change the results."""
    gen = torch.Generator().manual_seed(4321 + step)
    return [
        v + torch.randn(v.shape, generator=gen, dtype=v.dtype) for v in batches(step)[:N_TEACHER]
    ]


def run_all(rank: int, world: int) -> dict:
    """Every objective over STEPS steps on this rank's rows; loss, input gradients, state."""
    rows = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    results = {}
    for case, (name, cfg) in CASES.items():
        obj = build(name, **cfg)
        for step in range(STEPS):
            views = [v[rows] for v in batches(step)]
            student = [v.clone().requires_grad_() for v in views]
            teacher = [v[rows] for v in teacher_batches(step)]
            out = obj(student, teacher, epoch=step)
            out.loss.backward()
            results[f"{case}/{step}/loss"] = out.loss.detach()
            for term, value in out.terms.items():
                results[f"{case}/{step}/{term}"] = value.detach()
            for stat, value in out.stats.items():  # diagnostics of the joined batch
                results[f"{case}/{step}/stats.{stat}"] = value
            results[f"{case}/{step}/grads"] = torch.stack([s.grad for s in student])
            for buffer in ("center", "prior"):
                if hasattr(obj, buffer) and getattr(obj, buffer).numel():
                    results[f"{case}/{step}/{buffer}"] = getattr(obj, buffer).clone()

    z = batches(0)[0][rows]
    wide = torch.cat([z, batches(1)[0][rows]], dim=1)
    for label, x in (("n_gt_d", z[:, :3]), ("n_lt_d", wide)):  # the joined batch has 8 rows
        x = x.clone().requires_grad_()
        rate = Fn.coding_rate(x, 0.5)
        rate.backward()
        results[f"coding_rate_{label}"] = rate.detach()
        results[f"coding_rate_{label}/grad"] = x.grad
    results["inverse_prior_normalize"] = Fn.inverse_prior_normalize(z, 0.3)
    results["center_normalize"] = Fn.center_normalize(z, 0.3)
    results["sinkhorn_knopp"] = Fn.sinkhorn_knopp(z, 0.3, n_iter=5)
    results["cluster_prior"] = Fn.cluster_prior(z, 0.3)
    results["cluster_prior_geometric"] = Fn.cluster_prior(z, 0.3, "geometric")
    results["jensen_gap"] = Fn.jensen_gap(z, 0.3)
    uneven = slice(0, 3) if world == 2 and rank == 0 else slice(3 * (world == 2), BATCH)
    results["gather_rows_uneven"] = gather_rows(batches(0)[0][uneven])  # 3 + 5 rows -> all 8
    results["rows"] = torch.tensor([rows.start, rows.stop])
    return results


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)  # two processes share a small machine
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        torch.save(run_all(rank, world), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(WORLD, _free_port(), str(out_dir)), nprocs=WORLD, join=True)
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD)]


@pytest.fixture(scope="module")
def single_results():
    return run_all(0, 1)


ROW_WISE = ("grads", "grad", "inverse_prior_normalize", "center_normalize", "sinkhorn_knopp")


def test_two_processes_equal_one_process_on_the_joined_batch(distributed_results, single_results):
    assert set(distributed_results[0]) == set(single_results)
    checked = set()
    for key, full in single_results.items():
        if key == "rows":
            continue
        for part in distributed_results:
            start, stop = part["rows"].tolist()
            expected = full
            if key.split("/")[-1] in ROW_WISE:  # each rank holds its own rows
                expected = full[..., start:stop, :]
            torch.testing.assert_close(part[key], expected, atol=1e-5, rtol=1e-5, msg=key)
        checked.add(key.split("/")[0])
    assert set(CASES) <= checked
    for key in (
        "dino/1/center",
        "dino/1/stats.marginal_entropy",
        "dino/1/stats.centering_kl",
        "sinkhorn/0/stats.sample_entropy",
        "bits/1/stats.bit_correlation",
        "simdino/0/stats.effective_rank",
        "kl_inverse_prior_running/1/prior",
        "coding_rate_n_gt_d",
        "coding_rate_n_lt_d",
    ):
        assert key in single_results


# --------------------------------------------------------------------------- one process


def _forbid(*args, **kwargs):
    raise AssertionError("a collective was called in a single process")


def test_single_process_calls_no_collective(monkeypatch):
    for name in (
        "all_reduce",
        "all_gather",
        "all_gather_into_tensor",
        "reduce_scatter",
        "broadcast",
        "reduce",
        "barrier",
        "get_world_size",
        "get_rank",
    ):
        monkeypatch.setattr(dist, name, _forbid)
    results = run_all(0, 1)
    assert all(torch.isfinite(v.double()).all() for v in results.values())
