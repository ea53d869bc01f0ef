"""Train one run with overrides and print its metrics, bits channel health and wall time.

Run settings are ``--set key=value`` (RunConfig keys, values as JSON, ``augment`` included);
augmentation fields ``--aug key=value`` replace fields of the run's :class:`MultiCropAugment`
(its dataset's defaults with ``augment`` applied) after the trainer is built. One JSON line
per run on stdout; per-epoch progress on stderr. Every line has
``knn_centred`` and ``knn_centred_untrained``: the k-NN of the teacher's backbone features
after training and at initialisation, centred on their training mean (the runs' k-NN, like
DINO's, does not centre; an untrained backbone's ReLU features share one direction).

    python scripts/testbed/probe.py --set objective='"bits"' --set dataset='"shapes"' \
        --aug rotation=180 --seeds 0 1

For ``bits`` runs the channel health is measured on the test set at the end:
``logit_median_abs`` (median |a| of the teacher's pre-binarisation logits),
``bce_frac`` (the last epoch's mean BCE / (B ln 2); 1 = coin flips) and ``bit_entropy``
(mean marginal entropy of the test codes, bits).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from sslobjectives.eval.run import extract
from sslobjectives.models.heads import _input_norm
from sslobjectives.objectives import get
from sslobjectives.train.config import RunConfig
from sslobjectives.train.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import parse_sets  # noqa: E402
from centred_knn import knn_three_ways  # noqa: E402


def channel_health(trainer: Trainer, result: dict[str, Any]) -> dict[str, float]:
    """Teacher logit scale, final BCE / (B ln 2) and mean bit entropy of a ``bits`` run."""
    _, logits = extract(trainer.teacher.module, trainer.data.x_test, trainer.device)
    bits = logits.shape[1]
    last = result["history"][-1] if result["history"] else {}
    return {
        "logit_median_abs": float(logits.abs().median()),
        "bce_frac": float(last.get("bce", float("nan"))) / (bits * math.log(2)),
        "bit_entropy": float(result["final"].get("bit_entropy", float("nan"))),
    }


def centred_knn(model: torch.nn.Module, trainer: Trainer) -> float:
    """k-NN of ``model``'s backbone features minus their training mean (the k-NN of the runs
    and baselines does not centre: DINO's protocol); ``centred_knn.py`` measures it."""
    return knn_three_ways(model, trainer.config)[1]


