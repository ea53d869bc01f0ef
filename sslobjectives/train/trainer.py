"""The trainer: one run of one objective, resumable, honest about failure and collapse.

Data flows one way: data -> multi-crop views -> backbone -> head -> objective(student views,
teacher views) -> LossOutput -> optimiser; the teacher is an EMA of the student. The trainer
never knows which objective it runs: it reads the objective's declared ``head_kind`` once, to
build the head (:mod:`sslobjectives.models`), and passes views; the end-of-run evaluation and
the collapse rule are :mod:`sslobjectives.eval.run`'s, the schedules
:mod:`sslobjectives.schedules`', the run folder :class:`~sslobjectives.train.rundir.RunDir`'s.

Determinism: the model is initialised from ``seed``; the data order, the augmentations and a
head reset of epoch ``e`` are drawn from generators seeded by ``(seed, e)``. A run resumed
from the checkpoint of epoch ``e`` therefore replays epochs ``e+1..`` exactly as an
uninterrupted run does.

Files in the run directory (``checkpoint.pt`` every epoch, ``result.json`` once, when the run
ends — done or failed) are written through :class:`~sslobjectives.train.rundir.RunDir`.

``init_from`` starts a run from another run's student and teacher weights (see
:func:`resolve_init_from`); a resumed run continues from its own checkpoint instead.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sslobjectives.data import ImageDataset, default_augment
from sslobjectives.eval import run as evaluation
from sslobjectives.live import RunLogger
from sslobjectives.models import EMATeacher, ResetSchedule, Student, build_student
from sslobjectives.objectives import build, get
from sslobjectives.schedules import RunSchedules
from sslobjectives.train.clipping import clip_gradients
from sslobjectives.train.config import RunConfig
from sslobjectives.train.datacheck import dataset_for, eval_dataset_for
from sslobjectives.train.rundir import (  # noqa: F401  (re-exported: the trainer's old names)
    CHECKPOINT_FILE,
    RESULT_FILE,
    RunDir,
    RunFileError,
    check_identity,
    identity,
    read_checkpoint,
    read_result,
    resolve_init_from,
    stale_reason,
    versions,
    write_json_atomic,
)

#: Steps between two computations of the objective's diagnostics (``LossOutput.stats``);
#: loss terms are averaged over every step of an epoch, diagnostics over the sampled ones.
STATS_EVERY = 5


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a multi-process run (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def build_run_student(config: RunConfig, dataset: ImageDataset, head_kind: str) -> Student:
    """The run's student: :func:`~sslobjectives.models.build_student` from the config's values."""
    return build_student(
        backbone=config.backbone,
        in_channels=dataset.in_channels,
        image_size=dataset.image_size,
        head_kind=head_kind,
        head_dim=config.head_dim,
        head_hidden=config.head_hidden,
        head_layers=config.head_layers,
        bottleneck_dim=config.bottleneck_dim,
        seed=config.seed,
        backbone_kwargs=config.backbone_kwargs,
        head_kwargs=config.head_kwargs,
    )


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


def _param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only, not on biases and norm gains (DINO)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """One run. Use :func:`train`; the class keeps the state a checkpoint must hold."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path,
        *,
        progress: bool = True,
        dist_env: DistEnv | None = None,
        logger: RunLogger | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.config = config
        self.on_epoch = on_epoch
        #: live metrics (:mod:`sslobjectives.live`), called on the main process only
        self.logger = logger if logger is not None and (dist_env or DistEnv()).is_main else None
        self.run_dir = Path(run_dir)
        self.files = RunDir(run_dir)
        self.progress = progress
        self.env = dist_env or DistEnv()
        self.device = pick_device(config.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.env.local_rank)
            self.device = torch.device("cuda", self.env.local_rank)
        self.data = dataset_for(config)
        self.data.check_backbone(config.backbone, config.dataset)
        #: where the features are evaluated (the training data's test split by default)
        self.eval_data = eval_dataset_for(config, self.data)
        labels = (("training", self.eval_data.y_train), ("test", self.eval_data.y_test))
        for part, y in labels:
            if y is not None and len(torch.unique(torch.as_tensor(y))) < 2:
                raise ValueError(
                    f"dataset {self.eval_data.name!r}: the {part} split has one class; the k-NN "
                    "and linear probes need at least two (give images of two classes or more)"
                )
        self.augment = default_augment(self.data, n_local=config.n_local, overrides=config.augment)
        #: the one place the trainer asks which output its objective reads
        self.head_kind = get(config.objective).head_kind
        self.student = build_run_student(config, self.data, self.head_kind).to(self.device)
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
        self.schedules = RunSchedules.for_run(config, self.steps_per_epoch, self.objective.config)
        self.objective.use_schedules(self.schedules)
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
            self.files.save_checkpoint(self.state_dict(), self.config)

    def load_checkpoint(self) -> bool:
        state = self.files.load_checkpoint(map_location=self.device, expect=self.config)
        if state is None:
            return False
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
            state = read_checkpoint(path, map_location=self.device)[1]
        except RunFileError as err:
            raise ValueError(f"init_from: {err}") from None
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
        lr, wd = self.schedules.lr[step], self.schedules.weight_decay[step]
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
            except (ValueError, torch.linalg.LinAlgError) as err:
                # a numerical failure of the objective (non-finite values, a singular matrix)
                # is a failed run, recorded, not a crash
                reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
                reason = reason or type(err).__name__
                return {"failed": f"epoch {epoch}, step {step}: {reason}", "step": step}
            self.objective_time += time.perf_counter() - t_obj
            loss = out.loss * env.world_size  # DDP averages gradients over processes
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad > 0:
                clip_gradients(self.student.parameters(), cfg.clip_grad, cfg.clip_mode)
            if self.schedules.freeze_last_layer(epoch):
                self.student.head.freeze_last_layer()
            self.optimizer.step()
            self.teacher.update(self.student, self.schedules.momentum[step])
            scalars = out.scalars()
            for k, v in scalars.items():
                sums[k] = sums.get(k, 0.0) + v
                counts[k] = counts.get(k, 0) + 1
            if self.logger is not None:
                self.logger.log_step(step, scalars)
            self.step_time += time.perf_counter() - t0
        return {k: v / counts[k] for k, v in sums.items()}

    def _stats_due(self, it: int) -> bool:
        """Diagnostics every ``STATS_EVERY`` steps and on an epoch's last step: they are read
        per epoch, and computing them every step cost up to a third of the objective."""
        return it % STATS_EVERY == 0 or it == self.steps_per_epoch - 1

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
                record.update(
                    evaluation.monitor(self.teacher.module, self.eval_data, self.device, cfg.knn_k)
                )
            record["epoch"] = self.epoch
            record["lr"] = self.schedules.epoch_lr(self.epoch)
            self.elapsed += time.perf_counter() - t0
            record["time_s"] = round(self.elapsed, 3)
            self.history.append(record)
            self.epoch += 1
            self.save_checkpoint()
            if self.logger is not None:
                self.logger.log_epoch(record["epoch"], record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.3f}", knn=f"{record.get('knn', 0):.3f}")
            if self.on_epoch is not None and self.env.is_main:
                # after the checkpoint: a caller that stops here loses no finished epoch
                self.on_epoch(record)
        if bar is not None:
            bar.close()
        return self._finish(failure)

    def _eval_record(self) -> dict[str, Any]:
        ev = self.eval_data
        return {"name": ev.name, "split": ev.split, "scaling": ev.scaling}

    def _finish(self, failure: dict[str, Any] | None) -> dict[str, Any]:
        cfg = self.config
        result: dict[str, Any] = {
            "run_id": cfg.run_id,
            "label": cfg.display_name,
            "seed": cfg.seed,
            "config": cfg.to_dict(),
            "split": self.data.split,
            "dataset": {
                "name": self.data.name,
                "n_train": int(self.data.x_train.shape[0]),
                "scaling": self.data.scaling,
                "labelled": self.data.y_train is not None,
            },
            **({"eval_dataset": self._eval_record()} if cfg.eval_dataset else {}),
            # the resolved views (source defaults + the run's overrides), as run
            "augment": dataclasses.asdict(self.augment),
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
                result["final"] = evaluation.final_metrics(
                    self.teacher.module, self.objective, self.eval_data, self.device, cfg.knn_k
                )
                result["final"].update(evaluation.channel_health(self.history, cfg.head_dim))
                reason = evaluation.collapse_reason(
                    result["final"],
                    min_rank=cfg.collapse_rank,
                    entropy_frac=cfg.collapse_entropy_frac,
                    n_clusters=cfg.head_dim,
                )
                result["collapsed"] = reason is not None
                result["collapse_reason"] = reason
        if self.env.is_main:
            self.files.write_result(result, cfg)
            result = self.files.result()
        if self.logger is not None and result.get("final"):
            self.logger.log_final(result["final"])
        return result


def train(
    config: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    dist_env: DistEnv | None = None,
    logger: RunLogger | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    reuse_stale: bool = False,
) -> dict[str, Any]:
    """Train one run into ``run_dir`` and return its result (also in ``result.json``).

    ``logger`` receives live metrics (:mod:`sslobjectives.live`); whoever opened it closes it.
    It is not called when a finished run is returned without training.

    With ``resume=True`` a finished run returns its stored result without training, and an
    interrupted one continues from its last checkpoint. Without it, an existing checkpoint
    is an error (nothing is silently overwritten). ``on_epoch(record)`` is called after each
    epoch's checkpoint is written (the sweep pool reports progress and stops at timeouts there).
    A result or checkpoint of another run,
    config or data is a :class:`RunFileError`; one written by other code is moved aside
    and the run trained again, unless ``reuse_stale`` (see :mod:`sslobjectives.train.rundir`).
    """
    files = RunDir(run_dir)
    if resume:
        done = files.result(expect=config)
        if done is not None and done.get("status") == "done":
            stale = stale_reason(done)
            if stale is None or reuse_stale:
                return done
            files.retire(f"result {stale}")
        else:
            header = files.checkpoint_header()
            if header is not None:
                check_identity(header, identity(config), files.checkpoint_path, "checkpoint")
                stale = stale_reason(header)
                if stale is not None and not reuse_stale:
                    files.retire(f"checkpoint {stale}")
    elif files.holds_run():
        raise ValueError(f"{run_dir} already holds a run: pass resume=True (--resume) to continue")
    trainer = Trainer(
        config, run_dir, progress=progress, dist_env=dist_env, logger=logger, on_epoch=on_epoch
    )
    resumed = resume and trainer.load_checkpoint()
    if config.init_from and not resumed:
        trainer.load_init()
    return trainer.run()
