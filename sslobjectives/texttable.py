"""Plain-text tables: columns padded to their widest cell, two spaces apart.

>>> print(format_text_table(["name", "n"], [["dino", "3"], ["bits-reset", "12"]], right={1}))
name         n
dino         3
bits-reset  12
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


def format_text_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Collection[int] = (),
    rule: bool = False,
) -> str:
    """``header`` and ``rows`` (cells as text) as aligned lines, trailing spaces stripped.

    Args:
        right: indices of the columns aligned right (numbers); the others align left.
        rule: a line of dashes under the header.
    """
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    lines = [line(header)]
    if rule:
        lines.append(line(["-" * w for w in widths]))
    lines += [line(r) for r in rows]
    return "\n".join(lines)