def rescale_last_layer(trainer: Trainer, std: float) -> None:
    """Re-draw the student head's last Linear with N(0, std^2) weights; the teacher copies it.

    The library's heads draw every Linear from a truncated normal with std 0.02 (DINO's
    init); this tries other scales of the layer that produces the logits.
    """
    last = [m for m in trainer.student.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        torch.manual_seed(trainer.config.seed)
        last.weight.normal_(0.0, std)
    trainer.teacher.module.load_state_dict(trainer.student.state_dict())


def add_logit_norm(trainer: Trainer, kind: str) -> None:
    """Append an affine-free normalisation of the logits to the student and teacher heads:
    ``layer`` (LayerNorm over the B logits of a sample) or ``batch`` (BatchNorm1d per bit)."""
    for head in (trainer.student.head, trainer.teacher.module.head):
        bits = head.mlp[-1].out_features
        norm = (
            torch.nn.LayerNorm(bits, elementwise_affine=False)
            if kind == "layer"
            else torch.nn.BatchNorm1d(bits, affine=False)
        )
        head.mlp.append(norm)


def add_hidden_bn(trainer: Trainer) -> None:
    """Insert an affine-free BatchNorm1d after every hidden Linear of the heads' MLPs."""
    for head in (trainer.student.head, trainer.teacher.module.head):
        layers = list(head.mlp)
        out: list[torch.nn.Module] = []
        for i, layer in enumerate(layers):
            out.append(layer)
            if isinstance(layer, torch.nn.Linear) and i < len(layers) - 1:
                out.append(torch.nn.BatchNorm1d(layer.out_features, affine=False))
        head.mlp = torch.nn.Sequential(*out)


def _mean_offdiag_cos(x: torch.Tensor) -> float:
    """Mean cosine between distinct rows of ``x`` (1 = every row points the same way)."""
    u = torch.nn.functional.normalize(x.float(), dim=1)
    g = u @ u.T
    n = g.shape[0]
    return float((g.sum() - g.diagonal().sum()) / (n * (n - 1)))


@torch.no_grad()
def cluster_health(trainer: Trainer, epoch: float | None, n: int = 512) -> dict[str, float]:
    """Collapse diagnostics of a cluster head on ``n`` test images (teacher, eval mode).

    ``feat_cos``, ``emb_cos``: mean pairwise cosine of the backbone features and of the
    bottleneck outputs across samples; ``proto_cos``: of the prototype vectors (the last
    layer's effective weight rows); ``logit_spread``: std over samples of the centred logits,
    mean over prototypes; ``sample_entropy``: mean per-sample entropy (nats) of the teacher
    posterior the objective would produce for this batch at the schedule's temperature of
    ``epoch`` (``None``: the final one), without updating its state.
    """
    model = trainer.teacher.module
    was = model.training
    model.eval()
    x = trainer.data.x_test[:n].to(trainer.device)
    f = model.backbone(x)
    head = model.head
    z = head.mlp(head.in_norm(f))
    logits = head(f)
    w = head.last_layer.weight
    obj = trainer.objective
    obj_was = obj.training
    obj.eval()
    temp = obj.config.schedule(epoch)
    q = obj.teacher_probs(logits.float(), temp)
    obj.train(obj_was)
    model.train(was)
    ent = -(q * q.clamp_min(1e-30).log()).sum(1).mean()
    centred = logits - logits.mean(0, keepdim=True)
    return {
        "feat_cos": round(_mean_offdiag_cos(f), 4),
        "emb_cos": round(_mean_offdiag_cos(z), 4),
        "proto_cos": round(_mean_offdiag_cos(w), 4),
        "logit_spread": round(float(centred.std(0).mean()), 4),
        "sample_entropy": round(float(ent), 4),
        "teacher_temp": round(float(temp), 4),
        "usage": int(torch.unique(q.argmax(1)).numel()),
    }


def add_feat_bn(trainer: Trainer) -> None:
    """The heads' ``input_norm="batch"`` (the library option, ``head_kwargs``) switched on
    after the trainer is built: the head then sees centred, unit-variance backbone features
    instead of the ReLU + average pooling output, whose samples share one direction at
    initialisation."""
    for head in (trainer.student.head, trainer.teacher.module.head):
        head.in_norm = _input_norm("batch", head.mlp[0].in_features)


def exclude_last_layer_decay(trainer: Trainer) -> None:
    """Rebuild the optimiser with the prototype layer outside the weight-decay group."""
    decay, no_decay = [], []
    for name, p in trainer.student.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim <= 1 or name.endswith(".bias") or "last_layer" in name
        (no_decay if skip else decay).append(p)
    groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    trainer.optimizer = torch.optim.AdamW(groups, lr=trainer.config.lr)


def koleo(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Kozachenko-Leonenko spreading term of DINOv2 (arXiv 2304.07193, Sec. 4): minus the
    mean log distance of each L2-normalised row to its nearest other row."""
    u = torch.nn.functional.normalize(x, dim=1, eps=eps)
    with torch.no_grad():
        dots = u @ u.T
        dots.fill_diagonal_(-2.0)
        nn_idx = dots.argmax(dim=1)
    dist = (u - u[nn_idx]).norm(dim=1)
    return -torch.log(dist + eps).mean()


def add_koleo(
    trainer: Trainer, weight: float, on: str = "backbone", ce_weight: float = 1.0
) -> None:
    """Add ``weight`` x KoLeo, per global view, to the objective's loss (DINOv2's
    regulariser, weight 0.1 there, on the backbone's CLS token): of the student's backbone
    features (``on="backbone"``) or of its head's bottleneck outputs (``on="embedding"``),
    caught by a forward hook (the trainer forwards the global views together).
    ``ce_weight`` scales the objective's own loss (0: KoLeo alone, a control)."""
    caught: dict[str, torch.Tensor] = {}
    module = trainer.student.backbone if on == "backbone" else trainer.student.head.mlp
    module.register_forward_hook(lambda m, i, o: caught.update(f=o))
    obj = trainer.objective
    inner = obj.forward
    n_global = trainer.augment.n_global

    def forward(student, teacher, epoch=None, stats=True):
        out = inner(student, teacher, epoch=epoch, stats=stats)
        term = torch.stack([koleo(v) for v in caught["f"].chunk(n_global)]).mean()
        out.loss = ce_weight * out.loss + weight * term
        out.terms["koleo"] = term
        return out

    obj.forward = forward


def _standardise_logits(module, inputs, out):
    # per-prototype batch standardisation of the cluster logits (affine-free BatchNorm,
    # batch statistics always), as BinaryHead(logit_norm="batch") does for the bits
    var = out.var(0, unbiased=False, keepdim=True)
    return (out - out.mean(0, keepdim=True)) / (var + 1e-5).sqrt()


def add_cluster_logit_norm(trainer: Trainer) -> None:
    """Standardise the prototype logits of the student's and the teacher's cluster heads over
    the batch (per prototype) before the objective's temperatures."""
    for head in (trainer.student.head, trainer.teacher.module.head):
        head.register_forward_hook(_standardise_logits)


def run_once(
    config: RunConfig,
    aug: dict[str, Any],
    progress: bool = True,
    last_std: float | None = None,
    logit_norm: str = "",
    hidden_bn: bool = False,
    feat_bn: bool = False,
    no_wd_last: bool = False,
    koleo_weight: float = 0.0,
    koleo_on: str = "backbone",
    ce_weight: float = 1.0,
    cluster_logit_norm: bool = False,
) -> dict[str, Any]:
    """Train ``config`` (augmentation fields replaced by ``aug``) in a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, tmp, progress=False)
        if aug:  # fields of the run's own views (its dataset's, with config.augment) replaced
            trainer.augment = dataclasses.replace(trainer.augment, **aug)
        if last_std is not None:
            rescale_last_layer(trainer, last_std)
        if logit_norm:
            add_logit_norm(trainer, logit_norm)
        if hidden_bn:
            add_hidden_bn(trainer)
        if feat_bn:
            add_feat_bn(trainer)
        if no_wd_last:
            exclude_last_layer_decay(trainer)
        if cluster_logit_norm:
            add_cluster_logit_norm(trainer)
        if koleo_weight:
            add_koleo(trainer, koleo_weight, koleo_on, ce_weight)
        cluster = get(config.objective).head_kind == "cluster"
        diag: list[dict[str, float]] = []
        if cluster:
            diag.append({"epoch": -1, **cluster_health(trainer, 0.0)})
            on_epoch = trainer.on_epoch

            def health_each_epoch(record: dict[str, Any]) -> None:
                # the trainer's per-epoch hook, called after the epoch's checkpoint
                diag.append({"epoch": record["epoch"], **cluster_health(trainer, trainer.epoch)})
                if on_epoch is not None:
                    on_epoch(record)

            trainer.on_epoch = health_each_epoch
        knn_centred_untrained = centred_knn(trainer.teacher.module, trainer)
        t0 = time.perf_counter()
        if progress:
            print(f"  {config.display_name} s{config.seed}: training", file=sys.stderr, flush=True)
        result = trainer.run()
        wall = time.perf_counter() - t0
        if result["status"] != "done":
            return {"status": result["status"], "error": result.get("error")}
        final = result["final"]
        out = {
            "label": config.display_name,
            "seed": config.seed,
            "knn": final["knn"],
            "linear": final["linear"],
            "knn_centred": centred_knn(trainer.teacher.module, trainer),
            "knn_centred_untrained": knn_centred_untrained,
            "knn_by_epoch": [round(h["knn"], 3) for h in result["history"]],
            "collapsed": result["collapsed"],
            # the objective's terms and diagnostics of the first and the last epoch
            "history_ends": [
                {k: round(v, 4) for k, v in h.items() if isinstance(v, float) and k != "time_s"}
                for h in (result["history"][0], result["history"][-1])
            ],
            "wall_s": round(wall, 1),
            "cpu_s": round(time.process_time(), 1),
        }
        if config.objective == "bits":
            out.update(channel_health(trainer, result))
        if cluster:
            out["health"] = diag
            out["loss_by_epoch"] = [round(h["loss"], 3) for h in result["history"]]
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--set", action="append", default=[], help="RunConfig key=value")
    p.add_argument("--aug", action="append", default=[], help="MultiCropAugment key=value")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--last-std", type=float, default=None, help="re-init the head's last layer")
    p.add_argument("--logit-norm", choices=["", "layer", "batch"], default="")
    p.add_argument("--hidden-bn", action="store_true", help="BatchNorm in the head's MLP")
    p.add_argument("--feat-bn", action="store_true", help="BatchNorm1d before the head")
    p.add_argument("--no-wd-last", action="store_true", help="no weight decay on prototypes")
    p.add_argument("--koleo", type=float, default=0.0, help="KoLeo weight on features")
    p.add_argument("--koleo-on", choices=["backbone", "embedding"], default="backbone")
    p.add_argument("--ce-weight", type=float, default=1.0, help="with --koleo: loss weight")
    p.add_argument("--cluster-logit-norm", action="store_true", help="standardise K logits")
    p.add_argument("--tag", default="", help="free text copied into every output line")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    base = parse_sets(args.set)
    aug = parse_sets(args.aug)
    for seed in args.seeds:
        config = RunConfig.from_dict({**base, "seed": seed})
        out = run_once(
            config,
            aug,
            last_std=args.last_std,
            logit_norm=args.logit_norm,
            hidden_bn=args.hidden_bn,
            feat_bn=args.feat_bn,
            no_wd_last=args.no_wd_last,
            koleo_weight=args.koleo,
            koleo_on=args.koleo_on,
            ce_weight=args.ce_weight,
            cluster_logit_norm=args.cluster_logit_norm,
        )
        print(json.dumps({"tag": args.tag, "set": args.set, "aug": args.aug, **out}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
