"""``sslobj export RUN_DIR --out backbone.pt``: a run's teacher backbone and what rebuilds it.

The file loads with ``torch.load(path, weights_only=True)``;
:func:`sslobjectives.models.load_backbone` turns it back into the backbone (README "Export
and evaluate a backbone").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="a run's teacher backbone (weights + config to rebuild it) as one .pt file",
        description="Write a run's EMA-teacher backbone to a file torch.load(..., "
        "weights_only=True) reads; sslobjectives.models.load_backbone rebuilds it.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (DIR/runs/<name>)")
    p.add_argument("--out", default="backbone.pt", help="file to write (default: %(default)s)")
    p.set_defaults(func=_run)


def run_config(run_dir: str | Path) -> Any:
    """The :class:`~sslobjectives.train.config.RunConfig` of a run folder: from its
    ``result.json``, else its ``config.json`` (written by sweeps before they start)."""
    from sslobjectives.train.config import RunConfig
    from sslobjectives.train.rundir import CONFIG_FILE, RunDir, read_json

    files = RunDir(run_dir)
    if not files.path.is_dir():
        raise ValueError(f"{run_dir}: no such run folder")
    result = files.result()
    stored = result.get("config") if result else read_json(files.file(CONFIG_FILE))
    if not stored:
        raise ValueError(
            f"{run_dir}: no run config (neither a result nor a config file): not a run folder"
        )
    return RunConfig.from_dict(stored)


def run_backbone(run_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """``(backbone, payload)``: the run's EMA-teacher backbone (eval mode, CPU) from its last
    checkpoint, and the dict ``sslobj export`` saves."""
    from sslobjectives.models import backbone_payload, build_backbone
    from sslobjectives.train.rundir import RunDir
    from sslobjectives.train.trainer import dataset_for

    config = run_config(run_dir)
    files = RunDir(run_dir)
    state = files.load_checkpoint()
    if state is None:
        raise ValueError(f"{run_dir}: no checkpoint: the run has not finished an epoch")
    if state.get("run_id") != config.run_id:
        raise ValueError(
            f"{run_dir}: the checkpoint belongs to run {state.get('run_id')}, "
            f"not to this folder's run {config.run_id}"
        )
    prefix = "module.backbone."
    weights = {k[len(prefix) :]: v for k, v in state["teacher"].items() if k.startswith(prefix)}
    data = dataset_for(config)
    net = build_backbone(
        config.backbone, data.in_channels, data.image_size, **config.backbone_kwargs
    )
    net.load_state_dict(weights)
    net.eval()
    result = files.result() or {}
    payload = backbone_payload(
        net,
        backbone=config.backbone,
        backbone_kwargs=config.backbone_kwargs,
        in_channels=data.in_channels,
        image_size=data.image_size,
        image_shape=tuple(data.x_train.shape[1:]),
        run_id=config.run_id,
        label=config.display_name,
        seed=config.seed,
        objective=config.objective,
        dataset=config.dataset,
        dataset_kwargs=dict(config.dataset_kwargs),
        data_seed=config.data_seed,
        epoch=int(state["epoch"]),
        epochs=config.epochs,
        status=result.get("status", "unfinished"),
    )
    return net, payload


def export(run_dir: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the run's teacher backbone to ``out``; returns the payload saved."""
    import torch

    from sslobjectives.train.rundir import atomic_write_bytes

    _, payload = run_backbone(run_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, lambda fh: torch.save(payload, fh))
    return payload


def _run(args: argparse.Namespace) -> int:
    try:
        payload = export(args.run_dir, args.out)
    except ValueError as err:
        print(f"sslobj export: {err}", file=sys.stderr)
        return 2
    p = payload["provenance"]
    shape = "x".join(str(n) for n in payload["image_shape"])
    print(
        f"{args.out}: {payload['backbone']} backbone ({payload['out_dim']}-d features, "
        f"{shape} images) of run {p['label']} seed {p['seed']} ({p['run_id']}), "
        f"teacher after epoch {p['epoch']} of {p['epochs']} ({p['status']})"
    )
    return 0
