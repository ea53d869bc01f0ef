"""The claims: each proof file's number and title, its numeric check, and the runner."""

from __future__ import annotations

import ast
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sslobjectives.verify import as_called
from sslobjectives.verify.checks import (
    _check_balanced,
    _check_channel,
    _check_coding_rate,
    _check_cross_entropy,
    _check_geometric,
    _check_jensen,
    _check_map_bce,
)
from sslobjectives.verify.proofs import PROOFS_DIR, run_proof
from sslobjectives.verify.references import _guard, single_threaded
from sslobjectives.verify.results import ClaimResult, Numeric, Symbolic

# --------------------------------------------------------------------------- the claims


@dataclass(frozen=True)
class ClaimCheck:
    """The numeric check of the claim whose proof is ``proofs/<name>.py``; the claim's number
    and title are written once, in that file (``CLAIM``, ``TITLE``)."""

    name: str
    check: Callable[[int], Numeric]

    @property
    def id(self) -> int:
        """The claim's number, as its proof file states it (0 without a readable one)."""
        return claim_number(self.name) or 0


def claim_number(name: str, proofs_dir: Path = PROOFS_DIR) -> int | None:
    """``CLAIM`` of ``proofs_dir/<name>.py``, read without running the proof (no sympy);
    None when the file is missing or does not state it."""
    path = proofs_dir / f"{name}.py"
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            names = target.elts if isinstance(target, ast.Tuple) else [target]
            for i, t in enumerate(names):
                if isinstance(t, ast.Name) and t.id == "CLAIM":
                    value = node.value.elts[i] if isinstance(target, ast.Tuple) else node.value
                    try:
                        return int(ast.literal_eval(value))
                    except (ValueError, TypeError):
                        return None
    return None


#: The checks, in the order they run; each claim's number comes from its proof file. A claim
#: about an objective is checked on the library's functions and, as the trainer calls it, on
#: the objective class (:mod:`~sslobjectives.verify.as_called`).
CLAIMS: tuple[ClaimCheck, ...] = (
    ClaimCheck(
        "cross_entropy_kl", _guard(_check_cross_entropy, 1e-9, as_called.check_cross_entropy)
    ),
    ClaimCheck(
        "balanced_teacher_lagrange", _guard(_check_balanced, 1e-9, as_called.check_balanced)
    ),
    ClaimCheck("jensen_centering", _guard(_check_jensen, 1e-9, as_called.check_jensen)),
    ClaimCheck(
        "centering_geometric_mean", _guard(_check_geometric, 1e-9, as_called.check_geometric)
    ),
    ClaimCheck(
        "map_decoding_bce_bound", _guard(_check_map_bce, 1e-9, as_called.check_bits_targets)
    ),
    ClaimCheck("coding_rate_bounds", _guard(_check_coding_rate, 1e-9, as_called.check_rate_terms)),
    # bit_marginal_entropy works in float32
    ClaimCheck("channel_capacity", _guard(_check_channel, 1e-5)),
)


def claim_numbers(proofs_dir: Path = PROOFS_DIR) -> dict[int, ClaimCheck]:
    """Every check by its claim's number (read from ``proofs_dir``)."""
    out = {}
    for claim in CLAIMS:
        number = claim_number(claim.name, proofs_dir)
        if number is not None:
            out[number] = claim
    return out


def run_claims(
    ids: list[int] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    proofs_dir: Path = PROOFS_DIR,
) -> list[ClaimResult]:
    """Every claim (or those in ``ids``), proved and checked; ``progress`` gets a line each."""
    numbered = claim_numbers(proofs_dir)
    if ids is None:  # a check whose proof file is unreadable still runs, as claim 0
        unnumbered = [(0, c) for c in CLAIMS if c not in numbered.values()]
        chosen = sorted(numbered.items()) + unnumbered
    else:
        chosen = [(n, c) for n, c in sorted(numbered.items()) if n in ids]
    results = []
    with single_threaded():
        for i, (number, claim) in enumerate(chosen, 1):
            start = time.perf_counter()
            if progress:
                progress(f"[{i}/{len(chosen)}] claim {number} ({claim.name}): proof ...")
            try:
                module, symbolic = run_proof(claim.name, proofs_dir)
                title, statement = module.TITLE, module.STATEMENT
            except Exception as exc:  # the proof file is missing or does not import
                symbolic = Symbolic("", [], crash=f"{type(exc).__name__}: {exc}")
                title, statement = claim.name, "(proof file unavailable)"
            if progress:
                progress(f"[{i}/{len(chosen)}] claim {number}: {symbolic.summary}; numeric ...")
            numeric = claim.check(seed)
            seconds = time.perf_counter() - start
            result = ClaimResult(number, claim.name, title, statement, symbolic, numeric, seconds)
            if progress:
                verdict = "pass" if result.ok else "FAIL"
                progress(
                    f"[{i}/{len(chosen)}] claim {number}: {numeric.cases} cases, max error "
                    f"{numeric.max_error:.1e} -> {verdict} ({seconds:.1f} s)"
                )
            results.append(result)
    return results
