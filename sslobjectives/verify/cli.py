"""``sslobj verify``: the table of claims, the sweep, and the command's entry point."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from sslobjectives.texttable import format_text_table
from sslobjectives.verify.claims import CLAIMS, run_claims
from sslobjectives.verify.jensen import jensen_sweep, plot_sweep
from sslobjectives.verify.results import ClaimResult

# --------------------------------------------------------------------------- report


def format_table(results: list[ClaimResult]) -> str:
    """The claims table: id, statement, symbolic result, numeric cases, max error, verdict."""
    head = ("id", "claim", "symbolic", "cases", "max error", "result")
    rows = [
        (
            str(r.id),
            r.statement,
            r.symbolic.summary,
            str(r.numeric.cases),
            f"{r.numeric.max_error:.1e}" if not r.numeric.crash else "crash",
            "pass" if r.ok else "FAIL",
        )
        for r in results
    ]
    out = [format_text_table(head, rows, right={0, 3, 4}, rule=True)]
    details = []
    for r in results:
        scope = f"claim {r.id}: proofs/{r.name}.py — {r.title}; proved for {r.symbolic.scope}"
        details.append(scope)
        details += [f"    {note}" for note in r.numeric.notes]
        if r.symbolic.crash:
            details.append(f"    proof error: {r.symbolic.crash}")
        details += [f"    step fails: {s}" for s, h in r.symbolic.steps if not h]
        if r.numeric.crash:
            details.append(f"    numeric check raised {r.numeric.crash}")
        elif not r.numeric.ok:
            details.append(
                f"    numeric: max error {r.numeric.max_error:.2e} > tolerance "
                f"{r.numeric.tolerance:.0e} at {r.numeric.worst_case}"
            )
    return "\n".join(out + [""] + details)


def format_sweep(sweep: dict) -> str:
    """Jensen gap / KL per temperature (rows) and batch size (columns)."""
    batches = sweep["batches"]
    lines = [
        "Centering vs inverse-prior normalisation, per teacher temperature T and batch size:",
        "mean Jensen gap log(P/G) over clusters / mean KL(inverse-prior || centered), in nats",
        f"  teacher: {sweep['model']}; mean of {sweep['seeds']} draws",
        "T \\ batch" + "".join(f"{b:>20}" for b in batches),
    ]
    for i, temp in enumerate(sweep["temperatures"]):
        cells = [
            f"{sweep['jensen_gap'][i][j]:.3g} / {sweep['kl_inverse_prior_to_centered'][i][j]:.2g}"
            for j in range(len(batches))
        ]
        lines.append(f"{temp:<9g}" + "".join(f"{c:>20}" for c in cells))
    return "\n".join(lines)


def main(
    json_path: str | None = None,
    plot_dir: str | None = None,
    seed: int = 0,
    claims: list[int] | None = None,
) -> int:
    """Run ``sslobj verify``: print the table, write JSON / plot; 0 iff every claim passes."""
    start = time.perf_counter()
    unknown = sorted(set(claims or []) - {c.id for c in CLAIMS})
    if unknown:
        print(f"sslobj verify: no claim {unknown}; claims are 1-{len(CLAIMS)}", file=sys.stderr)
        return 2

    def progress(msg: str) -> None:
        print(f"verify: {msg}", file=sys.stderr, flush=True)

    results = run_claims(claims, seed=seed, progress=progress)
    progress("Jensen gap and KL sweep ...")
    sweep = jensen_sweep()
    print(format_table(results))
    print()
    print(format_sweep(sweep))
    ok = all(r.ok for r in results)
    seconds = time.perf_counter() - start
    print(f"\n{sum(r.ok for r in results)}/{len(results)} claims pass ({seconds:.1f} s)")
    if json_path:
        report = {
            "ok": ok,
            "seed": seed,
            "seconds": round(seconds, 2),
            "claims": [r.to_dict() for r in results],
            "sweep": sweep,
        }
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    if plot_dir:
        progress(f"plot -> {plot_sweep(sweep, Path(plot_dir))}")
    return 0 if ok else 1
