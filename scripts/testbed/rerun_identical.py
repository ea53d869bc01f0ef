"""Retrain a finished run with this code and say whether it comes out the same.

    python scripts/testbed/rerun_identical.py RUN_DIR [RUN_DIR ...] >> out.jsonl

For each run folder: rebuild its config from its ``result.json`` (the run id must match),
train it again in a temporary folder on one thread, and print one JSON line comparing the
per-epoch history (timing left out) and the final metrics with the stored ones. Used for
docs/testbed-colour/topk-identity.jsonl: the k-NN's topk search changed the package's source
hash, not its results.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from sslobjectives.train.config import RunConfig
from sslobjectives.train.trainer import train


def compare(run_dir: Path) -> dict:
    old = json.loads((run_dir / "result.json").read_text())
    cfg = RunConfig.from_dict(old["config"])
    if cfg.run_id != old["run_id"]:
        raise SystemExit(f"{run_dir}: its config gives run id {cfg.run_id}, not {old['run_id']}")
    with tempfile.TemporaryDirectory() as tmp:
        new = train(cfg, tmp, progress=False)

    def untimed(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in h.items() if k != "time_s"} for h in history]

    return {
        "run": old["label"],
        "seed": old["seed"],
        "run_id": old["run_id"],
        "history_identical": untimed(old["history"]) == untimed(new["history"]),
        "final_identical": old["final"] == new["final"],
        "collapsed_same": old["collapsed"] == new["collapsed"],
        "old_code": old["code"]["source"],
        "new_code": new["code"]["source"],
        "old_runtime_s": old["runtime_s"],
        "new_runtime_s": new["runtime_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run_dir in args.run_dirs:
        print(json.dumps(compare(run_dir)), flush=True)


if __name__ == "__main__":
    main()
