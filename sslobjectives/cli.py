"""The ``sslobj`` command (also ``python -m sslobjectives``)."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from sslobjectives.demo import format_table, run_demo

    rows = run_demo(batch=args.batch, dim=args.dim, n_local=args.local_views, seed=args.seed)
    print(format_table(rows))
    return 0


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
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
