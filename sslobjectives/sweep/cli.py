"""``sslobj sweep plan|submit|status|collect`` (registered by :mod:`sslobjectives.cli`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    sweep = sub.add_parser(
        "sweep",
        help="ablation sweeps from a TOML spec: plan, submit (SLURM/local/debug), status, collect",
        description="Ablation sweeps from a TOML spec (format: README 'Sweeps').",
    )
    ssub = sweep.add_subparsers(dest="sweep_command", required=True)

    p = ssub.add_parser("plan", help="the runs a spec expands to, and which are done")
    p.add_argument("spec", help="sweep spec (TOML)")
    p.add_argument("--out", help="sweep directory (default: [sweep] out or results/sweeps/NAME)")
    p.set_defaults(func=_plan)

    s = ssub.add_parser("submit", help="submit the runs not yet done (one SLURM array job)")
    s.add_argument("spec", help="sweep spec (TOML)")
    s.add_argument("--executor", choices=["slurm", "local", "debug"], help="override [executor]")
    s.add_argument("--out", help="sweep directory (default: [sweep] out or results/sweeps/NAME)")
    s.add_argument("--wait", action="store_true", help="slurm: wait until every run has ended")
    s.add_argument(
        "--reuse-stale",
        action="store_true",
        help="keep finished runs written by other code (default: rerun them, saying so)",
    )
    s.set_defaults(func=_submit)

    t = ssub.add_parser("status", help="per-run state: pending/running/requeued/done/failed")
    t.add_argument("dir", help="sweep directory")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(func=_status)

    c = ssub.add_parser("collect", help="table, CSVs and plots of the finished runs")
    c.add_argument("dir", help="sweep directory")
    c.add_argument(
        "--reuse-stale",
        action="store_true",
        help="include finished runs written by other code (default: leave them out, saying so)",
    )
    c.set_defaults(func=_collect)


def _load(path: str):
    """The spec; a :class:`SpecError` (every problem, joined on one line by the CLI)."""
    from sslobjectives.sweep.spec import load_spec

    return load_spec(path)


def _plan(args: argparse.Namespace) -> int:
    from sslobjectives.sweep.states import format_status, plan

    spec = _load(args.spec)
    out = Path(args.out or spec.default_out())
    states = plan(spec, out)
    sizes = " x ".join(f"{name} {n}" for name, n in spec.axis_sizes())
    ex = spec.executor
    print(f"sweep {spec.name!r} (spec {spec.spec_hash}): {len(states)} runs = {sizes}")
    if spec.description:
        print(spec.description)
    if spec.budget:
        print(f"budget: {spec.budget}")
    print(
        f"executor: {ex.kind}, {ex.array_parallelism} at a time, {ex.timeout_min:g} min per "
        f"attempt, {ex.cpus_per_task} cpu x {ex.tasks_per_node} task(s) x {ex.nodes} node(s)"
        + (f", partition {ex.partition}" if ex.partition else "")
    )
    print(f"varied: {', '.join(spec.varied) or '(nothing but the seed)'}")
    print(f"output: {out}")
    print(format_status(states, spec.varied, tails=False))
    return 0


#: What a command says on Ctrl-C: finished runs are kept and the rest resume from checkpoints.
INTERRUPTED = "interrupted — resume with the same command"


def _submit(args: argparse.Namespace) -> int:
    from sslobjectives.live import check_backends
    from sslobjectives.sweep.spec import SpecError
    from sslobjectives.sweep.submission import FolderBusy, submit
    from sslobjectives.train.datacheck import check_data

    spec = _load(args.spec)
    try:
        check_backends(spec.executor.log)  # the libraries of executor.log are installed
        # the data of every run, checked here once before anything is submitted
        for note in check_data(run.config for run in spec.expand()):
            print(note, flush=True)
    except ValueError as err:
        print(f"sslobj sweep: {err}", file=sys.stderr)
        return 2
    try:
        report = submit(
            spec,
            args.out,
            executor=args.executor,
            wait=args.wait,
            log=lambda msg: print(msg, flush=True),
            reuse_stale=args.reuse_stale,
        )
    except (SpecError, FolderBusy) as err:
        print(f"sslobj sweep: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except RuntimeError as err:
        print(f"sslobj sweep: {err}", file=sys.stderr)
        return 1
    print(f"sweep directory: {report.out}")
    print(f"  status:  sslobj sweep status {_quote(report.out)}")
    print(f"  collect: sslobj sweep collect {_quote(report.out)}")
    if report.errors:
        print(f"{len(report.errors)} runs failed:", file=sys.stderr)
        for msg in report.errors.values():
            print(f"  {msg}", file=sys.stderr)
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    from sslobjectives.sweep.manifest import read_manifest
    from sslobjectives.sweep.states import format_status, status

    manifest = read_manifest(args.dir)
    states = status(args.dir)
    if args.json:
        rows = [
            {
                "run_id": s.run_id,
                "label": s.label,
                "seed": s.seed,
                "varied": s.varied,
                "state": s.state,
                "job_id": s.job_id,
                "attempts": s.attempts,
                "detail": s.detail,
                "stale": s.stale,
                "run_dir": str(s.run_dir),
            }
            for s in states
        ]
        print(json.dumps(rows, indent=2, default=str))
    else:
        print(f"sweep {manifest.get('name')!r} in {Path(args.dir).resolve()}")
        print(format_status(states, manifest.get("varied", [])))
    return 0


def _collect(args: argparse.Namespace) -> int:
    from sslobjectives.sweep.collection import collect

    report = collect(args.dir, reuse_stale=args.reuse_stale)
    print(report["table"])
    files = ["runs.csv", "summary.csv", "table.txt", *(Path(p).name for p in report["plots"])]
    print(f"{report['n_done']} finished runs -> {Path(args.dir).resolve()} ({', '.join(files)})")
    if report["stale_note"]:
        print(f"sslobj sweep collect: {report['stale_note']}", file=sys.stderr)
    if report["missing"]:
        print(f"not finished ({len(report['missing'])}): " + "; ".join(report["missing"]))
    return 0


def _quote(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))
