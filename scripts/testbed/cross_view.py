"""How recognisable two views of one image are to a network at initialisation.

For 1,000 test images, two views each (the run's augmentation), with the run's untrained
teacher: ``instance_top1`` (view B's nearest view A, cosine on centred backbone features, is
its own image), ``cross_view_class_nn`` (view B's nearest *other* image's view A has its
class) and ``teacher_argmax_agree`` (the centred head logits of the two views pick the same
prototype). A clustering objective (DINO-like) can only start learning from what a view
predicts about the other view's teacher assignment; near-chance values here mean its
targets are noise to the student at first. docs/TESTBED.md has the measurements.

    python scripts/testbed/cross_view.py dataset='"shapes-hard"' n_local=0
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import parse_sets  # noqa: E402

from sslobjectives.train.config import RunConfig  # noqa: E402
from sslobjectives.train.trainer import Trainer  # noqa: E402


def cross_view(config: RunConfig, n: int = 1000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, tmp, progress=False)
        x, y = trainer.data.x_test[:n], trainer.data.y_test[:n]
        views = trainer.augment(x, torch.Generator().manual_seed(0))[:2]
        net = trainer.teacher.module.eval()
        with torch.no_grad():
            feats = [net.backbone(v) for v in views]
            logits = [net.head(f) for f in feats]
    mean = torch.cat(feats).mean(0)
    a, b = (torch.nn.functional.normalize(f - mean, dim=1) for f in feats)
    sim = b @ a.T
    instance = (sim.argmax(1) == torch.arange(len(x))).float().mean().item()
    sim.fill_diagonal_(-9.0)
    cls = (y[sim.argmax(1)] == y).float().mean().item()
    centre = torch.cat(logits).mean(0)
    agree = ((logits[0] - centre).argmax(1) == (logits[1] - centre).argmax(1)).float().mean()
    return {
        "instance_top1": round(instance, 3),
        "cross_view_class_nn": round(cls, 3),
        "teacher_argmax_agree": round(agree.item(), 3),
    }


def main(argv: list[str]) -> int:
    config = RunConfig.from_dict(parse_sets(argv))
    print(json.dumps({"set": argv, **cross_view(config)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
