"""``sslobj eval RUN_DIR --dataset X``: k-NN, linear probe and retrieval mAP of a run's teacher
backbone on any labelled dataset of the same image shape.

The table is a list of rows, one per representation; each row comes from a *row source*, a
function ``(EvalContext) -> list[dict]``. :data:`ROW_SOURCES` holds the run's own row; a
baseline (raw input, untrained backbone, ...) is one more function appended there, and its
rows are printed next to the run's, scored by the same :func:`score` on the same split.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sslobjectives.cli import _positive

#: the metrics of every row, in table order
METRICS = ("knn", "linear", "map")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="k-NN, linear probe and mAP of a run's teacher backbone on a dataset",
        description="Evaluate a run's EMA-teacher backbone (frozen) on a labelled dataset of "
        "the same image shape: k-NN, linear probe, retrieval mAP.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (DIR/runs/<name>)")
    p.add_argument(
        "--dataset",
        help="digits, shapes, a .npz file or an image folder (default: the run's own)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset option: dataset_kwargs.resize=32, data_seed=1, knn_k=10",
    )
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    p.add_argument("--threads", type=_positive, default=1, help="torch CPU threads (default 1)")
    p.set_defaults(func=_run)


@dataclass
class EvalContext:
    """What a row source needs: the run, its loaded teacher backbone and the dataset."""

    run_dir: Path
    config: Any  # the run's RunConfig
    backbone: Any  # nn.Module, eval mode
    payload: dict[str, Any]  # what `sslobj export` would save (provenance, image shape)
    data: Any  # ImageDataset
    knn_k: int

    @property
    def device(self) -> Any:
        return next(self.backbone.parameters()).device


def score(train_feats: Any, test_feats: Any, ctx: EvalContext) -> dict[str, float]:
    """k-NN, linear probe and mAP of features of ``ctx.data``'s train and test images."""
    from sslobjectives.eval.metrics import evaluate_representation

    metrics = evaluate_representation(
        train_feats, ctx.data.y_train, test_feats, ctx.data.y_test, k=ctx.knn_k
    )
    return {k: float(metrics[k]) for k in METRICS}


def run_rows(ctx: EvalContext) -> list[dict[str, Any]]:
    """The run's own row: its teacher backbone's features."""
    from torch import nn

    from sslobjectives.eval.run import extract
    from sslobjectives.models import Student

    model = Student(ctx.backbone, nn.Identity())
    f_tr, _ = extract(model, ctx.data.x_train, ctx.device)
    f_te, _ = extract(model, ctx.data.x_test, ctx.device)
    p = ctx.payload["provenance"]
    name = f"{p['label']} s{p['seed']} teacher (epoch {p['epoch']})"
    return [{"representation": name, "dim": int(f_tr.shape[1]), **score(f_tr, f_te, ctx)}]


#: the functions whose rows make the table (a baseline appends its own)
ROW_SOURCES: list[Callable[[EvalContext], list[dict[str, Any]]]] = [run_rows]


def context(
    run_dir: str | Path, dataset: str | None = None, overrides: list[str] = ()
) -> EvalContext:
    """Load the run's backbone and the dataset (``overrides``: ``dataset_kwargs.<key>=v``,
    ``data_seed=n``, ``knn_k=n``); ValueError when the image shapes differ or the data has no
    labels."""
    from sslobjectives.commands.export import run_backbone, run_config
    from sslobjectives.data import load_dataset
    from sslobjectives.train.config import set_setting
    from sslobjectives.values import parse_value

    backbone, payload = run_backbone(run_dir)
    config = run_config(run_dir)
    own = dataset is None
    settings: dict[str, Any] = {
        "dataset_kwargs": dict(config.dataset_kwargs) if own else {},
        "data_seed": config.data_seed,
        "knn_k": config.knn_k,
    }
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or key.split(".")[0] not in settings:
            raise ValueError(
                f"--set {item!r}: eval takes dataset_kwargs.<key>=value, data_seed=N or knn_k=N"
            )
        set_setting(settings, key, parse_value(raw))
    name = config.dataset if own else dataset
    data = load_dataset(name, seed=settings["data_seed"], **settings["dataset_kwargs"])
    shape = [int(n) for n in data.x_train.shape[1:]]
    want = payload["image_shape"]
    if shape != want:
        raise ValueError(
            f"dataset {name!r} has images of shape {'x'.join(map(str, shape))} (C x H x W); "
            f"the run's backbone was trained on {'x'.join(map(str, want))} "
            "(resize an image folder with --set dataset_kwargs.resize=H)"
        )
    if data.y_train is None:
        raise ValueError(f"dataset {name!r} has no labels: k-NN, probe and mAP need them")
    return EvalContext(Path(run_dir), config, backbone, payload, data, int(settings["knn_k"]))


def evaluate(
    run_dir: str | Path,
    dataset: str | None = None,
    overrides: list[str] = (),
    sources: list[Callable[[EvalContext], list[dict[str, Any]]]] | None = None,
) -> list[dict[str, Any]]:
    """The rows of every source (default :data:`ROW_SOURCES`) on ``dataset``."""
    ctx = context(run_dir, dataset, overrides)
    return [row for source in (ROW_SOURCES if sources is None else sources) for row in source(ctx)]


def format_rows(rows: list[dict[str, Any]]) -> str:
    from sslobjectives.texttable import format_text_table

    header = ["representation", "dim", *METRICS]
    cells = [
        [str(r["representation"]), str(r["dim"]), *(f"{r[m]:.3f}" for m in METRICS)] for r in rows
    ]
    return format_text_table(header, cells, right={1, 2, 3, 4}, rule=True)


def _run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    try:
        rows = evaluate(args.run_dir, args.dataset, args.set)
    except ValueError as err:
        print(f"sslobj eval: {err}", file=sys.stderr)
        return 2
    print(format_rows(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0
