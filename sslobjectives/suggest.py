"""The "did you mean" hint every unknown-name error carries.

>>> did_you_mean("objectiv", ["objective", "epochs"])
" (did you mean 'objective'?)"
>>> did_you_mean("zzz", ["objective", "epochs"])
''
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: How alike (difflib ratio) a valid name must be to be suggested. One cutoff for every
#: message: 0.5 still catches a dropped or doubled letter in short names ("cn" -> "cnn").
CUTOFF = 0.5


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the valid name closest to ``name``, or ``""``."""
    match = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=CUTOFF)
    return f" (did you mean {match[0]!r}?)" if match else ""
