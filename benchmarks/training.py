"""Training throughput and the objective's share of a training step, per objective.

``python -m benchmarks.training [--steps N] [--json PATH]``

For each objective at the default run config (``RunConfig()``: digits, the CNN backbone,
batch 128, 2 global + 2 local views): a warm-up epoch, then ``--steps`` timed training steps
(augmentation, student and teacher forward, objective, backward, optimiser, EMA). The logits
the objective saw are captured, and the objective's forward+backward is timed alone on them
(leaf tensors, same shapes), without and with its diagnostics; the trainer computes the
diagnostics every ``STATS_EVERY`` steps, so the objective's cost per step is the hot path
plus that share of the diagnostics. Figures are medians.

Target (issue 4): the objective costs under 10% of a training step for every objective.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from sslobjectives.objectives import names
from sslobjectives.train import RunConfig, Trainer
from sslobjectives.train.trainer import STATS_EVERY

TARGET = 0.10


class _Capture(nn.Module):
    """Passes calls through to the objective and keeps the last inputs."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.last: tuple[list[torch.Tensor], list[torch.Tensor], float | None] | None = None

    def forward(self, student, teacher, epoch=None, stats=True):
        self.last = ([s.detach().clone() for s in student], [t.clone() for t in teacher], epoch)
        return self.inner(student, teacher, epoch=epoch, stats=stats)


def _time_objective(objective: nn.Module, captured, repeats: int, stats: bool) -> float:
    student, teacher, epoch = captured
    times = []
    for _ in range(repeats):
        leaves = [s.clone().requires_grad_(True) for s in student]
        t0 = time.perf_counter()
        objective(leaves, teacher, epoch=epoch, stats=stats).loss.backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(objective: str, steps: int, config: RunConfig | None = None) -> dict[str, float]:
    base = config or RunConfig()
    cfg = base.replace(objective=objective, epochs=max(base.epochs, 3))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp, progress=False)
        capture = _Capture(trainer.objective)
        trainer.objective = capture
        trainer.train_epoch(0)  # warm-up
        step_times = []
        epoch = 1
        while len(step_times) < steps:
            before = trainer.step_time
            trainer.train_epoch(epoch)
            per_step = (trainer.step_time - before) / trainer.steps_per_epoch
            step_times += [per_step] * min(trainer.steps_per_epoch, steps - len(step_times))
            epoch += 1
        step = statistics.median(step_times)
        repeats = max(steps, 10)
        hot = _time_objective(capture.inner, capture.last, repeats, stats=False)
        with_stats = _time_objective(capture.inner, capture.last, repeats, stats=True)
    # what training pays per step on average: diagnostics run every STATS_EVERY steps
    obj = hot + max(with_stats - hot, 0.0) / STATS_EVERY
    return {
        "objective": objective,
        "step_ms": step * 1e3,
        "images_per_s": cfg.batch_size / step,
        "objective_ms": obj * 1e3,
        "objective_no_stats_ms": hot * 1e3,
        "objective_with_stats_ms": with_stats * 1e3,
        "objective_frac": obj / step,
        "target_met": obj / step < TARGET,
    }


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'objective':18} {'step ms':>8} {'img/s':>8} {'obj ms':>8} {'(hot':>6} {'+stats)':>8} "
        f"{'obj share':>9}  target"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['objective']:18} {r['step_ms']:8.1f} {r['images_per_s']:8.0f} "
            f"{r['objective_ms']:8.2f} {r['objective_no_stats_ms']:6.2f} "
            f"{r['objective_with_stats_ms']:8.2f} {100 * r['objective_frac']:8.1f}%  "
            f"{'met' if r['target_met'] else 'NOT met'} (<{100 * TARGET:.0f}%)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training", description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--objectives", default=",".join(names()))
    parser.add_argument("--json", type=Path, default=Path("results/training_benchmark.json"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (as sslobj compare)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.objectives.split(","):
        print(f"measuring {name} ...", flush=True)
        rows.append(measure(name, args.steps))
    print(format_table(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    machine = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
