"""Sweep specs: a TOML file that expands to a list of :class:`RunConfig` runs.

A spec is data. It is read with :mod:`tomllib`; nothing in it is evaluated, and no value is
ever pasted into a shell command (submitit writes ``#SBATCH`` values shell-quoted, and a
value with a newline or another control character is rejected, so it cannot start a new
line of the batch script).

Format::

    [sweep]
    name = "reset-period"          # required; default output dir results/sweeps/<name>
    seeds = [0, 1, 2]              # default [0]
    budget = "about 12 min on 2 CPU cores with the local executor"   # free text, shown by plan
    description = "..."            # optional free text
    out = "results/sweeps/reset"   # optional output directory (relative to the cwd)

    [base]                         # RunConfig keys (dataset, epochs, objective, ...); no seed
    objective = "bits"
    epochs = 20
    [base.objective_cfg]
    beta = 0.1

    [grid]                         # cartesian product of the axes (an axis overrides [base])
    reset_period = [1, 2, "none"]  # "none" -> None where the setting is optional
    "objective_cfg.beta" = [0.05, 0.1]    # dotted keys reach into objective_cfg,
                                          # dataset_kwargs and backbone_kwargs

    [zip]                          # axes varied together (equal lengths), crossed with the grid
    label = ["dino", "bits"]
    objective = ["dino", "bits"]
    objective_cfg = [{center_momentum = 0.0}, {}]   # a whole table per row; a dotted axis
                                          # into the same table (above) is applied after it

    [executor]
    kind = "local"                 # slurm | local | debug
    partition = "debug"            # slurm partition
    timeout_min = 30               # per attempt; a timed-out run is requeued and resumes
    cpus_per_task = 1              # also the torch thread count of each process
    gpus_per_node = 0
    mem_gb = 2                     # optional
    tasks_per_node = 1             # > 1: torch.distributed (gloo on CPU, nccl on GPU)
    nodes = 1
    array_parallelism = 2          # runs at once (slurm array %N; local process pool)
    max_num_timeout = 3            # requeues after a timeout before giving up
    signal_delay_s = 30            # USR2 this long before the time limit (local and slurm)
    log = ["tensorboard"]          # live metrics of each run, in its run folder (sslobj
                                   # train's --log backends: tensorboard, wandb)
    slurm_signal_delay_s = 30      # a few named SLURM settings (SLURM_SETTINGS), typed:
    slurm_account = "my-account"   # account, qos, constraint, exclude, nodelist, comment, ...

Only the SLURM settings named in :data:`SLURM_SETTINGS` are accepted, each with its type
and its characters checked: anything that reaches a command line or the job's environment
(``slurm_setup``, ``slurm_srun_args``, ``slurm_additional_parameters`` — which would carry
``export``, ``wrap``, ``--task-prolog`` ...) is refused with the reason.

The runs are ``grid product x zip rows x seeds``; a spec of more than :data:`MAX_RUNS` runs
is refused before it is expanded (its size is the product of the axis lengths). Every
problem in a spec is reported at once
(:class:`SpecError`): unknown keys with the nearest valid one, empty axes, zip axes of unequal
length, values of the wrong type, objective parameters the objective does not have (checked
by :meth:`RunConfig.problems` for every expanded run), an unknown executor kind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import types
import typing
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslobjectives.objectives import get as get_objective
from sslobjectives.objectives import nearest_key
from sslobjectives.values import is_none

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from sslobjectives.train.config import DICT_FIELDS, InvalidRunConfig, RunConfig, set_setting

EXECUTOR_KINDS = ("slurm", "local", "debug")
SECTIONS = ("sweep", "base", "grid", "zip", "executor")
SWEEP_KEYS = ("name", "seeds", "budget", "description", "out")
#: The most runs a spec may expand to (a SLURM array is capped far lower by most clusters:
#: ``MaxArraySize`` defaults to 1001); beyond, split the sweep.
MAX_RUNS = 10_000
#: The longest sweep name or label: it names a folder (with seed and run id, under the
#: 255-byte limit of most filesystems) and a SLURM job.
MAX_NAME = 100
#: The SLURM settings a spec may name (as ``slurm_<name>``), with their type: ``"name"`` a
#: SLURM name or list (letters, digits and ``_ . , : = + @ % / [ ] -``, not starting with
#: ``-``), ``"constraint"`` a name plus the operators ``& | ( ) ! *``, ``"text"`` printable
#: text, ``int`` and ``bool``.
SLURM_SETTINGS: dict[str, Any] = {
    "account": "name",
    "qos": "name",
    "constraint": "constraint",
    "exclude": "name",
    "nodelist": "name",
    "gres": "name",
    "mail_type": "name",
    "mail_user": "name",
    "mem_per_cpu": "name",
    "mem_per_gpu": "name",
    "wckey": "name",
    "dependency": "name",
    "comment": "text",
    "cpus_per_gpu": int,
    "gpus_per_task": int,
    "num_gpus": int,
    "exclusive": bool,
    "stderr_to_stdout": bool,
}
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,:=+@%/[]-")
_CONSTRAINT_CHARS = _NAME_CHARS | set("&|()!*")
#: submitit SlurmExecutor parameters a spec may not set: they reach a command line or the
#: job's environment (a spec is data), or are set by the sweep itself.
FORBIDDEN_SLURM = {
    "setup": "shell commands are not allowed in a spec (a spec is data)",
    "teardown": "shell commands are not allowed in a spec (a spec is data)",
    "srun_args": "srun arguments reach the command line of every task (a spec is data)",
    "additional_parameters": (
        "free #SBATCH options (export, wrap, task-prolog, ...) reach the job's command line "
        "and environment (a spec is data); name the setting instead"
    ),
    "use_srun": "the sweep runs its jobs through srun",
    "array_parallelism": "use array_parallelism",
    "job_name": "the job name is the sweep name",
    "signal_delay_s": "use signal_delay_s",
    "time": "use timeout_min",
    "mem": "use mem_gb",
    "ntasks_per_node": "use tasks_per_node",
    "nodes": "use nodes",
    "cpus_per_task": "use cpus_per_task",
    "gpus_per_node": "use gpus_per_node",
    "partition": "use partition",
}


class SpecError(ValueError):
    """An invalid spec; ``problems`` lists every problem found."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        n = len(problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {n} problem{'s' if n != 1 else ''}:\n{lines}")


