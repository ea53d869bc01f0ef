"""Setting values written as text (``--set key=value``, spec entries, report labels).

None is spelled ``none`` (the spelling specs and reports write, as TOML has no null); JSON's
``null`` is accepted as well, everywhere a value is parsed.

>>> [parse_value(t) for t in ("0.2", "none", "null", "[1, 2]", "hard")]
[0.2, None, None, [1, 2], 'hard']
"""

from __future__ import annotations

import json
from typing import Any

#: The text that means None; the first is the one we write.
NONE_SPELLINGS = ("none", "null")


def is_none(value: Any) -> bool:
    """Whether ``value`` is a spelling of None (a string; None itself is not text)."""
    return isinstance(value, str) and value in NONE_SPELLINGS


def parse_value(text: str) -> Any:
    """``"0.2"`` -> 0.2, ``"none"``/``"null"`` -> None, ``"[1, 2]"`` -> list, JSON else the
    text itself."""
    if is_none(text):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
