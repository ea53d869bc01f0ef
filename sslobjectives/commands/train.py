"""``sslobj train CONFIG.toml [--set key=value ...] [--out DIR] [--log BACKEND]``: one run.

The file holds RunConfig keys (``sslobj config`` lists them), read and checked as a sweep
spec's ``[base]`` is (:func:`sslobjectives.sweep.spec.parse_run`), plus ``seed``::

    objective = "bits"
    epochs = 20
    dataset = "path/to/images"
    dataset_kwargs.resize = 32
    [objective_cfg]
    beta = 0.2

The run goes where ``sslobj compare`` puts the same config (``DIR/runs/<label>-s<seed>-<run
id>/``, written through :class:`~sslobjectives.train.rundir.RunDir`), and the table, CSVs and
plots of ``compare`` are written into ``DIR``. Running the same command again resumes an
interrupted run, or returns a finished one's result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sslobjectives.cli import _positive


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="one run from a TOML file of run settings (resumable: rerun to resume)",
        description="One run from a TOML file of RunConfig keys (sslobj config lists them). "
        "The same command again resumes it.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="run settings (TOML)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting: lr=0.002, dataset_kwargs.resize=32, objective_cfg.beta=0.2",
    )
    p.add_argument("--out", default="results/train", help="output directory (default: %(default)s)")
    p.add_argument(
        "--log",
        action="append",
        default=[],
        metavar="BACKEND",
        help="live metrics: tensorboard (extra [tensorboard]) or wandb (extra [wandb]); repeatable",
    )
    p.add_argument("--threads", type=_positive, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def load_run_config(path: str | Path, overrides: list[str] = ()) -> Any:
    """The :class:`~sslobjectives.train.config.RunConfig` of a train file with ``--set``
    overrides applied (dotted keys reach into table settings). Raises ValueError (a
    :class:`~sslobjectives.sweep.spec.SpecError` listing every problem)."""
    from sslobjectives.sweep.spec import SpecError, parse_run, read_toml
    from sslobjectives.train.config import set_setting
    from sslobjectives.values import parse_value

    data = read_toml(path, "config")
    problems = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            problems.append(f"--set {item!r}: expected key=value")
            continue
        try:
            if key == "seed":  # not a [base] key in specs, but one run has one
                data["seed"] = parse_value(raw)
            else:
                set_setting(data, key, parse_value(raw))
        except ValueError as err:
            problems.append(f"--set: {err}")
    if problems:
        raise SpecError(str(path), problems)
    return parse_run(data, source=str(path))


def train_one(
    config: Any,
    out: str | Path,
    *,
    log: list[str] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume, or reuse) ``config`` below ``out`` and write compare's table, CSVs and
    plots there. Returns ``{"result", "run_dir", "report"}``."""
    from sslobjectives.live import open_loggers
    from sslobjectives.results import load_results, write_report
    from sslobjectives.train import train
    from sslobjectives.train.rundir import run_dir_for

    out = Path(out)
    run_dir = run_dir_for(out, config)
    logger = open_loggers(log, run_dir, {**config.to_dict(), "run_id": config.run_id})
    try:
        result = train(config, run_dir, resume=True, progress=progress, logger=logger)
    finally:
        logger.close()
    done = [r for r in load_results([out / "runs"]) if r["run_id"] == config.run_id]
    report = write_report(done, out) if done else None
    return {"result": result, "run_dir": run_dir, "report": report}


def _run(args: argparse.Namespace) -> int:
    from sslobjectives.live import check_backends

    try:
        check_backends(args.log)
        config = load_run_config(args.config, args.set)
    except ValueError as err:
        print(f"sslobj train: {err}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    print(f"run {config.display_name} seed {config.seed} ({config.run_id}) -> {args.out}")
    try:
        outcome = train_one(config, args.out, log=args.log, progress=not args.no_progress)
    except (ImportError, ValueError) as err:
        print(f"sslobj train: {err}", file=sys.stderr)
        return 2
    result = outcome["result"]
    if outcome["report"] is not None:
        print(outcome["report"]["table"])
    print(f"run folder: {outcome['run_dir']}")
    if result["status"] != "done":
        print(f"FAILED {config.display_name}: {result.get('error')}", file=sys.stderr)
        return 1
    return 0
