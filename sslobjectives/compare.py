"""``sslobj compare``: every objective on the same backbone, data and budget.

The default set is the BITS paper's comparison (arXiv 2602.09764, Tables 1-2) plus the
clustering paper's teacher (arXiv 2605.11870): ``dino``, ``kl_inverse_prior``, ``sinkhorn``,
``simdino``, ``bits`` with a fixed head and ``bits`` with a head reset every tenth of
training (the paper's n = 10 of 100 epochs), 3 seeds each, by default on the embedded testbed
:data:`sslobjectives.testbed.DEFAULT`: ``shapes-colour`` (five shapes at 16 px, white on a
background of random hue, any rotation, position, scale; views with colour distortion) with
its recipe :data:`~sslobjectives.testbed.TESTBED_COLOUR` (the settings, each measured, with
which the objectives learn there: 60 epochs, ``bits`` at the paper's beta 0.1; docs/TESTBED.md,
"Colour"; ``--no-recipe`` runs the library defaults). ``shapes-hard`` (the same shapes in
grey) runs :data:`~sslobjectives.testbed.TESTBED`, the recipe of ``experiments/``: there
every objective's mean k-NN ends 0.10 or more above the raw input and the untrained backbone
as the runs measure it, though not above the untrained backbone with centred features, a
floor of the validity gate (docs/TESTBED.md, "The untrained backbone, centred").

Both ``bits`` methods run with ``head_kwargs={"logit_norm": "batch"}`` (:data:`BITS_HEAD`): an
affine-free BatchNorm on the logits, without which the channel stays closed at this scale
(BCE ~ B ln 2, teacher logits ~ 0.003; docs/TESTBED.md). It is a deliberate, measured
difference from the paper, whose head code is not available to us; it is visible in every
bits run's config and id. The paper-like head, ``logit_norm="none"``, stays available in a
run config or a sweep spec (``head_kwargs = {logit_norm = "none"}``).

``digits`` is a quick sanity set on which no objective passes the validity gate (the raw
pixels already beat every objective there): every table shows the baselines and a
``learned`` column, so this is visible, not hidden.

The command is a front end to the sweep engine: :func:`comparison_spec` writes the comparison
down as a sweep spec (as ``experiments/01_objective_comparison_digits.toml`` does) and
:func:`run_comparison` submits it to the local pool (:mod:`sslobjectives.sweep.pool`), so one
engine runs configs in parallel on a machine; the folder is also a sweep folder
(``sslobj sweep status`` reads it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sslobjectives.objectives import get as get_objective
from sslobjectives.objectives import nearest_key
from sslobjectives.testbed import Recipe
from sslobjectives.train.config import RunConfig, set_setting
from sslobjectives.train.rundir import RunDir, run_dir_for, stale_reason
from sslobjectives.values import parse_value

if TYPE_CHECKING:
    from sslobjectives.sweep.spec import SweepSpec


@dataclass(frozen=True)
class Method:
    """A labelled objective setting in a comparison."""

    label: str
    objective: str
    objective_cfg: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)  # run-level keys, e.g. reset_period


def reset_period_for(epochs: int, paper_period: int = 10, paper_epochs: int = 100) -> int:
    """The BITS reset period scaled to ``epochs`` (paper: every 10 of 100 epochs).

    >>> reset_period_for(30), reset_period_for(100), reset_period_for(5)
    (3, 10, 1)
    """
    return max(1, round(epochs * paper_period / paper_epochs))


#: Epochs of a comparison on data without a recipe (the testbed's recipe sets its own).
DEFAULT_EPOCHS = 30

#: The bits methods' head: the affine-free BatchNorm on the logits that opens the channel.
BITS_HEAD = {"logit_norm": "batch"}


def default_methods(epochs: int, recipe: Recipe | None = None) -> list[Method]:
    """The six methods of the comparison; with a ``recipe`` (the testbed's,
    :data:`sslobjectives.testbed.TESTBED`), each gets its objective family's settings from it
    (the method's own settings, such as :data:`BITS_HEAD`, on top) and the recipe's per-label
    settings (``bits-reset``'s period)."""
    methods = [
        Method("dino", "dino"),
        Method("kl_inverse_prior", "kl_inverse_prior"),
        Method("sinkhorn", "sinkhorn"),
        Method("simdino", "simdino"),
        Method("bits-fixed", "bits", run={"head_kwargs": dict(BITS_HEAD)}),
        Method(
            "bits-reset",
            "bits",
            run={"reset_period": reset_period_for(epochs), "head_kwargs": dict(BITS_HEAD)},
        ),
    ]
    if recipe is None:
        return methods
    out = []
    for m in methods:
        cfg, run = recipe.for_head_kind(get_objective(m.objective).head_kind)
        for key, value in m.run.items():  # the method's own settings over its family's
            both = isinstance(value, dict) and isinstance(run.get(key), dict)
            run[key] = {**run[key], **value} if both else value
        run.update(recipe.for_label(m.label))  # the recipe's word on this label last
        out.append(Method(m.label, m.objective, {**cfg, **m.objective_cfg}, run))
    return out


def apply_overrides(
    base: dict[str, Any], methods: list[Method], overrides: list[str]
) -> tuple[dict[str, Any], list[Method]]:
    """Apply ``--set`` overrides: ``key=value`` for run settings (a dotted key reaches into a
    table setting: ``dataset_kwargs.resize=32``), ``name.key=value`` for an objective's
    config, where ``name`` is an objective or a method label."""
    run_keys = [f for f in RunConfig.__dataclass_fields__]
    base = dict(base)
    methods = list(methods)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value or objective.key=value")
        key, raw = item.split("=", 1)
        value = parse_value(raw)
        if "." not in key or key.split(".", 1)[0] in run_keys:
            try:
                set_setting(base, key, value)
            except ValueError as err:
                raise ValueError(f"--set: {err}") from None
            continue
        target, sub = key.rsplit(".", 1)  # config keys have no dot; module paths may
        hit = False
        for i, m in enumerate(methods):
            if target in (m.objective, m.label):
                methods[i] = Method(m.label, m.objective, {**m.objective_cfg, sub: value}, m.run)
                hit = True
        if not hit:
            valid = sorted({m.label for m in methods} | {m.objective for m in methods})
            raise ValueError(
                f"--set {item!r}: {target!r} names no objective or label in this comparison "
                f"nor a setting{nearest_key(target, valid + run_keys)}; valid: {', '.join(valid)}"
            )
    return base, methods


def select_methods(methods: list[Method], wanted: list[str] | None) -> list[Method]:
    """Keep the methods named (by label or objective); unknown names are errors."""
    if not wanted:
        return methods
    out = []
    for name in wanted:
        found = [m for m in methods if name in (m.label, m.objective)]
        if not found and is_objective(name):
            found = [Method(name, name)]
        if not found:
            valid = [m.label for m in methods]
            raise ValueError(
                f"unknown objective {name!r}{nearest_key(name, valid)}; valid: {', '.join(valid)}"
            )
        out += [m for m in found if m not in out]
    return out


def is_objective(name: str) -> bool:
    """Whether ``name`` is a built-in, an installed plug-in or a loadable ``module:Class``
    (a plug-in that fails to load says why when its run config is built)."""
    try:
        get_objective(name)
    except ValueError:
        return ":" in name
    return True


def plan_runs(methods: list[Method], seeds: list[int], base: dict[str, Any]) -> list[RunConfig]:
    """One config per (method, seed); every problem is reported at once."""
    configs, problems = [], []
    for m in methods:
        for seed in seeds:
            d = {**base, **m.run, "objective": m.objective, "label": m.label, "seed": seed}
            d["objective_cfg"] = {**base.get("objective_cfg", {}), **m.objective_cfg}
            try:
                configs.append(RunConfig.from_dict(d))
            except ValueError as err:
                msg = f"{m.label}: {err}"
                if msg not in problems:
                    problems.append(msg)
    if problems:
        raise ValueError("\n".join(problems))
    return configs


def augment_text(configs: list[RunConfig]) -> str:
    """The resolved views of a comparison's runs, one line per distinct setting (a comparison
    shares them, so normally one): the dataset source's defaults with the runs' ``augment``
    overrides, as every run records them in ``result.json``."""
    import dataclasses

    from sslobjectives.data import default_augment
    from sslobjectives.train.trainer import dataset_for

    lines: list[str] = []
    for config in configs:
        aug = default_augment(dataset_for(config), config.n_local, config.augment)
        shown = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(aug).items())
        line = f"augmentation ({config.dataset}): {shown}"
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)


