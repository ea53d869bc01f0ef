"""One training run, as data: a frozen, JSON-able config whose hash is the run's id.

Every objective in a comparison gets the same backbone, initialisation seed, optimiser,
schedule and number of steps: only ``objective``, ``objective_cfg`` and the head follow the
objective. Unknown keys are errors naming the nearest valid key, and every value is checked
here, for the command line, specs and the Python API alike: its type (``true`` is not a
number, ``1.5`` not an integer), finiteness and range; the objective's config by its Config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from sslobjectives.models.heads import build_head, head_options
from sslobjectives.objectives import build, get, nearest_key
from sslobjectives.train.clipping import CLIP_MODES

#: RunConfig fields that are free-form tables: a dotted key (``dataset_kwargs.resize``)
#: reaches into them, in ``--set`` overrides, ``sslobj train`` files and sweep specs alike.
DICT_FIELDS = ("objective_cfg", "dataset_kwargs", "backbone_kwargs", "head_kwargs", "augment")


class InvalidRunConfig(ValueError):
    """A run config with problems; ``problems`` lists every one (the message joins them)."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid run config: " + "; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's result.

    ``sslobj config`` prints the first sentence of each entry below (one per setting or
    group of settings, see :mod:`sslobjectives.settings`).

    Attributes:
        objective: registry name (``dino``, ``kl_inverse_prior``, ``sinkhorn``, ``bits``,
            ``simdino``).
        objective_cfg: the objective's config keys (e.g. ``{"beta": 0.2}``; ``sslobj config
            --objective NAME`` lists them).
        label: display name in tables (e.g. ``bits-reset``); not part of the run id.
        dataset: ``digits``, ``shapes``, a ``.npz`` file or an image folder.
        dataset_kwargs: the dataset's options (e.g. ``dataset_kwargs.resize=32`` for an
            image folder).
        data_seed: seed of the data's fixed train/test split.
        eval_dataset: a separate labelled dataset (name or path) of the same sample shape,
            whose split the features are evaluated on (k-NN, probe, mAP); ``""`` = the
            training data's own test split. Left out of the run id when unset.
        seed: initialisation, data order and augmentation.
        backbone: the shared backbone: ``cnn``, ``mlp``, ``vit`` or ``timm:<name>``.
        backbone_kwargs: the backbone's options (e.g. ``backbone_kwargs.norm=batch``).
        head_dim: K prototypes / B bits / embedding size.
        head_hidden, head_layers, bottleneck_dim: the projection head's MLP (hidden width,
            layers, bottleneck).
        head_kwargs: further options of the objective's head (``{}``: its defaults), e.g.
            ``{"logit_norm": "batch"}`` for ``bits`` (:class:`~sslobjectives.models.MLPHead`);
            unknown keys are errors naming the valid ones. Left out of the run id when empty.
        augment: overrides of the dataset's default augmentation (keys of
            :class:`~sslobjectives.data.MultiCropAugment`, e.g. ``{"rotation": 90}``); the
            defaults come from the dataset's source (``SOURCES``), a user's file or folder
            gets the generic ones. ``{}``: the defaults. Left out of the run id when empty;
            the resolved settings are recorded in ``result.json`` (``augment``).
        epochs: passes over the training images. ``epochs = 0`` (only with ``init_from``)
            evaluates the loaded weights.
        batch_size: images per step (global, over all processes).
        n_local: local views per sample.
        lr, min_lr, warmup_epochs: AdamW with linear warm-up then cosine decay (per step).
        weight_decay, weight_decay_end: cosine weight-decay schedule (DINO).
        clip_grad: max gradient norm, per parameter or global (``clip_mode``); 0 disables.
        clip_mode: ``"per_param"`` (default, DINO's clipping) or ``"global"`` (one norm).
            ``"per_param"``: DINO's clipping (arXiv 2104.14294, ``clip_gradients``), each
            parameter tensor's gradient clipped to norm ``clip_grad`` on its own, as DINO's
            and SimDINO's reference code train; ``"global"``: one norm over all gradients
            together (``torch.nn.utils.clip_grad_norm_``), this project's clipping before.
        momentum_base, momentum_final: EMA teacher momentum, cosine schedule.
        freeze_last_layer_epochs: keep the prototype layer fixed for the first epochs (DINO).
        reset_period: projection-head reset every this many epochs (BITS); None = never.
        reset_teacher: a head reset also resets the teacher's head.
        init_from: start from another run's weights (a run directory or a ``checkpoint.pt``).
            A run directory's run must be done; ``{seed}`` is replaced by ``seed`` and a glob
            pattern (``runs/bits-s{seed}-*``) must match exactly one path. The student and
            teacher weights are loaded before the first epoch; the optimiser, the schedules
            and the objective's state start fresh. ``""``: a fresh initialisation.
        reset_head_at_start: with ``init_from``, re-initialise the projection head (and,
            with ``reset_teacher``, the teacher's) right after loading.
        teacher_temp_warmup_frac: fraction of the epochs the teacher-temperature warm-up
            lasts. For objectives with such a warm-up and no explicit
            ``warmup_teacher_temp_epochs`` (DINO: 30 of 100).
        knn_k: neighbours of the per-epoch k-NN monitor and the final k-NN.
        collapse_entropy_frac, collapse_rank: collapse flags (entropy fraction, rank floor).
            A run is flagged collapsed when the teacher's marginal entropy falls under this
            fraction of its maximum, or the effective rank of the test features under this
            value.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    """

    objective: str = "dino"
    objective_cfg: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    dataset: str = "digits"
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    eval_dataset: str = ""
    data_seed: int = 0
    seed: int = 0
    backbone: str = "cnn"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    head_dim: int = 256
    head_hidden: int = 256
    head_layers: int = 3
    bottleneck_dim: int = 64
    head_kwargs: dict[str, Any] = field(default_factory=dict)
    augment: dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 128
    n_local: int = 2
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_epochs: int = 3
    weight_decay: float = 0.04
    weight_decay_end: float = 0.1
    clip_grad: float = 3.0
    clip_mode: str = "per_param"
    momentum_base: float = 0.99
    momentum_final: float = 1.0
    freeze_last_layer_epochs: int = 1
    reset_period: int | None = None
    reset_teacher: bool = True
    init_from: str = ""
    reset_head_at_start: bool = False
    teacher_temp_warmup_frac: float = 0.3
    knn_k: int = 20
    collapse_entropy_frac: float = 0.1
    collapse_rank: float = 2.0
    device: str = "auto"

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise InvalidRunConfig(problems)

    def problems(self) -> list[str]:
        """Every problem with this config at once (empty when valid)."""
        out: list[str] = []
        for name, expected in _field_types().items():
            value = getattr(self, name)
            if not _is_instance(value, expected):
                names = " or ".join("None" if t is type(None) else t.__name__ for t in expected)
                out.append(f"{name} must be {names}, got {value!r}")
            elif isinstance(value, float) and not math.isfinite(value):
                out.append(f"{name} must be a finite number, got {value!r}")
        out += _nested_problems(self)
        if out:
            return out
        out += _range_problems(self)
        try:
            cls = get(self.objective)
            build(self.objective, **self.objective_cfg)
        except ValueError as err:
            out.append(str(err))
            cls = None
        positive = ["batch_size", "head_dim", "head_hidden", "head_layers", "knn_k"]
        out += [
            f"{k} must be >= 1, got {getattr(self, k)}" for k in positive if getattr(self, k) < 1
        ]
        if self.epochs < 0 or (self.epochs == 0 and not self.init_from):
            out.append(
                f"epochs must be >= 1 (0 = evaluate only, which needs init_from), got {self.epochs}"
            )
        out += _augment_problems(self.augment)
        if self.reset_head_at_start and not self.init_from:
            out.append("reset_head_at_start needs init_from (a fresh head needs no reset)")
        if self.n_local < 0:
            out.append(f"n_local must be >= 0, got {self.n_local}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            out.append(f"lr must be > 0, got {self.lr}")
        if self.clip_mode not in CLIP_MODES:
            out.append(
                f"clip_mode must be one of {', '.join(CLIP_MODES)}, got {self.clip_mode!r}"
                f"{nearest_key(self.clip_mode, CLIP_MODES)}"
            )
        if not 0 <= self.momentum_base <= self.momentum_final <= 1:
            out.append("need 0 <= momentum_base <= momentum_final <= 1")
        if self.reset_period is not None and self.reset_period < 1:
            out.append(f"reset_period must be None or >= 1, got {self.reset_period}")
        if self.device not in ("auto", "cpu", "cuda"):
            out.append(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if cls is not None and cls.head_kind not in ("cluster", "binary", "embedding"):
            out.append(f"objective {self.objective!r} declares unknown head_kind {cls.head_kind!r}")
        elif cls is not None:
            valid = head_options(cls.head_kind)
            out += [
                f"head_kwargs: unknown option {key!r} for the {cls.head_kind} head of "
                f"{self.objective!r}{nearest_key(key, valid)}; valid: {', '.join(valid) or 'none'}"
                for key in self.head_kwargs
                if key not in valid
            ]
            if self.head_kwargs and all(key in valid for key in self.head_kwargs):
                try:  # the values, checked by the head itself on a tiny instance
                    build_head(cls.head_kind, 2, 2, 2, 1, 2, **self.head_kwargs)
                except (TypeError, ValueError) as err:
                    out.append(f"head_kwargs: {err}")
        return out

    # ------------------------------------------------------------------ derived

    def resolved_objective_cfg(self) -> dict[str, Any]:
        """``objective_cfg`` with the teacher-temperature warm-up scaled to ``epochs``."""
        cfg = dict(self.objective_cfg)
        fields = {f.name for f in dataclasses.fields(get(self.objective).Config)}
        if "warmup_teacher_temp_epochs" in fields and "warmup_teacher_temp_epochs" not in cfg:
            cfg["warmup_teacher_temp_epochs"] = round(
                self.teacher_temp_warmup_frac * self.epochs, 6
            )
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the objective config resolved)."""
        d = dataclasses.asdict(self)
        d["objective_cfg"] = self.resolved_objective_cfg()
        return d

    @property
    def run_id(self) -> str:
        """Hash of everything that determines the result (the label is left out, and so are
        ``init_from``, ``reset_head_at_start``, ``eval_dataset``, ``head_kwargs`` and
        ``augment`` when unset, so that adding them kept the ids of earlier runs); the first
        12 hex digits of :attr:`config_hash`."""
        return self.config_hash[:12]

    @property
    def config_hash(self) -> str:
        """SHA-256 of everything that determines the result (see :attr:`run_id`). A user's
        ``.npz`` file or image folder enters by its contents (``data_fingerprint``): new
        contents at the same path are a new run; the named datasets enter by name, so their
        ids stay those of earlier versions."""
        from sslobjectives.train.rundir import data_fingerprint

        d = self.to_dict()
        d.pop("label")
        for key, unset in (
            ("init_from", ""),
            ("reset_head_at_start", False),
            ("eval_dataset", ""),
            ("head_kwargs", {}),
            ("augment", {}),
        ):
            if d[key] == unset:
                d.pop(key)
        fingerprint = data_fingerprint(self.dataset)
        if fingerprint != self.dataset:
            d["data_fingerprint"] = fingerprint
        blob = json.dumps(d, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def display_name(self) -> str:
        return self.label or self.objective

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Build from a dict; unknown keys are errors naming the nearest valid key."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in d if k not in valid]
        if unknown:
            raise ValueError(
                "invalid run config: "
                + "; ".join(f"unknown key {k!r}{nearest_key(k, valid)}" for k in unknown)
            )
        return cls(**d)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


def set_setting(d: dict[str, Any], key: str, value: Any) -> None:
    """Set the RunConfig key ``key`` in the dict ``d``; a dotted key reaches into a table field.

    Unknown keys, and dotted keys into fields that are not tables, are errors naming the
    nearest valid key.

    >>> d = {"dataset_kwargs": {"n": 10}}
    >>> set_setting(d, "dataset_kwargs.size", 16); set_setting(d, "lr", 0.01); d
    {'dataset_kwargs': {'n': 10, 'size': 16}, 'lr': 0.01}
    >>> set_setting(d, "epoch.x", 1)
    Traceback (most recent call last):
    ...
    ValueError: unknown setting 'epoch.x' (did you mean 'epochs'?)
    """
    valid = [f.name for f in dataclasses.fields(RunConfig)]
    top, _, sub = key.partition(".")
    if top not in valid:
        raise ValueError(f"unknown setting {key!r}{nearest_key(top, valid)}")
    if not sub:
        d[key] = value
        return
    if top not in DICT_FIELDS:
        raise ValueError(
            f"setting {key!r}: {top} is not a table; only {', '.join(DICT_FIELDS)} take dotted keys"
        )
    table = d.get(top)
    if table is None:
        table = {}
    elif not isinstance(table, dict):
        raise ValueError(f"setting {key!r}: {top} is {table!r}, not a table")
    d[top] = node = dict(table)
    *parents, leaf = sub.split(".")
    for part in parents:  # deeper keys (a.b.c) build nested tables
        child = node.get(part)
        node[part] = dict(child) if isinstance(child, dict) else {}
        node = node[part]
    node[leaf] = value


#: Lower (and upper) bounds of numeric settings, checked after their type and finiteness.
_AT_LEAST_ZERO = (
    "data_seed",
    "seed",
    "min_lr",
    "warmup_epochs",
    "weight_decay",
    "weight_decay_end",
    "clip_grad",
    "freeze_last_layer_epochs",
    "collapse_rank",
)
_FRACTIONS = ("teacher_temp_warmup_frac", "collapse_entropy_frac")


def _range_problems(config: RunConfig) -> list[str]:
    """Settings out of range: negative rates, decays and seeds, fractions outside [0, 1]."""
    out = [
        f"{k} must be >= 0, got {getattr(config, k)!r}"
        for k in _AT_LEAST_ZERO
        if getattr(config, k) < 0
    ]
    out += [
        f"{k} must lie in [0, 1], got {getattr(config, k)!r}"
        for k in _FRACTIONS
        if not 0 <= getattr(config, k) <= 1
    ]
    return out


def _augment_problems(augment: dict[str, Any]) -> list[str]:
    """Unknown augmentation keys (with the nearest valid one) and values the augmentation
    refuses; ``n_local`` is a run setting of its own."""
    from sslobjectives.data import MultiCropAugment

    valid = [f.name for f in dataclasses.fields(MultiCropAugment) if f.name != "n_local"]
    out = [
        f"augment: unknown setting {k!r}{nearest_key(k, valid)}; valid: {', '.join(valid)}"
        for k in augment
        if k not in valid
    ]
    if not out and augment:
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in augment.items()}
        try:
            MultiCropAugment(**values)
        except (TypeError, ValueError) as err:
            out.append(f"augment: {err}")
    return out


def _nested_problems(config: RunConfig) -> list[str]:
    """Non-finite numbers inside the keyword dicts (``backbone_kwargs.width=NaN``); the
    objective's config is checked by its own Config."""
    out = []
    for name in ("dataset_kwargs", "backbone_kwargs", "head_kwargs", "augment"):
        for key, value in getattr(config, name).items():
            if isinstance(value, float) and not math.isfinite(value):
                out.append(f"{name}.{key} must be a finite number, got {value!r}")
    return out


def _field_types() -> dict[str, tuple[type, ...]]:
    """Runtime types of each field, read from the annotations (``int | None`` -> both)."""
    out = {}
    for name, hint in typing.get_type_hints(RunConfig).items():
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        out[name] = tuple(typing.get_origin(a) or a for a in args)
    return out


def _is_instance(value: Any, expected: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in expected:
        return False
    if float in expected and isinstance(value, int):
        return True
    return isinstance(value, expected)
