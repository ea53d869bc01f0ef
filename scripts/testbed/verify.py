"""Run every objective of the default comparison on a recipe, several seeds, and gate them.

Methods are those of ``sslobj compare`` (dino, kl_inverse_prior, sinkhorn, simdino,
bits-fixed, bits-reset with the paper's reset period scaled to the epochs); ``--bits-head``
passes ``head_kwargs`` to the two ``bits`` methods only (the cluster and embedding heads do
not take them). Each run prints one JSON line (``probe.run_once``: k-NN, linear probe, wall
and CPU time, bits channel health); ``--summary`` then prints mean and 95% CI per method
next to the baselines and the gate (k-NN at least ``margin`` above both the best raw-pixel
and the untrained backbone k-NN, linear above both; bits: BCE < 0.95 B ln 2).

    python scripts/testbed/verify.py --set dataset='"shapes-hard"' --set n_local=0 \\
        --set epochs=10 --bits-head '{"logit_norm": "batch"}' --seeds 0 1 2 --jobs 2 \\
        > runs.jsonl
    python scripts/testbed/verify.py --summary runs.jsonl --set dataset='"shapes-hard"'
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from sslobjectives.compare import default_methods, plan_runs
from sslobjectives.results import mean_ci
from sslobjectives.train.config import RunConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import parse_sets, raw_baseline, untrained_baseline  # noqa: E402
from probe import run_once  # noqa: E402


def recipe_configs(base: dict[str, Any], bits_head: dict[str, Any], seeds: list[int]):
    """The default comparison's configs on ``base``, ``head_kwargs`` for the bits methods."""
    methods = default_methods(base.get("epochs", RunConfig.epochs))
    for i, m in enumerate(methods):
        if m.objective == "bits" and bits_head:
            methods[i] = type(m)(
                m.label, m.objective, m.objective_cfg, {**m.run, "head_kwargs": bits_head}
            )
    return plan_runs(methods, seeds, base)


def _one(config: RunConfig) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    out = run_once(config, {}, progress=False)
    return {"dataset": config.dataset, **out}


def summarise(rows: list[dict[str, Any]], config: RunConfig, margin: float = 0.10) -> str:
    """A markdown table of methods vs baselines with the gate's verdict per method."""
    from sslobjectives.baselines import RAW, RAW_CENTRED

    raw = raw_baseline(config)
    raw = {"raw": raw[RAW], "raw_centred": raw[RAW_CENTRED]}
    untrained = untrained_baseline(config)
    raw_knn = max(r["knn"] for r in raw.values())
    raw_lin = max(r["linear"] for r in raw.values())
    floor_knn = max(raw_knn, untrained["knn"]) + margin
    floor_lin = max(raw_lin, untrained["linear"])
    lines = [
        f"baselines: raw k-NN {raw['raw']['knn']:.3f} (centred {raw['raw_centred']['knn']:.3f}),"
        f" linear {raw_lin:.3f}; untrained k-NN {untrained['knn']:.3f}, linear "
        f"{untrained['linear']:.3f}; gate: k-NN >= {floor_knn:.3f}, linear > {floor_lin:.3f}",
        "",
        "| method | n | k-NN | linear | BCE/(B ln2) | median abs logit | bit entropy | wall s |"
        " gate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    for label in labels:
        rs = [r for r in rows if r["label"] == label]
        knn, knn_ci = mean_ci([r["knn"] for r in rs])
        lin, lin_ci = mean_ci([r["linear"] for r in rs])
        bits = [r for r in rs if "bce_frac" in r]
        passed = knn >= floor_knn and lin > floor_lin
        chan = "—"
        if bits:
            bce = float(np.mean([r["bce_frac"] for r in bits]))
            chan = (
                f"{bce:.3f} | {np.mean([r['logit_median_abs'] for r in bits]):.3f} | "
                f"{np.mean([r['bit_entropy'] for r in bits]):.3f}"
            )
            passed = passed and bce < 0.95
        else:
            chan = "— | — | —"
        wall = np.mean([r["wall_s"] for r in rs])
        lines.append(
            f"| {label} | {len(rs)} | {knn:.3f} ± {knn_ci:.3f} | {lin:.3f} ± {lin_ci:.3f} | "
            f"{chan} | {wall:.0f} | {'pass' if passed else 'FAIL'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--set", action="append", default=[], help="RunConfig key=value")
    p.add_argument("--bits-head", default="{}", help="head_kwargs of the bits methods (JSON)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--only", nargs="*", help="labels to run (default: all six)")
    p.add_argument("--summary", help="a JSON-lines file of earlier runs to summarise")
    args = p.parse_args(argv)
    base = parse_sets(args.set)
    if args.summary:
        rows = [json.loads(line) for line in Path(args.summary).read_text().splitlines() if line]
        rows = [r for r in rows if "knn" in r]
        print(summarise(rows, RunConfig.from_dict(base)))
        return 0
    configs = recipe_configs(base, json.loads(args.bits_head), args.seeds)
    if args.only:
        configs = [c for c in configs if c.display_name in args.only]
    print(f"{len(configs)} runs, {args.jobs} at a time", file=sys.stderr, flush=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        for out in pool.map(_one, configs):
            print(json.dumps(out), flush=True)
            print(
                f"  done {out.get('label')} s{out.get('seed')}: k-NN {out.get('knn')}",
                file=sys.stderr,
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
