"""The k-NN of backbone features as the runs measure it, centred, and standardised.

The runs' k-NN (DINO's protocol: L2-normalised features, cosine similarity, no centring) of
a ReLU + average-pooling backbone is held down by the direction all its features share (mean
cosine between samples 0.96 for the untrained testbed backbone): subtracting the training
mean, a label-free step like the raw-centred baseline's, lifts the untrained backbone's
k-NN on the testbed from about 0.69 to 0.86 (docs/TESTBED.md, "The untrained backbone,
centred"). This script prints, for trained runs (folders with ``config.json`` and
``checkpoint.pt``) and for their untrained backbones, the k-NN of the teacher's backbone
features raw, centred on the training mean, and standardised per feature:

    python scripts/testbed/centred_knn.py docs/compare/runs --csv docs/testbed-centred/runs.csv
    python scripts/testbed/centred_knn.py --untrained-only --seeds 0 1 2   # testbed recipe

Run folders are not in git (``sslobj compare`` writes them; ``docs/compare/runs`` after
``python scripts/regenerate-readme.py --run``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

from sslobjectives.eval.metrics import knn_accuracy
from sslobjectives.eval.run import extract
from sslobjectives.objectives import get
from sslobjectives.train.config import RunConfig
from sslobjectives.train.datacheck import eval_dataset_for
from sslobjectives.train.rundir import read_checkpoint
from sslobjectives.train.trainer import build_run_student, dataset_for

CPU = torch.device("cpu")


def knn_three_ways(model: torch.nn.Module, config: RunConfig) -> tuple[float, float, float]:
    """k-NN of ``model``'s backbone features on the data a run of ``config`` is evaluated on:
    raw (as the runs and baselines measure it), minus the training mean, and standardised
    per feature."""
    data = eval_dataset_for(config, dataset_for(config))
    f_tr, _ = extract(model, data.x_train, CPU)
    f_te, _ = extract(model, data.x_test, CPU)
    mean, std = f_tr.mean(0, keepdim=True), f_tr.std(0, keepdim=True) + 1e-6
    k = config.knn_k
    return (
        knn_accuracy(f_tr, data.y_train, f_te, data.y_test, k=k),
        knn_accuracy(f_tr - mean, data.y_train, f_te - mean, data.y_test, k=k),
        knn_accuracy((f_tr - mean) / std, data.y_train, (f_te - mean) / std, data.y_test, k=k),
    )


def student_of(config: RunConfig) -> torch.nn.Module:
    """The run's student at initialisation (the untrained baseline's backbone and init)."""
    return build_run_student(config, dataset_for(config), get(config.objective).head_kind)


def testbed_config(seed: int) -> RunConfig:
    """A run of ``sslobj compare``'s default comparison (dino, the testbed recipe)."""
    from sslobjectives.compare import default_methods, plan_runs
    from sslobjectives.testbed import TESTBED

    methods = [m for m in default_methods(TESTBED.run["epochs"], TESTBED) if m.label == "dino"]
    return plan_runs(methods, [seed], TESTBED.base())[0]


def run_folders(paths: list[Path]) -> list[Path]:
    """The run folders (``config.json`` and ``checkpoint.pt``) among ``paths``, each a run
    folder or a folder of run folders."""
    folders: list[Path] = []
    for path in paths:
        folders += [path] if (path / "config.json").is_file() else sorted(path.glob("*/"))
    return [f for f in folders if (f / "checkpoint.pt").is_file()]


def run_config_of(folder: Path) -> RunConfig:
    """The run's config, from its ``config.json``."""
    return RunConfig.from_dict(json.loads((folder / "config.json").read_text()))


def load_teacher(model: torch.nn.Module, folder: Path) -> dict:
    """Load the run's final EMA teacher into ``model`` (a student of the run's config) and
    return the checkpoint's state (the objective's state is under ``"objective"``)."""
    state = read_checkpoint(folder / "checkpoint.pt", map_location=CPU)[1]
    # the EMA teacher's state holds its student-shaped module under "module."
    model.load_state_dict({k.removeprefix("module."): v for k, v in state["teacher"].items()})
    return state


def run_folder(folder: Path) -> dict[str, object]:
    config = run_config_of(folder)
    model = student_of(config)
    untrained = knn_three_ways(model, config)
    load_teacher(model, folder)
    trained = knn_three_ways(model, config)
    return {"label": config.display_name, "seed": config.seed, "untrained": untrained,
            "trained": trained}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="*", type=Path, help="run folders, or folders of run folders")
    p.add_argument("--untrained-only", action="store_true", help="the testbed's untrained runs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--csv", type=Path, help="also write the per-run table to this CSV")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print("| run | seed | untrained raw / centred / standardised | trained raw / centred / std |")
    print("|---|---|---|---|")
    if args.untrained_only:
        for seed in args.seeds:
            config = testbed_config(seed)
            u = knn_three_ways(student_of(config), config)
            print(f"| untrained | {seed} | {u[0]:.3f} / {u[1]:.3f} / {u[2]:.3f} | |")
        return 0
    rows = [run_folder(f) for f in run_folders(args.runs)]
    if not rows:
        print("no run folders with config.json and checkpoint.pt given", file=sys.stderr)
        return 2
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(
                [
                    "label",
                    "seed",
                    *(
                        f"{w}_{m}"
                        for w in ("untrained", "trained")
                        for m in ("raw", "centred", "standardised")
                    ),
                ]
            )
            for r in rows:
                out.writerow([r["label"], r["seed"], *(f"{v:.4f}" for v in r["untrained"]),
                              *(f"{v:.4f}" for v in r["trained"])])  # fmt: skip
    for r in rows:
        u, t = r["untrained"], r["trained"]
        print(f"| {r['label']} | {r['seed']} | {u[0]:.3f} / {u[1]:.3f} / {u[2]:.3f} | "
              f"{t[0]:.3f} / {t[1]:.3f} / {t[2]:.3f} |")  # fmt: skip
    print("\nmeans over seeds (trained raw / centred):")
    for label in dict.fromkeys(r["label"] for r in rows):
        t = np.array([r["trained"] for r in rows if r["label"] == label])
        print(f"  {label}: {t[:, 0].mean():.3f} / {t[:, 1].mean():.3f} (n={len(t)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
