"""The trainer: one run of one objective, resumable, honest about failure and collapse.

Data flows one way: data -> multi-crop views -> backbone -> head -> objective(student views,
teacher views) -> LossOutput -> optimiser; the teacher is an EMA of the student. The trainer
never knows which objective it runs: it reads the objective's declared ``head_kind`` to build
the head, and passes views.

Determinism: the model is initialised from ``seed``; the data order, the augmentations and a
head reset of epoch ``e`` are drawn from generators seeded by ``(seed, e)``. A run resumed
from the checkpoint of epoch ``e`` therefore replays epochs ``e+1..`` exactly as an
uninterrupted run does.

Files in the run directory: ``checkpoint.pt`` (tensors only, written atomically every epoch,
loaded with ``weights_only=True``), ``result.json`` (written atomically once, when the run
ends — done or failed).

``init_from`` starts a run from another run's student and teacher weights (see
:func:`resolve_init_from`); a resumed run continues from its own checkpoint instead.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import sslobjectives
from sslobjectives import diagnostics
from sslobjectives.data import ImageDataset, default_augment, load_dataset
from sslobjectives.eval import evaluate_representation, knn_accuracy
from sslobjectives.functional import binary_message
from sslobjectives.heads import BinaryHead, DINOHead, EmbeddingHead, ResetSchedule
from sslobjectives.models import build_backbone
from sslobjectives.objectives import build, get
from sslobjectives.teacher import EMATeacher, cosine_momentum
from sslobjectives.train.clipping import clip_gradients
from sslobjectives.train.config import RunConfig

RESULT_FILE = "result.json"
#: Steps between two computations of the objective's diagnostics (``LossOutput.stats``);
#: loss terms are averaged over every step of an epoch, diagnostics over the sampled ones.
STATS_EVERY = 5
CHECKPOINT_FILE = "checkpoint.pt"


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a multi-process run (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class Student(nn.Module):
    """Backbone followed by the projection head the objective reads."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_student(config: RunConfig, dataset: ImageDataset) -> Student:
    """The backbone and the head matching the objective's ``head_kind``, seeded."""
    torch.manual_seed(config.seed)
    backbone = build_backbone(
        config.backbone, dataset.in_channels, dataset.image_size, **config.backbone_kwargs
    )
    kind = get(config.objective).head_kind
    d, hidden, layers = backbone.out_dim, config.head_hidden, config.head_layers
    if kind == "cluster":
        head = DINOHead(d, config.head_dim, hidden, config.bottleneck_dim, layers)
    elif kind == "binary":
        head = BinaryHead(d, bits=config.head_dim, hidden_dim=hidden, n_layers=layers)
    else:
        head = EmbeddingHead(d, config.head_dim, hidden_dim=hidden, n_layers=layers)
    return Student(backbone, head)


@lru_cache(maxsize=8)
def _cached_dataset(name: str, data_seed: int, kwargs_json: str) -> ImageDataset:
    return load_dataset(name, seed=data_seed, **json.loads(kwargs_json))


def dataset_for(config: RunConfig) -> ImageDataset:
    """The run's dataset (cached in-process: a comparison loads it once)."""
    kwargs = json.dumps(config.dataset_kwargs, sort_keys=True)
    return _cached_dataset(config.dataset, config.data_seed, kwargs)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    return torch.device(name)


def _generator(seed: int, epoch: int, stream: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed * 1_000_003 + epoch * 101 + stream)
    return g


def _cosine(step: int, total: int, start: float, end: float) -> float:
    t = min(max(step, 0), total) / max(total, 1)
    return end + (start - end) * (1 + math.cos(math.pi * t)) / 2


