"""What the clustering teachers' raw posteriors and their normalised targets use, per run.

The collapse rule (``sslobjectives.eval.run.collapse_reason``) reads the marginal entropy of
the *raw* teacher posterior ``p = softmax(z / T)`` on the test images. The loss's target is
the posterior normalised by the objective (``dino``: centred; ``kl_inverse_prior``: divided
by the batch's cluster prior and renormalised; ``sinkhorn``: balanced by Sinkhorn-Knopp).
For each clustering run folder (``config.json`` and ``checkpoint.pt``: the final EMA teacher
and the objective's state, e.g. DINO's running centre) this prints, on the test images in
batches of the run's batch size, in nats:

- ``raw H(mean p)``: the raw posterior's marginal entropy (what the rule reads);
- ``target H(mean q)``: the normalised target's marginal entropy;
- ``target mean H(q)``: its mean per-sample entropy (near ``log K`` is a uniform teacher);
- ``raw / target argmax``: how many clusters are the argmax of at least one test image.

    python scripts/testbed/cluster_targets.py docs/compare/runs

Run folders are not in git (``python scripts/regenerate-readme.py --run`` writes
``docs/compare/runs``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from sslobjectives.diagnostics import marginal_entropy, mean_sample_entropy
from sslobjectives.eval.run import extract
from sslobjectives.objectives import get
from sslobjectives.train.datacheck import eval_dataset_for
from sslobjectives.train.trainer import dataset_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centred_knn import CPU, load_teacher, run_config_of, run_folders, student_of  # noqa: E402


def run_folder(folder: Path) -> dict[str, object] | None:
    """The row of one run folder, or None when its objective is not a clustering one."""
    config = run_config_of(folder)
    if get(config.objective).head_kind != "cluster":
        return None
    objective = get(config.objective).from_config(**config.objective_cfg)
    model = student_of(config)
    state = load_teacher(model, folder)
    objective.load_state_dict(state.get("objective") or {}, strict=False)
    objective.eval()  # DINO's centre and a running prior are read, not updated
    temp = float(objective.config.teacher_temp)
    data = eval_dataset_for(config, dataset_for(config))
    _, logits = extract(model, data.x_test, CPU)
    raw, target = [], []
    with torch.no_grad():
        for batch in torch.split(logits, config.batch_size):
            raw.append(torch.softmax(batch / temp, dim=-1))
            target.append(objective.teacher_probs(batch, temp))
    p, q = torch.cat(raw), torch.cat(target)
    k = p.shape[1]
    return {
        "label": config.display_name,
        "seed": config.seed,
        "raw_marginal": float(marginal_entropy(p)),
        "target_marginal": float(marginal_entropy(q)),
        "target_sample": float(mean_sample_entropy(q)),
        "raw_used": int(p.argmax(1).unique().numel()),
        "target_used": int(q.argmax(1).unique().numel()),
        "log_k": math.log(k),
        "recorded": json.loads((folder / "result.json").read_text())["final"].get(
            "posterior_marginal_entropy"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders, or folders of run folders")
    p.add_argument("--json", type=Path, help="also write the rows to this JSON-lines file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = [r for r in map(run_folder, run_folders(args.runs)) if r is not None]
    if not rows:
        print("no clustering run folders with config.json and checkpoint.pt given", file=sys.stderr)
        return 2
    print(f"nats; log K = {rows[0]['log_k']:.3f}")
    print("| run | seed | raw H(mean p) (recorded) | target H(mean q) | target mean H(q) "
          "| raw / target argmax clusters |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['seed']} | {r['raw_marginal']:.3f} ({r['recorded']:.3f}) | "
              f"{r['target_marginal']:.3f} | {r['target_sample']:.3f} | "
              f"{r['raw_used']} / {r['target_used']} |")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