def expansions(methods: list[Method], wanted: list[str] | None) -> list[str]:
    """What each name of ``--objectives`` that stands for several labels runs, one line each
    (``bits`` -> ``bits-fixed`` and ``bits-reset``): a group never expands silently."""
    lines = []
    for name in wanted or []:
        labels = [m.label for m in methods if name in (m.label, m.objective)]
        if len(labels) > 1 or (labels and labels != [name]):
            shown = ", ".join(labels[:-1]) + f" and {labels[-1]}" if len(labels) > 1 else labels[0]
            lines.append(f"--objectives {name}: runs {shown}")
    return lines


def preflight(configs: list[RunConfig], out_dir: str | Path) -> dict[str, list[RunConfig]]:
    """Everything that can be known before a run starts, checked before any starts: the
    output folder is writable, every dataset loads, has two classes or more and holds a
    batch, and every run folder holds only the run's own files. A problem is a
    ``ValueError`` naming it. Returns the configs by what will happen to them: ``new``,
    ``resume``, ``done`` (reused), ``stale`` (a result of other code, see
    :func:`sslobjectives.train.rundir.stale_reason`)."""
    from sslobjectives.train.datacheck import dataset_for, eval_dataset_for

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    probe = out_dir / f".write-test-{id(configs)}"
    try:
        probe.write_bytes(b"x")
    finally:
        probe.unlink(missing_ok=True)
    checked: set[tuple] = set()
    plan: dict[str, list[RunConfig]] = {"new": [], "resume": [], "done": [], "stale": []}
    for c in configs:
        key = (c.dataset, c.data_seed, repr(sorted(c.dataset_kwargs.items())))
        if key not in checked:
            checked.add(key)
            # unlabelled data trains (label-free diagnostics); labels that exist, of the
            # training data or of --eval-dataset, must hold two classes or more
            data = eval_dataset_for(c, dataset_for(c))
            for part, y in (("training", data.y_train), ("test", data.y_test)):
                if y is not None and len(set(y.tolist())) < 2:
                    raise ValueError(
                        f"dataset {data.name!r}: the {part} split has one class; the k-NN and "
                        "linear probes need at least two (give images of two classes or more)"
                    )
        n_train = dataset_for(c).x_train.shape[0]
        if c.batch_size > n_train:
            raise ValueError(
                f"batch_size {c.batch_size} exceeds the {n_train} training images of "
                f"{c.dataset!r}: use --batch-size {n_train} or less"
            )
        run = RunDir(run_dir_for(out_dir, c))
        result = run.result(expect=c)
        if result is not None and result.get("status") == "done":
            plan["stale" if stale_reason(result) else "done"].append(c)
        elif run.checkpoint_path.exists():
            run.load_checkpoint(expect=c)
            plan["resume"].append(c)
        else:
            plan["new"].append(c)
    return plan


