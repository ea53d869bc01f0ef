"""``sslobj config [--objective NAME]``: every run setting and objective parameter with its type,
default and one-line meaning (read from the config classes' docstrings by
:mod:`sslobjectives.settings`)."""

from __future__ import annotations

import argparse
import re
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="every run setting (--set key=value, train files, spec [base]) and objective key",
        description="Every RunConfig key with its type, default and meaning, then each "
        "objective's keys (set them as objective_cfg.<key>, or <objective>.<key> in compare).",
    )
    p.add_argument("--objective", metavar="NAME", help="only this objective's keys")
    p.set_defaults(func=_run)


def format_settings(objective: str | None = None) -> str:
    """The run settings, then the keys of ``objective`` (default: of every objective).

    Raises ValueError for an unknown objective name (naming the nearest one)."""
    from sslobjectives.objectives import get, names
    from sslobjectives.settings import settings
    from sslobjectives.train.config import DICT_FIELDS, RunConfig

    wanted = [objective] if objective else names()
    classes = {name: get(name) for name in wanted}  # unknown names fail before printing
    blocks = [
        "Run settings (sslobj train files, --set key=value, sweep spec [base]); "
        f"dotted keys reach into {', '.join(DICT_FIELDS)} (dataset_kwargs.resize=32):",
        _table(settings(RunConfig)),
    ]
    for name, cls in classes.items():
        blocks += [
            "",
            f"Objective {name!r} (objective_cfg.<key>=value; in compare also {name}.<key>=value):",
            _table(settings(cls.Config)),
        ]
    return "\n".join(blocks)


def _table(rows) -> str:
    from sslobjectives.texttable import format_text_table

    return format_text_table(
        ["key", "type", "default", "meaning"],
        [[s.name, s.type, s.default, _plain(s.meaning)] for s in rows],
        rule=True,
    )


def _plain(text: str) -> str:
    """Docstring markup as terminal text: ``x`` -> x, :func:`~a.b` -> b."""
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?(\w+)`", r"\1", text)
    return text.replace("``", "")


def _run(args: argparse.Namespace) -> int:
    try:
        print(format_settings(args.objective))
    except ValueError as err:
        print(f"sslobj config: {err}", file=sys.stderr)
        return 2
    return 0
