"""``sslobj compare``: every objective on the same backbone, data and budget.

The default set is the BITS paper's comparison (arXiv 2602.09764, Tables 1-2) plus the
clustering paper's teacher (arXiv 2605.11870): ``dino``, ``kl_inverse_prior``, ``sinkhorn``,
``simdino``, ``bits`` with a fixed head and ``bits`` with a head reset every tenth of
training (the paper's n = 10 of 100 epochs), 3 seeds each, on ``digits``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslobjectives.objectives import get as get_objective
from sslobjectives.objectives import nearest_key
from sslobjectives.train.config import RunConfig
from sslobjectives.train.rundir import RunDir, run_dir_for, stale_reason
from sslobjectives.values import parse_value


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


def default_methods(epochs: int) -> list[Method]:
    return [
        Method("dino", "dino"),
        Method("kl_inverse_prior", "kl_inverse_prior"),
        Method("sinkhorn", "sinkhorn"),
        Method("simdino", "simdino"),
        Method("bits-fixed", "bits"),
        Method("bits-reset", "bits", run={"reset_period": reset_period_for(epochs)}),
    ]


def apply_overrides(
    base: dict[str, Any], methods: list[Method], overrides: list[str]
) -> tuple[dict[str, Any], list[Method]]:
    """Apply ``--set`` overrides: ``key=value`` for run settings, ``name.key=value`` for an
    objective's config, where ``name`` is an objective or a method label."""
    run_keys = [f for f in RunConfig.__dataclass_fields__]
    base = dict(base)
    methods = list(methods)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value or objective.key=value")
        key, raw = item.split("=", 1)
        value = parse_value(raw)
        if "." not in key:
            if key not in run_keys:
                raise ValueError(f"--set: unknown setting {key!r}{nearest_key(key, run_keys)}")
            base[key] = value
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
                f"--set {item!r}: {target!r} names no objective or label in this comparison"
                f"{nearest_key(target, valid)}; valid: {', '.join(valid)}"
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


def preflight(configs: list[RunConfig], out_dir: str | Path) -> dict[str, list[RunConfig]]:
    """Everything that can be known before a run starts, checked before any starts: the
    output folder is writable, every dataset loads, has two classes or more and holds a
    batch, and every run folder holds only the run's own files. A problem is a
    ``ValueError`` naming it. Returns the configs by what will happen to them: ``new``,
    ``resume``, ``done`` (reused), ``stale`` (a result of other code, see
    :func:`sslobjectives.train.rundir.stale_reason`)."""
    from sslobjectives.train.trainer import dataset_for

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
            data = dataset_for(c)
            labels = [y for y in (data.y_train, data.y_test) if y is not None]
            if len(labels) < 2:
                raise ValueError(f"dataset {c.dataset!r} has no labels: evaluation needs them")
            for part, y in zip(("training", "test"), labels, strict=True):
                if len(set(y.tolist())) < 2:
                    raise ValueError(
                        f"dataset {c.dataset!r}: the {part} split has one class; the k-NN and "
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


def _train_one(
    config: RunConfig, run_dir: str, progress: bool, reuse_stale: bool
) -> tuple[str, str | None]:
    """Train one run; (status, error). An exception of the run is its failure, recorded
    in its folder (``result.json``, status failed) and returned, not raised: the other
    runs go on and the summary names it."""
    from sslobjectives.train import train

    try:
        result = train(config, run_dir, resume=True, progress=progress, reuse_stale=reuse_stale)
    except Exception as err:  # noqa: BLE001 - every failure of a run is that run's
        text = str(err).strip().splitlines()
        reason = f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")
        try:
            RunDir(run_dir).record_failure(config, reason)
        except OSError:
            pass  # the folder cannot take it (full, read-only): the summary still says it
        return "failed", reason
    return result["status"], result.get("error")


def _train_in_worker(
    config: RunConfig, run_dir: str, threads: int, reuse_stale: bool = False
) -> tuple[str, str | None]:
    """One run in a pool process (its own torch thread count); (status, error)."""
    import torch

    torch.set_num_threads(threads)
    return _train_one(config, run_dir, False, reuse_stale)


def run_comparison(
    configs: list[RunConfig],
    out_dir: str | Path,
    *,
    progress: bool = True,
    jobs: int = 1,
    threads: int = 1,
    reuse_stale: bool = False,
) -> dict[str, Any]:
    """Train every config (finished runs are reused, interrupted ones resume, results of
    other code are rerun unless ``reuse_stale``), then write the table, CSVs and plots into
    ``out_dir``.

    ``jobs > 1`` trains that many runs at once, each in its own process with ``threads``
    torch threads (``jobs=1`` trains in this process, with its thread setting). Every run is
    seeded, so the results do not depend on ``jobs``. A run that fails is recorded and named
    in ``report["failures"]``; the table holds the runs that finished (``report["table"]``
    is None when none did).
    """
    from sslobjectives.results import write_report

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(configs), desc="runs", dynamic_ncols=True)
    failures = []

    def finished(config: RunConfig, status: str, error: str | None) -> None:
        if status != "done":
            failures.append(f"{config.display_name} seed {config.seed}: {error}")
        if bar is not None:
            bar.update(1)

    if jobs == 1:
        for config in configs:
            run_dir = str(run_dir_for(out_dir, config))
            finished(config, *_train_one(config, run_dir, progress, reuse_stale))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: a forked child would inherit this process's torch thread pool state
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {
                pool.submit(
                    _train_in_worker, c, str(run_dir_for(out_dir, c)), threads, reuse_stale
                ): c
                for c in configs
            }
            for fut in as_completed(futures):
                try:
                    outcome = fut.result()
                except Exception as err:  # noqa: BLE001 - the worker died (killed, OOM)
                    outcome = ("failed", f"worker process ended: {type(err).__name__}: {err}")
                finished(futures[fut], *outcome)
    if bar is not None:
        bar.close()
    # Each run's result from its own folder, checked to be its own: a result.json copied
    # from another run is an error naming the file, never a second copy of that run.
    results = []
    for c in configs:
        result = RunDir(run_dir_for(out_dir, c)).result(expect=c)
        if result is not None and result.get("status") == "done":
            result["_path"] = str(RunDir(run_dir_for(out_dir, c)).result_path)
            results.append(result)
    if results:
        report = write_report(results, out_dir)
    else:
        report = {"rows": [], "table": None, "plots": []}
    report["failures"] = failures
    return report