#: A comparison's runs are not meant to time out: one attempt may take this long.
COMPARE_TIMEOUT_MIN = 7 * 24 * 60


def comparison_spec(
    methods: list[Method],
    seeds: list[int],
    base: dict[str, Any],
    out: str | Path,
    *,
    jobs: int = 1,
    threads: int = 1,
    log: list[str] | tuple[str, ...] = (),
) -> SweepSpec:
    """The sweep spec of a comparison, as ``experiments/01_*.toml`` writes one down: the
    shared settings in ``[base]``, one ``[zip]`` row per method (label, objective, its
    objective config and run-level keys such as ``reset_period``), the seeds, and the local
    pool with ``jobs`` workers of ``threads`` torch threads; ``log`` names the live-metrics
    backends each run logs to in its run folder (``executor.log``).

    Its runs are :func:`plan_runs`'s configs (same run ids, so the same run folders).
    """
    from sslobjectives.sweep.spec import parse_spec

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if not seeds:
        raise ValueError("no seeds: --seeds takes a count >= 1 or a comma list")
    defaults = {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(RunConfig)
    }
    run_keys = sorted({k for m in methods for k in m.run})
    shared_cfg = base.get("objective_cfg", {})
    axes: dict[str, list[Any]] = {
        "label": [m.label for m in methods],
        "objective": [m.objective for m in methods],
        "objective_cfg": [{**shared_cfg, **m.objective_cfg} for m in methods],
    }
    for key in run_keys:
        values = [m.run.get(key, base.get(key, defaults.get(key))) for m in methods]
        axes[key] = ["none" if v is None else v for v in values]
    data = {
        "sweep": {"name": "compare", "seeds": list(seeds), "out": str(out)},
        "base": {k: v for k, v in base.items() if k not in ("objective_cfg", *run_keys)},
        "zip": axes,
        "executor": {
            "kind": "local",
            "array_parallelism": jobs,
            "cpus_per_task": threads,
            "timeout_min": COMPARE_TIMEOUT_MIN,
            "max_num_timeout": 0,
        },
    }
    if log:  # only then: the spec (and its hash) of a comparison without it is unchanged
        data["executor"]["log"] = list(dict.fromkeys(log))
    return parse_spec(data, source="sslobj compare")


