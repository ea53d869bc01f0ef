"""Baselines of a dataset split: raw input, untrained backbone, supervised reference.

A command-line front to :mod:`sslobjectives.baselines` (the library computes the same rows
for every ``sslobj compare``, ``sslobj sweep collect`` and ``sslobj report`` table): k-NN,
linear probe and mAP on the split a run of the given config uses.

Usage (progress on stderr, one JSON line per baseline on stdout)::

    python scripts/testbed/baselines.py --dataset shapes --set dataset_kwargs='{"size": 16}'
    python scripts/testbed/baselines.py --dataset shapes-hard --set n_local=0 --set epochs=10
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch

from sslobjectives import baselines
from sslobjectives.train.config import RunConfig


def raw_baseline(config: RunConfig) -> dict[str, dict[str, float]]:
    """The flattened pixels, as they are and mean-centred."""
    return baselines.raw_metrics(config)


def untrained_baseline(config: RunConfig) -> dict[str, float]:
    """The backbone a run of ``config`` starts from, before any step."""
    return baselines.untrained_metrics(config)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``key=value`` strings -> dict (values parsed as JSON when they are JSON)."""
    out = {}
    for item in items:
        key, raw = item.split("=", 1)
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    for key in ("global_scale", "local_scale", "ratio", "blur_sigma"):
        if isinstance(out.get(key), list):
            out[key] = tuple(out[key])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="shapes")
    p.add_argument("--set", action="append", default=[], help="RunConfig key=value (JSON)")
    p.add_argument("--skip", action="append", default=[], help="raw, untrained or supervised")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    config = RunConfig.from_dict({"dataset": args.dataset, **parse_sets(args.set)})
    print(f"{args.dataset} {config.dataset_kwargs}", file=sys.stderr, flush=True)
    if "raw" not in args.skip:
        for name, m in raw_baseline(config).items():
            print(json.dumps({"baseline": name, **m}), flush=True)
    if "untrained" not in args.skip:
        print(json.dumps({"baseline": "untrained", **untrained_baseline(config)}), flush=True)
    if "supervised" not in args.skip:
        m = baselines.supervised_metrics(config)
        print(json.dumps({"baseline": "supervised", **m}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