@dataclass(frozen=True)
class ExecutorSpec:
    """Where and with what resources the runs go (see the module docstring)."""

    kind: str = "local"
    partition: str | None = None
    timeout_min: float = 60
    cpus_per_task: int = 1
    gpus_per_node: int = 0
    mem_gb: float | None = None
    tasks_per_node: int = 1
    nodes: int = 1
    array_parallelism: int = 2
    max_num_timeout: int = 3
    signal_delay_s: int | None = None
    #: live-metrics backends every run logs to (``sslobjectives.live``), in its run folder
    log: tuple[str, ...] = ()
    slurm: dict[str, Any] = field(default_factory=dict)  # pass-through, without "slurm_"

    @property
    def world_size(self) -> int:
        return self.tasks_per_node * self.nodes

    def problems_for(self, kind: str) -> list[str]:
        """What prevents submitting with executor ``kind`` (empty when fine)."""
        out = []
        if kind not in EXECUTOR_KINDS:
            out.append(
                f"executor.kind: unknown executor {kind!r}{nearest_key(kind, EXECUTOR_KINDS)}; "
                f"valid: {', '.join(EXECUTOR_KINDS)}"
            )
        if kind == "slurm" and float(self.timeout_min) != int(self.timeout_min):
            out.append(f"executor.timeout_min: SLURM takes whole minutes, got {self.timeout_min}")
        if kind == "local" and self.nodes != 1:
            out.append(f"executor.nodes: the local executor has one node, got {self.nodes}")
        if kind == "local" and self.tasks_per_node != 1:
            out.append(
                "executor.tasks_per_node: the local pool runs one process per run, got "
                f"{self.tasks_per_node} (use slurm for torch.distributed)"
            )
        if kind == "debug" and self.world_size != 1:
            out.append(
                "executor: the debug executor runs in this process; it cannot run "
                f"{self.world_size} tasks (use local or slurm)"
            )
        return out


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its config and the values of the varied keys."""

    config: RunConfig
    varied: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.config.run_id

    def describe(self) -> str:
        parts = [f"{k}={_show(v)}" for k, v in self.varied.items()]
        return ", ".join([*parts, f"seed={self.config.seed}"])


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, validated sweep spec. Build with :func:`load_spec` or :func:`parse_spec`."""

    name: str
    seeds: tuple[int, ...]
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    zip: dict[str, list[Any]]
    executor: ExecutorSpec
    budget: str = ""
    description: str = ""
    out: str | None = None
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    source: str = "<spec>"

    @property
    def varied(self) -> list[str]:
        """The keys the sweep varies on purpose (grid then zip axes), dotted when nested."""
        return [*self.grid, *self.zip]

    @property
    def group_by(self) -> list[str]:
        """Grouping keys for tables: the varied keys (an axis of whole tables, such as
        ``dataset_kwargs``, by its dotted sub-keys), or the label when nothing varies."""
        keys: list[str] = []
        for key, values in [*self.grid.items(), *self.zip.items()]:
            if key in DICT_FIELDS:
                subs = sorted({sub for v in values if isinstance(v, dict) for sub in v})
                keys += [f"{key}.{sub}" for sub in subs if f"{key}.{sub}" not in keys]
            elif key not in keys:
                keys.append(key)
        return keys or ["label"]

    @property
    def spec_hash(self) -> str:
        blob = json.dumps(self.data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def default_out(self) -> Path:
        return Path(self.out) if self.out else Path("results") / "sweeps" / self.name

    def axis_sizes(self) -> list[tuple[str, int]]:
        """``[(description, size)]`` of each factor of the product, seeds last."""
        sizes = [(k, len(v)) for k, v in self.grid.items()]
        if self.zip:
            first = next(iter(self.zip.values()))
            sizes.append(("zip(" + ", ".join(self.zip) + ")", len(first)))
        sizes.append(("seeds", len(self.seeds)))
        return sizes

    def expand(self) -> list[PlannedRun]:
        """Every run: grid product x zip rows x seeds (in that nesting order)."""
        return _expand(self)[0]


# ---------------------------------------------------------------------------- loading


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a TOML spec; raises :class:`SpecError` listing every problem."""
    return parse_spec(read_toml(path, "spec"), source=str(path))


def read_toml(path: str | Path, what: str = "spec") -> dict[str, Any]:
    """The TOML file ``path`` as data; :class:`SpecError` when unreadable or not TOML."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise SpecError(str(path), [f"cannot read the {what}: {err.strerror or err}"]) from None
    except UnicodeDecodeError as err:
        raise SpecError(
            str(path), [f"not UTF-8 text (byte {err.start}): save the spec as UTF-8 TOML"]
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(str(path), [f"not valid TOML: {err}"]) from None


def parse_run(data: dict[str, Any], source: str = "<config>") -> RunConfig:
    """One run from a table of RunConfig keys (``sslobj train``): the keys, types, ``"none"``
    spellings and checks of a spec's ``[base]``, with ``seed`` allowed (default 0).
    Raises :class:`SpecError` listing every problem.

    >>> parse_run({"objective": "bits", "epochs": 2, "dataset_kwargs.n": 50}).dataset_kwargs
    {'n': 50}
    """
    problems: list[str] = []
    data = dict(data)
    seed = data.pop("seed", 0)
    if not _is_int(seed):
        problems.append(f"seed must be an integer, got {seed!r}")
        seed = 0
    base = _parse_base(data, problems)
    d = _config_dict(base, {}, seed)
    problems += _label_problems(d.get("label", "")) + _config_problems(d)
    # the file is one run's [base]: its problems without the section name
    problems = [p.removeprefix("[base]: ").removeprefix("[base] ") for p in problems]
    if problems:
        raise SpecError(source, problems)
    return RunConfig.from_dict(d)


def parse_spec(data: dict[str, Any], source: str = "<spec>") -> SweepSpec:
    """Validate a spec given as data (what ``tomllib`` returns)."""
    problems: list[str] = []
    for key in data:
        if key not in SECTIONS:
            problems.append(f"unknown section [{key}]{nearest_key(key, SECTIONS)}")
    for key in SECTIONS:
        if key in data and not isinstance(data[key], dict):
            problems.append(f"[{key}] must be a table, got {_typename(data[key])}")
    section = {k: data.get(k) if isinstance(data.get(k), dict) else {} for k in SECTIONS}

    name, seeds, extras = _parse_sweep(section["sweep"], problems)
    base = _parse_base(section["base"], problems)
    grid = _parse_axes("grid", section["grid"], problems)
    zipped = _parse_axes("zip", section["zip"], problems)
    for key in grid.keys() & zipped.keys():
        problems.append(f"{key!r} is both a [grid] and a [zip] axis")
    lengths = {k: len(v) for k, v in zipped.items()}
    if zipped and len(set(lengths.values())) == 1:
        counts = Counter(_canonical(row) for row in zip(*zipped.values(), strict=True))
        repeated = sorted(r for r, n in counts.items() if n > 1)
        if repeated:
            problems.append(f"[zip] has repeated rows ({', '.join(zipped)}): {repeated}")
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        problems.append(f"[zip] axes must have equal lengths, got {shown}")
    executor = _parse_executor(section["executor"], problems)

    spec = SweepSpec(
        name=name,
        seeds=tuple(seeds),
        base=base,
        grid=grid,
        zip=zipped,
        executor=executor,
        budget=extras.get("budget", ""),
        description=extras.get("description", ""),
        out=extras.get("out"),
        data=data,
        source=source,
    )
    # Expand even when other parts are wrong (with the well-formed axes only), so that the
    # problems of the run configs are reported in the same pass.
    usable = spec if len(set(lengths.values())) <= 1 else dataclasses.replace(spec, zip={})
    n_runs = math.prod(n for _, n in usable.axis_sizes())
    if n_runs > MAX_RUNS:
        sizes = " x ".join(f"{k} {n}" for k, n in usable.axis_sizes())
        problems.append(
            f"the spec expands to {n_runs} runs ({sizes}), more than the {MAX_RUNS} a sweep may "
            "hold: split it into several sweeps or shorten an axis"
        )
        raise SpecError(source, problems)
    runs, run_problems = _expand(usable)
    problems += run_problems
    if not runs and not run_problems and not problems:
        problems.append("the spec expands to no runs")
    if problems:
        raise SpecError(source, problems)
    return spec


def _parse_sweep(d: dict[str, Any], problems: list[str]) -> tuple[str, list[int], dict]:
    for key in d:
        if key not in SWEEP_KEYS:
            problems.append(f"[sweep]: unknown key {key!r}{nearest_key(key, SWEEP_KEYS)}")
    name = d.get("name")
    if name is None:
        problems.append("[sweep]: name is required (it names the output directory and the job)")
        name = "sweep"
    elif not isinstance(name, str) or not name.strip():
        problems.append(f"[sweep] name must be a non-empty string, got {name!r}")
        name = "sweep"
    else:
        problems += [f"[sweep] name: {p}" for p in _path_part_problems(name)]
    seeds = d.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds:
        problems.append(f"[sweep] seeds must be a non-empty list of integers, got {seeds!r}")
        seeds = [0]
    elif not all(_is_int(s) for s in seeds):
        problems.append(f"[sweep] seeds must be integers, got {seeds!r}")
        seeds = [0]
    elif len(set(seeds)) != len(seeds):
        problems.append(f"[sweep] seeds has duplicates: {seeds!r}")
    extras = {}
    for key in ("budget", "description", "out"):
        if key in d:
            if isinstance(d[key], str):
                extras[key] = d[key]
            else:
                problems.append(f"[sweep] {key} must be a string, got {_typename(d[key])}")
    if isinstance(extras.get("out"), str) and _control_chars(extras["out"]):
        problems.append("[sweep] out: control characters (newline, tab, ...) are not allowed")
    return name, list(seeds), extras


def _run_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(RunConfig)]


def _parse_base(d: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    valid = _run_fields()
    base: dict[str, Any] = {}
    for key, value in d.items():
        if key == "seed":
            problems.append("[base]: seed is set by [sweep] seeds")
        elif "." in key:  # a quoted dotted key: "dataset_kwargs.resize" = 32
            try:
                set_setting(base, key, value)
            except ValueError as err:
                problems.append(f"[base]: {err}")
        elif key not in valid:
            problems.append(f"[base]: unknown key {key!r}{nearest_key(key, valid)}")
        elif key in DICT_FIELDS and not isinstance(value, dict):
            problems.append(f"[base] {key} must be a table, got {_typename(value)}")
        else:
            base[key] = {**value, **base.get(key, {})} if key in DICT_FIELDS else value
    return base


def _parse_axes(section: str, d: dict[str, Any], problems: list[str]) -> dict[str, list[Any]]:
    """Axis name -> values; nested tables (TOML dotted keys) become dotted names."""
    flat: dict[str, Any] = {}
    for key, value in d.items():
        if key in DICT_FIELDS and isinstance(value, dict):
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    valid = _run_fields()
    axes = {}
    for key, values in flat.items():
        top, _, sub = key.partition(".")
        if key == "seed":
            problems.append(f"[{section}]: vary seeds with [sweep] seeds")
            continue
        if top not in valid:
            problems.append(f"[{section}]: unknown key {key!r}{nearest_key(top, valid)}")
            continue
        if sub and top not in DICT_FIELDS:
            problems.append(f"[{section}]: {key!r}: only {', '.join(DICT_FIELDS)} take dotted keys")
            continue
        if top in DICT_FIELDS and not sub and not all(isinstance(v, dict) for v in _aslist(values)):
            problems.append(f"[{section}] {key}: values must be tables (or use {key}.<name>)")
            continue
        if not isinstance(values, list):
            problems.append(
                f"[{section}] {key} must be a list of values, got {_typename(values)} {values!r}"
            )
            continue
        if not values:
            problems.append(f"[{section}] {key} is empty: an axis needs at least one value")
            continue
        # A grid axis with a repeated value repeats runs; a zip column may repeat a value
        # (two rows with objective "bits"): there only whole repeated rows are an error.
        seen = [_canonical(v) for v in values]
        if section == "grid" and len(set(seen)) != len(seen):
            problems.append(f"[{section}] {key} has duplicate values: {values!r}")
            continue
        axes[key] = values
    return axes


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _parse_executor(d: dict[str, Any], problems: list[str]) -> ExecutorSpec:
    fields = {f.name: f for f in dataclasses.fields(ExecutorSpec) if f.name != "slurm"}
    slurm_valid = _slurm_parameters()
    valid = [*fields, *(f"slurm_{k}" for k in [*SLURM_SETTINGS, "signal_delay_s"])]
    kwargs: dict[str, Any] = {}
    slurm: dict[str, Any] = {}
    for key, value in d.items():
        where = f"executor.{key}"
        if key.startswith("slurm_"):
            name = key[len("slurm_") :]
            if name in FORBIDDEN_SLURM and name != "signal_delay_s":
                problems.append(f"{where}: not allowed: {FORBIDDEN_SLURM[name]}")
            elif name == "signal_delay_s":
                slurm[name] = value
            elif name not in SLURM_SETTINGS:
                why = " (not a setting a spec may name)" if name in slurm_valid else ""
                problems.append(
                    f"{where}: unknown key {key!r}{nearest_key(key, valid)}{why}; valid SLURM "
                    f"settings: {', '.join(f'slurm_{k}' for k in SLURM_SETTINGS)}"
                )
            else:
                found = _slurm_value_problems(value, SLURM_SETTINGS[name])
                problems += [f"{where}: {p}" for p in found]
                if not found:
                    slurm[name] = value
            continue
        if key not in fields:
            problems.append(f"executor: unknown key {key!r}{nearest_key(key, valid)}")
            continue
        if key == "log":
            found = _log_problems(value)
            problems += [f"{where}: {p}" for p in found]
            if not found:
                kwargs[key] = (value,) if isinstance(value, str) else tuple(value)
            continue
        kwargs[key] = value
    if "signal_delay_s" in kwargs and "signal_delay_s" in slurm:
        problems.append("executor: set signal_delay_s or slurm_signal_delay_s, not both")
    if "signal_delay_s" in slurm:
        kwargs.setdefault("signal_delay_s", slurm.pop("signal_delay_s"))

    checks: dict[str, tuple[tuple[type, ...], float | None]] = {
        "timeout_min": ((int, float), 0),
        "cpus_per_task": ((int,), 1),
        "gpus_per_node": ((int,), 0),
        "mem_gb": ((int, float), 0),
        "tasks_per_node": ((int,), 1),
        "nodes": ((int,), 1),
        "array_parallelism": ((int,), 1),
        "max_num_timeout": ((int,), 0),
        "signal_delay_s": ((int,), 0),
    }
    ok = True
    for key, (types_, low) in checks.items():
        if key not in kwargs:
            continue
        v = kwargs[key]
        if isinstance(v, bool) or not isinstance(v, types_) or not math.isfinite(v):
            kind = "a number" if float in types_ else "an integer"
            problems.append(f"executor.{key} must be {kind}, got {v!r}")
            ok = False
        elif key in ("timeout_min", "mem_gb") and v <= 0:
            problems.append(f"executor.{key} must be > 0, got {v!r}")
            ok = False
        elif low is not None and v < low:
            problems.append(f"executor.{key} must be >= {low:g}, got {v!r}")
            ok = False
    for key in ("kind", "partition"):
        if key in kwargs and not isinstance(kwargs[key], str):
            problems.append(f"executor.{key} must be a string, got {kwargs[key]!r}")
            ok = False
        elif key in kwargs:
            found = _slurm_value_problems(kwargs[key], "name")
            problems += [f"executor.{key}: {p}" for p in found]
            ok = ok and not found
    if not ok:
        kind = kwargs.get("kind", "local")
        if isinstance(kind, str) and kind not in EXECUTOR_KINDS:
            problems += ExecutorSpec().problems_for(kind)
        return ExecutorSpec()
    spec = ExecutorSpec(**kwargs, slurm=slurm)
    problems += spec.problems_for(spec.kind)
    return spec


def _log_problems(value: Any) -> list[str]:
    """What is wrong with an ``executor.log`` value: a backend name or a list of them (whether
    the backend's library is installed is checked when the sweep is submitted)."""
    from sslobjectives.live import check_backends

    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return [f"must be a backend name or a list of them, got {value!r}"]
    try:
        check_backends(names, installed=False)
    except ValueError as err:
        return [str(err)]
    return []


def _slurm_value_problems(value: Any, kind: Any) -> list[str]:
    """What is wrong with ``value`` for a SLURM setting of type ``kind`` (see
    :data:`SLURM_SETTINGS`)."""
    if kind is bool:
        return [] if isinstance(value, bool) else [f"must be true or false, got {value!r}"]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return [f"must be an integer >= 0, got {value!r}"]
        return []
    if not isinstance(value, str):
        return [f"must be a string, got {_typename(value)} {value!r}"]
    if _control_chars(value):
        return ["control characters (newline, tab, ...) are not allowed"]
    if len(value) > 200:
        return [f"at most 200 characters, got {len(value)}"]
    if kind == "text":
        return []
    allowed = _CONSTRAINT_CHARS if kind == "constraint" else _NAME_CHARS
    bad = sorted(set(value) - allowed)
    if bad:
        return [f"characters {''.join(bad)!r} are not allowed in {value!r} (a SLURM name)"]
    if value.startswith("-"):
        return [f"must not start with '-' (it would read as an option), got {value!r}"]
    return []


def _slurm_parameters() -> set[str]:
    from submitit.slurm.slurm import _get_default_parameters

    return set(_get_default_parameters())


# ---------------------------------------------------------------------------- expansion


def _expand(spec: SweepSpec) -> tuple[list[PlannedRun], list[str]]:
    """The runs, and every problem of their configs (deduplicated, naming the runs)."""
    grid_keys = list(spec.grid)
    zip_keys = list(spec.zip)
    zip_rows = list(zip(*spec.zip.values(), strict=True)) if spec.zip else [()]
    runs: list[PlannedRun] = []
    problems: dict[str, list[str]] = {}
    ids: dict[str, str] = {}
    n_total = 0
    for grid_values in itertools.product(*spec.grid.values()):
        for zip_values in zip_rows:
            varied = dict(zip(grid_keys, grid_values, strict=True))
            varied.update(zip(zip_keys, zip_values, strict=True))
            for seed in spec.seeds:
                n_total += 1
                d = _config_dict(spec.base, varied, seed)
                where = ", ".join([*(f"{k}={_show(v)}" for k, v in varied.items()), f"seed={seed}"])
                msgs = _label_problems(d.get("label", "")) + _config_problems(d)
                config = None
                if not msgs:
                    try:
                        config = RunConfig.from_dict(d)
                    except (ValueError, TypeError) as err:  # pragma: no cover - caught above
                        msgs = [str(err).removeprefix("invalid run config: ")]
                for msg in msgs:
                    problems.setdefault(msg, []).append(where)
                if config is None:
                    continue
                run = PlannedRun(config, dict(varied))
                if run.run_id in ids:
                    msg = (
                        f"runs {ids[run.run_id]} and {where} have the same config "
                        f"(run id {run.run_id}); an axis changes nothing"
                    )
                    problems.setdefault(msg, [])
                    continue
                ids[run.run_id] = where
                runs.append(run)
    out = []
    for msg, where in problems.items():
        if not where or len(where) == n_total:
            out.append(msg)
        elif len(where) <= 3:
            out.append(f"{msg} (run {'; '.join(where)})")
        else:
            out.append(f"{msg} ({len(where)} runs, e.g. {where[0]})")
    return runs, out


def _config_problems(d: dict[str, Any]) -> list[str]:
    """:meth:`RunConfig.problems` of ``d`` as a list (unknown keys are checked apart)."""
    known = {f.name for f in dataclasses.fields(RunConfig)}
    try:
        RunConfig(**{k: v for k, v in d.items() if k in known})
    except InvalidRunConfig as err:
        return err.problems
    return []


def _config_dict(base: dict[str, Any], varied: dict[str, Any], seed: int) -> dict[str, Any]:
    """A run's config: ``base`` with the varied values. Whole settings are set first, then
    dotted keys, so that a table axis (``objective_cfg = [{center_momentum = 0.0}, {}]``) and
    a dotted axis into the same table (``"objective_cfg.teacher_temp"``) combine; the dotted
    value wins where both set a key."""
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in sorted(varied.items(), key=lambda item: "." in item[0]):
        top, _, sub = key.partition(".")
        if sub:
            d[top] = {**d.get(top, {}), sub: value}
        else:
            d[key] = dict(value) if isinstance(value, dict) else value
    d["seed"] = seed
    return _resolve_none(d)


def _resolve_none(d: dict[str, Any]) -> dict[str, Any]:
    """``"none"`` (or ``"null"``) -> ``None`` for settings (and objective parameters) that
    accept None."""
    optional = _optional_fields(RunConfig)
    for key, value in d.items():
        if key in optional and is_none(value):
            d[key] = None
    objective = d.get("objective", RunConfig.objective)
    cfg = d.get("objective_cfg")
    config_cls = None
    if isinstance(cfg, dict) and isinstance(objective, str):
        try:  # built-ins and plug-ins alike; an unknown name is reported by RunConfig
            config_cls = get_objective(objective).Config
        except ValueError:
            config_cls = None
    if config_cls is not None:
        optional_obj = _optional_fields(config_cls)
        d["objective_cfg"] = {
            k: (None if is_none(v) and k in optional_obj else v) for k, v in cfg.items()
        }
    return d


def _optional_fields(cls: type) -> set[str]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: leave the values alone
        return set()
    out = set()
    for name, hint in hints.items():
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            if type(None) in typing.get_args(hint):
                out.add(name)
    return out


# ---------------------------------------------------------------------------- helpers


def _label_problems(label: Any) -> list[str]:
    if not isinstance(label, str):
        return []  # RunConfig reports the type
    return [f"label {label!r}: {p}" for p in _path_part_problems(label)] if label else []


def _path_part_problems(text: str) -> list[str]:
    """A label or name becomes one path component: no '/', no control characters."""
    out = []
    if "/" in text or "\\" in text:
        out.append("must not contain '/' or '\\' (it names a directory)")
    if text in (".", ".."):
        out.append("must not be '.' or '..'")
    if _control_chars(text):
        out.append("control characters (newline, tab, ...) are not allowed")
    if len(text) > MAX_NAME:
        out.append(f"at most {MAX_NAME} characters (it names a folder), got {len(text)}")
    return out


def _control_chars(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _aslist(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _typename(v: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string"}.get(type(v), type(v).__name__)


def _show(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, default=str)
