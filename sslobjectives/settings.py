"""The settings of a config dataclass — name, type, default and meaning — read from the class.

The meanings live once, in the class docstring's Google-style ``Attributes:`` section (one
entry ``name: text``, or ``a, b, c: text`` for settings that share a meaning); ``sslobj
config`` prints what this module reads, so the listing cannot drift from the docstring.

>>> from dataclasses import dataclass
>>> @dataclass
... class Example:
...     '''An example.
...
...     Attributes:
...         lr, min_lr: learning rates. The second is the floor.
...         epochs: passes over the data.
...     '''
...     lr: float = 0.1
...     min_lr: float = 0.5
...     epochs: int = 3
>>> [(s.name, s.type, s.default, s.meaning) for s in settings(Example)][1]
('min_lr', 'float', '0.5', 'learning rates.')
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass

_ENTRY = re.compile(r"^(\w+(?:\s*,\s*\w+)*)\s*:\s*(.*)$")
#: a sentence ends at a full stop followed by a space, except after these abbreviations
_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!\bvs)(?<!\bSec)\.(?:\s|$)")


@dataclass(frozen=True)
class Setting:
    """One settable field: ``name``, its ``type`` and ``default`` as text, its ``meaning``."""

    name: str
    type: str
    default: str
    meaning: str


def attribute_docs(cls: type) -> dict[str, str]:
    """``{field: full text}`` from the ``Attributes:`` sections of ``cls`` and its bases
    (a subclass's entry wins)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = klass.__dict__.get("__doc__")
        if doc:
            out.update(_parse_attributes(inspect.cleandoc(doc)))
    return out


def _parse_attributes(doc: str) -> dict[str, str]:
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:")
    except StopIteration:
        return {}
    entries: list[tuple[list[str], list[str]]] = []
    indent = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            break  # the section ended (a dedented heading)
        match = _ENTRY.match(line.strip()) if depth == indent else None
        if match:
            names = [n.strip() for n in match.group(1).split(",")]
            entries.append((names, [match.group(2)]))
        elif entries:
            entries[-1][1].append(line.strip())
    return {name: " ".join(text) for names, text in entries for name in names}


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (``e.g.`` and ``i.e.`` do not end one).

    >>> first_sentence("AdamW with warm-up (e.g. 3 epochs). Then cosine.")
    'AdamW with warm-up (e.g. 3 epochs).'
    """
    match = _SENTENCE_END.search(text)
    return text[: match.start() + 1] if match else text


def settings(cls: type) -> list[Setting]:
    """Every field of the dataclass ``cls`` with its type, default and one-line meaning
    (empty when its docstring has none: ``tests/test_daily_loop.py`` forbids that)."""
    docs = attribute_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        out.append(
            Setting(
                name=f.name,
                type=_type_text(f.type),
                default=_value_text(default),
                meaning=first_sentence(docs.get(f.name, "")),
            )
        )
    return out


def _type_text(hint: object) -> str:
    text = hint if isinstance(hint, str) else getattr(hint, "__name__", str(hint))
    return text.replace("typing.", "").replace("dict[str, Any]", "table")


def _value_text(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
