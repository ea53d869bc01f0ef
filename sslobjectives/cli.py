"""The ``sslobj`` command (also ``python -m sslobjectives``)."""

from __future__ import annotations

import argparse
import os
import sys


def _demo(args: argparse.Namespace) -> int:
    from sslobjectives.demo import format_table, run_demo

    rows = run_demo(
        batch=args.batch,
        dim=args.dim,
        n_local=args.local_views,
        seed=args.seed,
        objectives=args.objectives,
    )
    print(format_table(rows))
    return 0


def _seeds(text: str) -> list[int]:
    """``3`` -> seeds 0, 1, 2; ``0,5,7`` -> those seeds."""
    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        return list(range(int(text)))
    except ValueError:
        msg = f"seeds must be a count or a comma list, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _report(args: argparse.Namespace) -> int:
    from sslobjectives.report import main as report

    return report(args.dirs, args.out, claims=args.claims, experiments_dir=args.experiments)


def _compare(args: argparse.Namespace) -> int:
    from sslobjectives.compare import (
        apply_overrides,
        augment_text,
        comparison_spec,
        default_methods,
        expansions,
        plan_runs,
        run_comparison,
        select_methods,
    )
    from sslobjectives.sweep.cli import INTERRUPTED
    from sslobjectives.sweep.submission import FolderBusy

    base = {"dataset": args.dataset, "backbone": args.backbone, "epochs": args.epochs}
    for key in ("batch_size", "n_local", "device"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    try:
        methods = select_methods(default_methods(args.epochs), args.objectives)
        base, methods = apply_overrides(base, methods, args.set)
        configs = plan_runs(methods, args.seeds, base)
        # The default models are tiny: one thread per run is fastest, and two threads fighting
        # over two busy cores were measured 12x slower per epoch (0.58 s vs 7.1 s, digits, dino).
        jobs = args.jobs or max(1, (os.cpu_count() or 1) // max(args.threads, 1))
        jobs = min(jobs, len(configs))
        spec = comparison_spec(methods, args.seeds, base, args.out, jobs=jobs, threads=args.threads)
        views = augment_text(configs)
    except ValueError as err:
        print(f"sslobj compare: {err}", file=sys.stderr)
        return 2
    for line in expansions(default_methods(args.epochs), args.objectives):
        print(line, flush=True)
    print(
        f"{len(configs)} runs ({len(methods)} objectives x {len(args.seeds)} seeds) on "
        f"{args.dataset} with {args.backbone}, {args.epochs} epochs -> {args.out}",
        flush=True,
    )
    print(views, flush=True)
    if jobs > 1:
        print(f"{jobs} runs at a time, {args.threads} torch thread(s) each", flush=True)
    try:
        report = run_comparison(
            spec, args.out, progress=not args.no_progress, log=lambda m: print(m, flush=True)
        )
    except FolderBusy as err:
        print(f"sslobj compare: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    print(report["table"])
    print(
        f"results: {args.out} (runs.csv, summary.csv, table.txt, "
        + ", ".join(p.rsplit("/", 1)[-1] for p in report["plots"])
        + ")"
    )
    for failure in report["failures"]:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if report["failures"] else 0


def _bench(args: argparse.Namespace) -> int:
    """``benchmarks/`` sits beside the package in a source checkout; it is not installed."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "__main__.py").is_file():
        print(
            f"sslobj bench: no benchmarks/ directory next to the sslobjectives package ({root}). "
            "The benchmarks ship with the source repository, not with the installed package: "
            "run `sslobj bench` from an editable install (pip install -e .) of a checkout, "
            "or `python -m benchmarks` in the checkout.",
            file=sys.stderr,
        )
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.__main__ import main as bench

    return bench(args.bench_args, prog="sslobj bench")


def _verify(args: argparse.Namespace) -> int:
    if args.objective:  # a (plug-in) objective's contract checks instead of the claims
        from sslobjectives.objectives import check_objective
        from sslobjectives.objectives.plugins import format_checks

        try:
            checks = check_objective(args.objective)
        except ValueError as err:
            print(f"sslobj verify: {err}", file=sys.stderr)
            return 2
        print(format_checks(args.objective, checks))
        return 0 if all(c.passed for c in checks) else 1
    from sslobjectives.verify import main as verify

    return verify(json_path=args.json, plot_dir=args.plot, seed=args.seed, claims=args.claims)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sslobj", description="Compare self-supervised objectives on one backbone."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="every objective on a random multi-crop batch")
    demo.add_argument("--batch", type=int, default=64)
    demo.add_argument("--dim", type=int, default=128)
    demo.add_argument("--local-views", type=int, default=4)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--objectives", nargs="+", metavar="NAME", help="names or module:Class (default: all)"
    )
    demo.set_defaults(func=_demo)

    cmp_ = sub.add_parser(
        "compare",
        help="train every objective on the same backbone, data and budget; table and plots",
    )
    cmp_.add_argument(
        "--objectives",
        nargs="+",
        metavar="NAME",
        help="labels or objective names (default: the six of the comparison)",
    )
    cmp_.add_argument(
        "--dataset",
        default="digits",
        help="digits, shapes, a .npz file or an image folder (default: digits)",
    )
    cmp_.add_argument("--backbone", default="cnn", help="cnn, mlp, vit or timm:<name>")
    cmp_.add_argument("--epochs", type=int, default=30)
    cmp_.add_argument(
        "--seeds",
        type=_seeds,
        default=[0, 1, 2],
        help="a count (3 = seeds 0,1,2) or a comma list (default: 3)",
    )
    cmp_.add_argument("--batch-size", type=int, dest="batch_size")
    cmp_.add_argument("--n-local", type=int, dest="n_local", help="local views per sample")
    cmp_.add_argument("--device", choices=["auto", "cpu", "cuda"])
    cmp_.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override: lr=0.002 (run setting) or bits.beta=0.2 (objective)",
    )
    cmp_.add_argument("--out", default="results/compare", help="results directory")
    cmp_.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: fastest here)"
    )
    cmp_.add_argument(
        "--jobs",
        type=_positive,
        help="runs trained at once, each in its own process (default: CPU count / threads)",
    )
    cmp_.add_argument("--no-progress", action="store_true", help="no progress bars")
    cmp_.set_defaults(func=_compare)

    ver = sub.add_parser(
        "verify",
        help="every theoretical claim: sympy proof + numeric check of the library, as a table",
    )
    ver.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ver.add_argument(
        "--plot", metavar="DIR", help="write the Jensen gap / KL plot (PNG) and its numbers"
    )
    ver.add_argument("--seed", type=int, default=0, help="seed of the numeric cases")
    ver.add_argument(
        "--claims", type=int, nargs="+", metavar="ID", help="only these claims (default: all)"
    )
    ver.add_argument(
        "--objective",
        metavar="NAME",
        help="instead of the claims, check one objective (a plug-in's name or module:Class) "
        "against the objective contract",
    )
    ver.set_defaults(func=_verify)

    bench = sub.add_parser(
        "bench",
        add_help=False,  # --help and every option go to benchmarks/ (sslobj bench --help)
        help="speed and memory of the objectives vs reference code (source checkout only)",
    )
    bench.set_defaults(func=_bench)

    from sslobjectives.sweep.cli import add_sweep_parser

    add_sweep_parser(sub)

    rep = sub.add_parser(
        "report",
        help="markdown report of collected sweeps next to the papers' claims (docs/RESULTS.md)",
    )
    rep.add_argument(
        "dirs", nargs="+", metavar="RESULTS_DIR", help="sweep directories, or a folder of them"
    )
    rep.add_argument("-o", "--out", default="docs/RESULTS.md", help="markdown file to write")
    rep.add_argument("--claims", help="claims file (default: experiments/claims.toml)")
    rep.add_argument(
        "--experiments", help="specs of result folders without a manifest (default: experiments/)"
    )
    rep.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