def lr_at(config: RunConfig, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up to ``lr`` over ``warmup_epochs``, then cosine decay to ``min_lr``."""
    warm = config.warmup_epochs * steps_per_epoch
    total = config.epochs * steps_per_epoch
    if step < warm:
        return config.lr * (step + 1) / warm
    return _cosine(step - warm, total - warm, config.lr, config.min_lr)


def _param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only, not on biases and norm gains (DINO)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def extract(
    model: nn.Module, x: torch.Tensor, device: torch.device, batch: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features and head outputs of ``x`` (eval mode), on the CPU."""
    was_training = model.training
    model.eval()
    feats, outs = [], []
    for i in range(0, x.shape[0], batch):
        f = model.backbone(x[i : i + batch].to(device))
        feats.append(f.float().cpu())
        outs.append(model.head(f).float().cpu())
    model.train(was_training)
    return torch.cat(feats), torch.cat(outs)


def _atomic_write_bytes(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file, then rename: readers never see half a file."""
    blob = json.dumps(data, indent=2, sort_keys=False, default=_json_default).encode()
    _atomic_write_bytes(path, lambda fh: fh.write(blob))


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def versions() -> dict[str, str]:
    return {
        "sslobjectives": sslobjectives.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's result if it has one (a run is done only once this file exists)."""
    path = Path(run_dir) / RESULT_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def resolve_init_from(init_from: str, seed: int) -> Path:
    """The checkpoint file ``init_from`` names (``RunConfig.init_from``), checked.

    ``{seed}`` is replaced by ``seed``; a glob pattern must match exactly one path; a
    directory is a run directory whose ``result.json`` says done, and its ``checkpoint.pt``
    is used. Anything else is a ``ValueError`` that says what is wrong.

    >>> resolve_init_from("/nonexistent/run-s{seed}", 3)
    Traceback (most recent call last):
    ...
    ValueError: init_from: /nonexistent/run-s3 does not exist
    """
    text = init_from.replace("{seed}", str(seed))
    path = Path(text)
    if any(c in text for c in "*?["):
        import glob

        matches = sorted(glob.glob(text))
        if len(matches) != 1:
            shown = ", ".join(matches[:5]) or "nothing"
            raise ValueError(
                f"init_from: the pattern {text!r} must match exactly one path, "
                f"matched {len(matches)}: {shown}"
            )
        path = Path(matches[0])
    if not path.exists():
        raise ValueError(f"init_from: {path} does not exist")
    if path.is_dir():
        done = read_result(path) if (path / RESULT_FILE).exists() else None
        if done is None or done.get("status") != "done":
            state = "failed" if done else "has no result (not finished?)"
            raise ValueError(f"init_from: the run in {path} {state}: its weights are not final")
        path = path / CHECKPOINT_FILE
        if not path.exists():
            raise ValueError(f"init_from: {path} does not exist")
    return path


class Trainer:
    """One run. Use :func:`train`; the class keeps the state a checkpoint must hold."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path,
        *,
        progress: bool = True,
        dist_env: DistEnv | None = None,
    ):
        self.config = config
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.env = dist_env or DistEnv()
        self.device = pick_device(config.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.env.local_rank)
            self.device = torch.device("cuda", self.env.local_rank)
        self.data = dataset_for(config)
        if self.data.y_train is None:
            raise ValueError(f"dataset {config.dataset!r} has no labels: evaluation needs them")
        self.augment = default_augment(self.data, n_local=config.n_local)
        self.student = build_student(config, self.data).to(self.device)
        self.teacher = EMATeacher(self.student).to(self.device)
        self.objective = build(config.objective, **config.resolved_objective_cfg()).to(self.device)
        self.model = self.student
        if self.env.world_size > 1:
            self.model = nn.parallel.DistributedDataParallel(
                self.student, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.optimizer = torch.optim.AdamW(_param_groups(self.student), lr=config.lr)
        self.reset_schedule = ResetSchedule(config.reset_period, config.reset_teacher)
        self.steps_per_epoch = self.data.x_train.shape[0] // config.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"batch_size {config.batch_size} exceeds the {self.data.x_train.shape[0]} "
                "training images"
            )
        if config.batch_size % self.env.world_size:
            raise ValueError(
                f"batch_size {config.batch_size} is not divisible by {self.env.world_size} "
                "processes"
            )
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.elapsed = 0.0
        self.objective_time = 0.0
        self.step_time = 0.0
        self.resets: list[int] = []
        self.init: dict[str, Any] | None = None

    # ------------------------------------------------------------------ checkpoint

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "student": self.student.state_dict(),
            "teacher": self.teacher.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": self.history,
            "elapsed": self.elapsed,
            "objective_time": self.objective_time,
            "step_time": self.step_time,
            "resets": self.resets,
            "run_id": self.config.run_id,
        }

    def save_checkpoint(self) -> None:
        if self.env.is_main:
            state = self.state_dict()
            _atomic_write_bytes(self.run_dir / CHECKPOINT_FILE, lambda fh: torch.save(state, fh))

    def load_checkpoint(self) -> bool:
        path = self.run_dir / CHECKPOINT_FILE
        if not path.exists():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state.get("run_id") != self.config.run_id:
            raise ValueError(
                f"checkpoint {path} belongs to run {state.get('run_id')}, "
                f"not {self.config.run_id}: refusing to resume a different config"
            )
        self.student.load_state_dict(state["student"])
        self.teacher.load_state_dict(state["teacher"])
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.elapsed = float(state["elapsed"])
        self.objective_time = float(state["objective_time"])
        self.step_time = float(state["step_time"])
        self.resets = list(state["resets"])
        return True

    def load_init(self) -> None:
        """Load the student and teacher weights of ``config.init_from`` (not the optimiser,
        schedules or objective state); then reset the head if ``reset_head_at_start``."""
        cfg = self.config
        path = resolve_init_from(cfg.init_from, cfg.seed)
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:
            raise ValueError(f"init_from: cannot read the checkpoint {path}: {err}") from None
        if not isinstance(state, dict) or not {"student", "teacher"} <= state.keys():
            raise ValueError(f"init_from: {path} is not a trainer checkpoint (no student/teacher)")
        try:
            self.student.load_state_dict(state["student"])
            self.teacher.load_state_dict(state["teacher"])
        except RuntimeError as err:
            first = str(err).strip().splitlines()
            raise ValueError(
                f"init_from: the weights in {path} do not fit this run's model (backbone, "
                f"head_kind or head sizes differ): {' '.join(first[:3])}"
            ) from None
        self.init = {
            "path": str(path.resolve()),
            "run_id": state.get("run_id"),
            "epoch": state.get("epoch"),
        }
        if cfg.reset_head_at_start:
            self.student.head.reset(_generator(cfg.seed, 0, 3, torch.device("cpu")))
            if cfg.reset_teacher:
                self.teacher.module.head.load_state_dict(self.student.head.state_dict())
            self.init["head_reset"] = True

    # ------------------------------------------------------------------ training

    def _forward_views(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        """Student outputs per view; views of one size go through the model together."""
        n_global = self.augment.n_global
        out = list(self.model(torch.cat(views[:n_global])).chunk(n_global))
        if len(views) > n_global:
            n_local = len(views) - n_global
            out += list(self.model(torch.cat(views[n_global:])).chunk(n_local))
        return out

    def _set_schedules(self, step: int) -> None:
        cfg, total = self.config, self.config.epochs * self.steps_per_epoch
        lr = lr_at(cfg, step, self.steps_per_epoch)
        wd = _cosine(step, total, cfg.weight_decay, cfg.weight_decay_end)
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = lr
            if i == 0:
                group["weight_decay"] = wd

    def _reset_head(self, epoch: int) -> None:
        g = _generator(self.config.seed, epoch, 2, torch.device("cpu"))
        head = self.student.head
        if self.reset_schedule.apply(head, self.teacher.module.head, epoch, g):
            for p in head.parameters():  # stale Adam moments would undo the reset
                self.optimizer.state.pop(p, None)
            self.resets.append(epoch)

    def train_epoch(self, epoch: int) -> dict[str, float] | dict[str, Any]:
        cfg, env = self.config, self.env
        self._reset_head(epoch)
        x_all = self.data.x_train
        order = torch.randperm(x_all.shape[0], generator=_generator(cfg.seed, epoch, 0, "cpu"))
        g_aug = _generator(cfg.seed, epoch, 1, self.device)
        per_rank = cfg.batch_size // env.world_size
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        amp = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.device.type == "cuda"
            else nullcontext()
        )
        self.student.train()
        for it in range(self.steps_per_epoch):
            t0 = time.perf_counter()
            step = epoch * self.steps_per_epoch + it
            self._set_schedules(step)
            idx = order[it * cfg.batch_size : (it + 1) * cfg.batch_size]
            # Views of the whole global batch on every rank, then this rank's slice: the
            # augmentations do not depend on the number of processes.
            views = self.augment(x_all[idx].to(self.device), g_aug)
            views = [v[env.rank * per_rank : (env.rank + 1) * per_rank] for v in views]
            with amp:
                student_out = self._forward_views(views)
                with torch.no_grad():
                    n_global = self.augment.n_global
                    teacher_out = list(self.teacher(torch.cat(views[:n_global])).chunk(n_global))
            t_obj = time.perf_counter()
            try:
                out = self.objective(
                    [s.float() for s in student_out],
                    [t.float() for t in teacher_out],
                    epoch=epoch + it / self.steps_per_epoch,
                    stats=self._stats_due(it),
                )
            except ValueError as err:
                return {"failed": f"epoch {epoch}, step {step}: {err}", "step": step}
            self.objective_time += time.perf_counter() - t_obj
            loss = out.loss * env.world_size  # DDP averages gradients over processes
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad > 0:
                clip_gradients(self.student.parameters(), cfg.clip_grad, cfg.clip_mode)
            if epoch < cfg.freeze_last_layer_epochs and hasattr(self.student.head, "last_layer"):
                for p in self.student.head.last_layer.parameters():
                    p.grad = None
            self.optimizer.step()
            m = cosine_momentum(
                step, cfg.epochs * self.steps_per_epoch, cfg.momentum_base, cfg.momentum_final
            )
            self.teacher.update(self.student, m)
            for k, v in out.scalars().items():
                sums[k] = sums.get(k, 0.0) + v
                counts[k] = counts.get(k, 0) + 1
            self.step_time += time.perf_counter() - t0
        return {k: v / counts[k] for k, v in sums.items()}

    def _stats_due(self, it: int) -> bool:
        """Diagnostics every ``STATS_EVERY`` steps and on an epoch's last step: they are read
        per epoch, and computing them every step cost up to a third of the objective."""
        return it % STATS_EVERY == 0 or it == self.steps_per_epoch - 1

    def monitor(self) -> dict[str, float]:
        """Per-epoch k-NN accuracy and effective rank of the teacher's test features."""
        f_tr, _ = extract(self.teacher.module, self.data.x_train, self.device)
        f_te, _ = extract(self.teacher.module, self.data.x_test, self.device)
        return {
            "knn": knn_accuracy(
                f_tr, self.data.y_train, f_te, self.data.y_test, k=self.config.knn_k
            ),
            "effective_rank": float(diagnostics.effective_rank(f_te)),
        }

    def final_metrics(self) -> dict[str, Any]:
        """k-NN, linear probe, retrieval mAP on teacher features (and codes for bits)."""
        data, kind = self.data, get(self.config.objective).head_kind
        f_tr, h_tr = extract(self.teacher.module, data.x_train, self.device)
        f_te, h_te = extract(self.teacher.module, data.x_test, self.device)
        codes = {}
        if kind == "binary":
            codes = {"codes_train": binary_message(h_tr), "codes_test": binary_message(h_te)}
        elif kind == "cluster" and data.factors_test is not None:
            codes = {"assign_test": h_te.argmax(dim=1)}
        metrics = evaluate_representation(
            f_tr,
            data.y_train,
            f_te,
            data.y_test,
            factors_test=data.factors_test,
            factor_names=data.factor_names or None,
            k=self.config.knn_k,
            **codes,
        )
        metrics["effective_rank"] = float(diagnostics.effective_rank(f_te))
        if kind == "binary":
            bits = binary_message(h_te)
            metrics["bit_entropy_per_bit"] = diagnostics.bit_marginal_entropy(bits).tolist()
            metrics.update({k: float(v) for k, v in diagnostics.bit_stats(bits).items()})
        elif kind == "cluster":
            # the raw teacher posterior at its final temperature, before any normalisation: at
            # temperature 1 the unit-norm prototype logits (in [-1, 1]) look uniform whatever
            # the representation, so that entropy would say nothing
            temp = self.objective.config.schedule(None)
            probs = torch.softmax(h_te / temp, dim=-1)
            metrics["teacher_temp"] = temp
            metrics.update({k: float(v) for k, v in diagnostics.cluster_stats(probs).items()})
            metrics["cluster_usage"] = torch.bincount(
                h_te.argmax(dim=1), minlength=h_te.shape[1]
            ).tolist()
        return metrics

    def collapse_reason(self, record: dict[str, float]) -> str | None:
        cfg = self.config
        rank = record.get("effective_rank")
        if rank is not None and rank < cfg.collapse_rank:
            return f"effective rank {rank:.3f} < {cfg.collapse_rank}"
        entropy = record.get("marginal_entropy")
        if entropy is not None and get(cfg.objective).head_kind == "cluster":
            floor = cfg.collapse_entropy_frac * math.log(cfg.head_dim)
            if entropy < floor:
                return f"teacher marginal entropy {entropy:.3f} < {floor:.3f} nats"
        bit_entropy = record.get("bit_entropy")
        if bit_entropy is not None and bit_entropy < cfg.collapse_entropy_frac:
            return f"mean bit entropy {bit_entropy:.3f} < {cfg.collapse_entropy_frac} bits"
        return None

    def run(self) -> dict[str, Any]:
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        bar = None
        if self.progress and self.env.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=cfg.epochs,
                initial=self.epoch,
                desc=f"{cfg.display_name} s{cfg.seed}",
                leave=False,
                dynamic_ncols=True,
            )
        failure = None
        while self.epoch < cfg.epochs:
            t0 = time.perf_counter()
            record = self.train_epoch(self.epoch)
            if "failed" in record:
                failure = record
                break
            if self.env.is_main:
                record.update(self.monitor())
            record["epoch"] = self.epoch
            record["lr"] = lr_at(
                cfg, (self.epoch + 1) * self.steps_per_epoch - 1, self.steps_per_epoch
            )
            self.elapsed += time.perf_counter() - t0
            record["time_s"] = round(self.elapsed, 3)
            self.history.append(record)
            self.epoch += 1
            self.save_checkpoint()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.3f}", knn=f"{record.get('knn', 0):.3f}")
        if bar is not None:
            bar.close()
        return self._finish(failure)

    def _finish(self, failure: dict[str, Any] | None) -> dict[str, Any]:
        cfg = self.config
        result: dict[str, Any] = {
            "run_id": cfg.run_id,
            "label": cfg.display_name,
            "seed": cfg.seed,
            "config": cfg.to_dict(),
            "split": self.data.split,
            "dataset": {"name": self.data.name, "n_train": int(self.data.x_train.shape[0])},
            "versions": versions(),
            "device": str(self.device),
            "world_size": self.env.world_size,
            "history": self.history,
            "head_resets": self.resets,
            **({"init": self.init} if self.init is not None else {}),
            "runtime_s": round(self.elapsed, 3),
            # forward of the objective (stats included) / whole step; the backward share is
            # measured by benchmarks/, which times the objective alone on the same logits
            "objective_forward_frac": (
                self.objective_time / self.step_time if self.step_time else None
            ),
        }
        if failure is not None:
            result.update(status="failed", error=failure["failed"], failed_step=failure["step"])
            result["final"] = None
            result["collapsed"] = None
        else:
            result["status"] = "done"
            if self.env.is_main:
                result["final"] = self.final_metrics()
                last = self.history[-1] if self.history else {}  # empty: evaluate only
                last = {**last, "effective_rank": result["final"]["effective_rank"]}
                reason = self.collapse_reason(last)
                result["collapsed"] = reason is not None
                result["collapse_reason"] = reason
        if self.env.is_main:
            write_json_atomic(self.run_dir / RESULT_FILE, result)
        return result


def train(
    config: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    dist_env: DistEnv | None = None,
) -> dict[str, Any]:
    """Train one run into ``run_dir`` and return its result (also in ``result.json``).

    With ``resume=True`` a finished run returns its stored result without training, and an
    interrupted one continues from its last checkpoint. Without it, an existing checkpoint
    is an error (nothing is silently overwritten).
    """
    run_dir = Path(run_dir)
    if resume:
        done = read_result(run_dir)
        if done is not None and done.get("status") == "done":
            return done
    elif (run_dir / CHECKPOINT_FILE).exists() or (run_dir / RESULT_FILE).exists():
        raise ValueError(f"{run_dir} already holds a run: pass resume=True (--resume) to continue")
    trainer = Trainer(config, run_dir, progress=progress, dist_env=dist_env)
    resumed = resume and trainer.load_checkpoint()
    if config.init_from and not resumed:
        trainer.load_init()
    return trainer.run()