def run_comparison(
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    reuse_stale: bool = False,
) -> dict[str, Any]:
    """Train the runs of ``spec`` with the sweep engine's local pool (finished runs are reused,
    interrupted ones resume from their checkpoint, results of other code are rerun unless
    ``reuse_stale``), then write the table, CSVs and plots into ``out_dir``
    (``report["table"]`` is None when no run finished).

    Every run is seeded, so the results do not depend on how many run at once. The folder is
    locked meanwhile; a table of another comparison found there is replaced, and said so.
    """
    from sslobjectives.baselines import prefill
    from sslobjectives.results import stale_note, write_report
    from sslobjectives.sweep.submission import FolderLock, submit
    from sslobjectives.train.rundir import RunDir

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = spec.expand()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        done_epochs = sum(
            r.config.epochs for r in runs if RunDir.for_config(out_dir, r.config).is_done()
        )
        bar = tqdm(
            total=sum(r.config.epochs for r in runs),
            initial=done_epochs,
            desc="epochs of all runs",
            unit="epoch",
            dynamic_ncols=True,
        )
        log = bar.write

    def on_event(kind: str, run, info: dict[str, Any]) -> None:
        if bar is None:
            return
        if kind == "start" and info.get("resume_epoch"):
            bar.update(int(info["resume_epoch"]))
        elif kind == "epoch":
            bar.update(1)
            knn = info.get("knn")
            bar.set_postfix_str(
                f"{run.config.display_name} s{run.config.seed} epoch {info['epoch'] + 1} "
                f"loss {info['loss']:.3f}" + (f" knn {knn:.3f}" if knn is not None else ""),
                refresh=False,
            )

    try:
        with FolderLock(out_dir):
            report = submit(
                spec,
                out_dir,
                executor="local",
                log=log,
                on_event=on_event,
                reuse_stale=reuse_stale,
            )
            wanted = {r.run_id for r in runs}
            # Each run's result from its own folder, checked to be its own: a result.json
            # copied from another run is an error naming the file, never a second copy of it.
            results, stale = [], []
            for r in runs:
                files = RunDir.for_config(out_dir, r.config)
                result = files.result(expect=r.config)
                if result is not None and result.get("status") == "done":
                    result["_path"] = str(files.result_path)
                    results.append(result)
                    if stale_reason(result) is not None:  # kept, or went stale as it ran
                        stale.append(f"{r.config.display_name} s{r.config.seed}")
            note = _replaced_report_note(out_dir, wanted)
            if note:
                log(note)
            if results:
                # the baselines' models are trained by the pool's workers, not one by one
                prefill(
                    RunConfig.from_dict(results[0]["config"]),
                    [int(r.get("seed", 0)) for r in results],
                    out_dir,
                    jobs=spec.executor.array_parallelism,
                )
                # without --reuse-stale, a stale result here was trained by this call and
                # went stale because the package's code changed while the runs trained
                why = "--reuse-stale" if reuse_stale else "the package changed while they trained"
                written = write_report(results, out_dir, notes=[stale_note(stale, True, why)])
            else:
                written = {"rows": [], "table": None, "plots": []}
    finally:
        if bar is not None:
            bar.close()
    written["failures"] = [msg.removeprefix("FAILED ") for msg in report.errors.values()]
    return written


def _replaced_report_note(out_dir: Path, wanted: set[str]) -> str | None:
    """A note when ``out_dir`` holds the table of a comparison of other runs (its run folders
    stay; its table, CSVs and plots are about to be replaced)."""
    import csv

    path = out_dir / "runs.csv"
    try:
        with open(path, newline="") as fh:
            before = {row.get("run_id") for row in csv.DictReader(fh)}
    except (OSError, csv.Error):
        return None
    if not before or before <= wanted:
        return None
    other = len(before - wanted)
    return (
        f"note: {out_dir} held the table of another comparison ({other} run(s) not in this "
        "one): table.txt, runs.csv, summary.csv and the plots are replaced by this one's "
        "(its runs stay in runs/; use another --out to keep both tables)"
    )
