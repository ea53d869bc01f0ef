"""The effective rank of a run's backbone features as the collapse rule reads it, and centred.

The collapse rule flags a run whose test features have an effective rank (RankMe, Garrido et
al., arXiv 2210.02885: the exponential of the entropy of the normalised singular values)
under ``collapse_rank`` (2). The features of a ReLU + average-pooling backbone are
non-negative and share one large direction, their mean (scripts/testbed/centred_knn.py): the
mean's singular value takes most of the spectrum's mass and holds the rank near 1-3 for runs
that learned and runs that collapsed alike. This script prints, per run folder (with
``config.json``, ``checkpoint.pt`` and ``result.json``), the rank as recorded and as
recomputed from the checkpoint's teacher, the rank of the features minus their training
mean, the share of the spectrum the first singular value takes, and the run's k-NN and
linear probe:

    python scripts/testbed/centred_rank.py results/sweeps/hard-vs-soft-targets/runs \
        --jsonl docs/testbed-colour/centred-rank.jsonl

Run folders are not in git (``bash scripts/reproduce-results.sh`` writes them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from centred_knn import CPU, load_teacher, run_config_of, run_folders, student_of  # noqa: E402

from sslobjectives import diagnostics  # noqa: E402
from sslobjectives.eval.run import extract  # noqa: E402
from sslobjectives.train.datacheck import eval_dataset_for  # noqa: E402
from sslobjectives.train.trainer import dataset_for  # noqa: E402


def ranks(model: torch.nn.Module, data) -> dict[str, float]:
    """Effective rank of ``model``'s test features of ``data`` (a run's evaluation data) raw
    and minus the training mean, and the first singular value's share of the raw spectrum."""
    f_tr, _ = extract(model, data.x_train, CPU)
    f_te, _ = extract(model, data.x_test, CPU)
    s = torch.linalg.svdvals(f_te.double())
    return {
        "rank": float(diagnostics.effective_rank(f_te)),
        "rank_centred": float(diagnostics.effective_rank(f_te - f_tr.mean(0, keepdim=True))),
        "top_share": float(s[0] / s.sum()),
    }


def run_folder(folder: Path) -> dict[str, object]:
    config = run_config_of(folder)
    result = json.loads((folder / "result.json").read_text())
    final = result.get("final") or {}
    data = eval_dataset_for(config, dataset_for(config))  # once for both models
    model = student_of(config)
    untrained = ranks(model, data)
    load_teacher(model, folder)
    return {
        "run": folder.name,
        "label": config.display_name,
        "seed": config.seed,
        "knn": final.get("knn"),
        "linear": final.get("linear"),
        "bce_ratio": final.get("bce_ratio"),
        "recorded_rank": final.get("effective_rank"),
        "collapse_reason": result.get("collapse_reason"),
        **ranks(model, data),
        "untrained": untrained,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders, or folders of run folders")
    p.add_argument("--jsonl", type=Path, help="also write one JSON line per run here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = [run_folder(f) for f in run_folders(args.runs)]
    if not rows:
        print("no run folders with config.json and checkpoint.pt given", file=sys.stderr)
        return 2
    if args.jsonl:
        args.jsonl.parent.mkdir(parents=True, exist_ok=True)
        with open(args.jsonl, "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    print(
        "| run | seed | k-NN | linear | rank (recorded) | rank centred | top share | "
        "untrained rank / centred | flagged |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        u = r["untrained"]
        print(
            f"| {r['label']} | {r['seed']} | {r['knn']:.3f} | {r['linear']:.3f} | "
            f"{r['rank']:.2f} ({r['recorded_rank']:.2f}) | {r['rank_centred']:.2f} | "
            f"{r['top_share']:.2f} | {u['rank']:.2f} / {u['rank_centred']:.2f} | "
            f"{r['collapse_reason'] or ''} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
