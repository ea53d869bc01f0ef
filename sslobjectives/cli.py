"""The ``sslobj`` command (also ``python -m sslobjectives``).

Every error a user can cause ends the same way, in one place (:func:`main`): one line on
stderr naming the problem (and, where the message knows it, the fix), exit status 2, no
traceback. Errors of the user's own making are ``ValueError`` (bad values, bad files),
``TypeError`` (a value of the wrong type reaching the API) and ``OSError`` (a folder that
cannot be read or written). Failures of runs that have started are not errors of the
command: they are recorded per run, summarised, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from sslobjectives.testbed import DEFAULT

#: Exit status of a command refused before it did anything (bad arguments, specs, files).
USAGE_ERROR = 2
#: Set to print the traceback of an unexpected error (a bug) instead of one line.
DEBUG_ENV = "SSLOBJ_DEBUG"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``sslobj compare: --threads: must be ... (see --help)``."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(USAGE_ERROR, f"{self.prog}: {one_line(message)} (see {self.prog} --help)\n")


def one_line(message: object) -> str:
    """``message`` on one line (the lines of a multi-problem error joined by ``; ``).

    >>> one_line("spec.toml: 2 problems:\\n  - a\\n  - b")
    'spec.toml: 2 problems: a; b'
    """
    lines = [ln.strip().removeprefix("- ").strip() for ln in str(message).splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        return type(message).__name__ if isinstance(message, BaseException) else ""
    head, rest = lines[0], lines[1:]
    if not rest:
        return head
    return head + (" " if head.endswith(":") else "; ") + "; ".join(rest)


def _error_text(err: BaseException) -> str:
    """The one line an error gets: OSErrors name their file, others their message."""
    if isinstance(err, OSError) and err.filename is not None:
        what = err.strerror or type(err).__name__
        return f"{err.filename}: {what} (choose a folder you can write to, with free space)"
    text = one_line(err)
    if isinstance(err, UnicodeDecodeError):
        text = f"a file is not UTF-8 text ({text})"
    return text or type(err).__name__


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
    """``3`` -> seeds 0, 1, 2; ``0,5,7`` -> those seeds (at least one, no repeats).

    >>> _seeds("3"), _seeds("0,5,7")
    ([0, 1, 2], [0, 5, 7])
    """
    msg = f"must be a count >= 1 or a comma list of seeds >= 0 (3 or 0,5,7), got {text!r}"
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            seeds = list(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(msg) from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(msg)
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"repeats a seed (each seed once), got {text!r}")
    return seeds


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _report(args: argparse.Namespace) -> int:
    from sslobjectives.report import main as report

    return report(
        args.dirs,
        args.out,
        claims=args.claims,
        experiments_dir=args.experiments,
        reuse_stale=args.reuse_stale,
    )


def _compare(args: argparse.Namespace) -> int:
    from sslobjectives.compare import (
        DEFAULT_EPOCHS,
        apply_overrides,
        augment_text,
        comparison_spec,
        default_methods,
        expansions,
        plan_runs,
        preflight,
        run_comparison,
        select_methods,
    )
    from sslobjectives.live import check_backends
    from sslobjectives.sweep.cli import INTERRUPTED
    from sslobjectives.sweep.submission import FolderBusy
    from sslobjectives.testbed import recipe_for
    from sslobjectives.train.datacheck import check_data

    check_backends(args.log)  # a misspelt or missing backend: one line, before any run
    # the testbed's recipe under the command line's explicit options and --set
    recipe = None if args.no_recipe else recipe_for(args.dataset)
    base = recipe.base() if recipe is not None else {"dataset": args.dataset}
    if recipe is not None and args.backbone != "cnn":
        base.pop("backbone_kwargs", None)  # the recipe's strides are the CNN's
    base["backbone"] = args.backbone
    if args.epochs is not None or "epochs" not in base:
        base["epochs"] = args.epochs or DEFAULT_EPOCHS
    args.epochs = base["epochs"]
    for key in ("batch_size", "n_local", "device", "eval_dataset"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    all_methods = default_methods(args.epochs, recipe)
    methods = select_methods(all_methods, args.objectives)
    base, methods = apply_overrides(base, methods, args.set)
    configs = plan_runs(methods, args.seeds, base)
    # every data problem in one line (a DataError), then everything else a run would
    # meet, before any run starts
    data_notes = check_data(configs)
    state = preflight(configs, args.out)
    # The default models are tiny: one thread per run is fastest, and two threads fighting
    # over two busy cores were measured 12x slower per epoch (0.58 s vs 7.1 s, digits, dino).
    jobs = args.jobs or max(1, (os.cpu_count() or 1) // max(args.threads, 1))
    jobs = min(jobs, len(configs))
    spec = comparison_spec(
        methods, args.seeds, base, args.out, jobs=jobs, threads=args.threads, log=args.log
    )
    views = augment_text(configs)
    for line in expansions(all_methods, args.objectives):
        print(line, flush=True)
    if recipe is not None:
        print(f"{args.dataset}: {recipe.why} (--no-recipe: the library defaults)", flush=True)
    print(
        f"{len(configs)} runs ({len(methods)} objectives x {len(args.seeds)} seeds) on "
        f"{args.dataset} with {args.backbone}, {args.epochs} epochs -> {args.out}",
        flush=True,
    )
    for note in data_notes:
        print(note, flush=True)
    if state["stale"]:
        names = ", ".join(f"{c.display_name} s{c.seed}" for c in state["stale"][:6])
        more = "" if len(state["stale"]) <= 6 else f" and {len(state['stale']) - 6} more"
        verb = "kept (--reuse-stale)" if args.reuse_stale else "rerun (--reuse-stale keeps them)"
        print(
            f"{len(state['stale'])} finished runs come from other code ({names}{more}): {verb}",
            flush=True,
        )
    print(views, flush=True)
    if jobs > 1:
        print(f"{jobs} runs at a time, {args.threads} torch thread(s) each", flush=True)
    try:
        report = run_comparison(
            spec,
            args.out,
            progress=not args.no_progress,
            log=lambda m: print(m, flush=True),
            reuse_stale=args.reuse_stale,
        )
    except FolderBusy as err:
        print(f"sslobj compare: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    if report["table"] is not None:
        print(report["table"])
        print(
            f"results: {args.out} (runs.csv, summary.csv, table.txt, "
            + ", ".join(p.rsplit("/", 1)[-1] for p in report["plots"])
            + ")"
        )
    if report["failures"]:
        n = len(report["failures"])
        print(f"{n} of {len(configs)} runs failed:", file=sys.stderr)
        for failure in report["failures"]:
            print(f"  FAILED {failure}", file=sys.stderr)
        return 1
    return 0


def _bench(args: argparse.Namespace) -> int:
    """``benchmarks/`` sits beside the package in a source checkout; it is not installed."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "__main__.py").is_file():
        print(
            "sslobj bench: the benchmarks are not installed with the package; run `sslobj bench` "
            "in a clone of the source repository (pip install -e . there).",
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
    parser = Parser(
        prog="sslobj", description="Compare self-supervised objectives on one backbone."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="every objective on a random multi-crop batch")
    demo.add_argument("--batch", type=_positive, default=64)
    demo.add_argument("--dim", type=_positive, default=128)
    demo.add_argument("--local-views", type=_non_negative, default=4)
    demo.add_argument("--seed", type=_non_negative, default=0)
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
        default=DEFAULT.dataset,
        help="shapes-colour (the testbed: white shapes on backgrounds of random hue, run "
        "with its recipe, 60 epochs), shapes-hard (the same shapes in grey, with the recipe "
        "of experiments/), digits (a quick sanity set on which pixels already win), shapes, "
        f"a .npz file or an image folder (default: {DEFAULT.dataset})",
    )
    cmp_.add_argument(
        "--no-recipe",
        action="store_true",
        help="on the testbed, run the library defaults instead of its recipe "
        "(sslobjectives.testbed)",
    )
    cmp_.add_argument(
        "--eval-dataset",
        dest="eval_dataset",
        metavar="DATASET",
        help="a labelled dataset of the same image shape to evaluate on (k-NN, probe, mAP); "
        "for data without labels",
    )
    cmp_.add_argument(
        "--backbone",
        default="cnn",
        help="cnn, mlp (the one for (N, D) vectors), vit or timm:<name>",
    )
    cmp_.add_argument(
        "--epochs",
        type=_positive,
        help="epochs per run (default: the recipe's, 60 on the testbed shapes-colour, 20 on "
        "shapes-hard; 30 elsewhere)",
    )
    cmp_.add_argument(
        "--seeds",
        type=_seeds,
        default=[0, 1, 2],
        help="a count (3 = seeds 0,1,2) or a comma list (default: 3)",
    )
    cmp_.add_argument("--batch-size", type=_positive, dest="batch_size")
    cmp_.add_argument(
        "--n-local", type=_non_negative, dest="n_local", help="local views per sample"
    )
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
        "--threads", type=_positive, default=1, help="torch CPU threads (default 1: fastest here)"
    )
    cmp_.add_argument(
        "--jobs",
        type=_positive,
        help="runs trained at once, each in its own process (default: CPU count / threads)",
    )
    cmp_.add_argument("--no-progress", action="store_true", help="no progress bars")
    cmp_.add_argument(
        "--log",
        action="append",
        default=[],
        metavar="BACKEND",
        help="live metrics of every run, in its run folder: tensorboard (extra [tensorboard]) "
        "or wandb (extra [wandb]); repeatable",
    )
    cmp_.add_argument(
        "--reuse-stale",
        action="store_true",
        help="keep finished runs written by other code (default: rerun them, saying so)",
    )
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

    from sslobjectives.commands import config, evaluate, export, train
    from sslobjectives.sweep.cli import add_sweep_parser

    for command in (train, config, export, evaluate):  # the daily loop: sslobjectives/commands/
        command.add_parser(sub)
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
    rep.add_argument(
        "--reuse-stale",
        action="store_true",
        help="include finished runs written by other code (default: leave them out, saying so)",
    )
    rep.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user's error is one line on stderr and exit status 2 (see the
    module docstring), a bug one line and exit status 1 (``SSLOBJ_DEBUG=1``: traceback)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    prog = " ".join(["sslobj", args.command, getattr(args, "sweep_command", None) or ""]).strip()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as err:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"{prog}: {_error_text(err)}", file=sys.stderr)
        return USAGE_ERROR
    except Exception as err:  # a bug: still one line, the traceback on request
        if os.environ.get(DEBUG_ENV):
            raise
        print(
            f"{prog}: internal error: {type(err).__name__}: {one_line(err)} "
            f"(rerun with {DEBUG_ENV}=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
