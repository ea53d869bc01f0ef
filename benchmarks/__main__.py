"""``python -m benchmarks``: run the suite, print the table, write the JSON report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def build_parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Forward+backward time and peak memory of every objective against its "
        "reference implementation and the irreducible work, eager and torch.compile.",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="smoke run at a tiny size (seconds, no meaning)"
    )
    parser.add_argument(
        "--sizes",
        default="cpu,paper",
        help="comma-separated sizes: tiny, cpu, paper (paper needs CUDA; default cpu,paper)",
    )
    parser.add_argument("--objectives", default=None, help="comma-separated subset")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds per case")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--backend",
        default=None,
        help="torch.compile backend, or 'none' to time eager only (default inductor; none "
        "with --tiny, where --backend aot_eager checks the compiled path without code generation)",
    )
    parser.add_argument("--no-coding-rate", action="store_true", help="skip the coding-rate rows")
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="leave glibc malloc's thresholds alone (default: keep freed blocks in the process)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("results/benchmarks.json"),
        help="where to write the report (default results/benchmarks.json)",
    )
    parser.add_argument(
        "--render", type=Path, default=None, help="print the table of an existing JSON report"
    )
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks") -> int:
    args = build_parser(prog).parse_args(argv)
    from benchmarks import suite

    if args.render is not None:
        print(suite.format_table(json.loads(args.render.read_text())))
        return 0
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sizes = ["tiny"] if args.tiny else [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in suite.SIZES]
    objectives = suite.OBJECTIVES
    if args.objectives:
        objectives = tuple(o.strip() for o in args.objectives.split(","))
        unknown += [o for o in objectives if o not in suite.OBJECTIVES]
    if unknown:
        valid = ", ".join([*suite.SIZES, *suite.OBJECTIVES])
        print(f"unknown size or objective {unknown}; valid: {valid}", file=sys.stderr)
        return 2
    report = suite.run_suite(
        sizes,
        objectives=objectives,
        backend=args.backend or ("none" if args.tiny else "inductor"),
        rounds=args.rounds,
        coding_rate=not args.no_coding_rate,
        system_malloc=args.system_malloc,
    )
    print(suite.format_table(report))
    print()
    print(suite.LEGEND)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"\nreport written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
