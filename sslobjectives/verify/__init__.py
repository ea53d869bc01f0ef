"""``sslobj verify``: every theoretical claim behind the objectives, proved and checked.

Each claim is checked two ways:

- **symbolically** — its sympy derivation in ``proofs/<name>.py`` runs in this process and
  every step must hold (the file states where sympy proves a claim for any size and where
  only for symbolic entries at fixed small sizes);
- **numerically** — the library's *own* functions (:mod:`sslobjectives.functional`,
  :mod:`sslobjectives.diagnostics`), looked up at call time, are compared with independent
  numpy formulas on seeded random cases: batch sizes 1 to 300, 1 to 257 clusters, teacher
  temperatures from flat (1) to sharp (0.02), and the edge cases one-hot posteriors,
  identical samples, ``n < d``, empty batches. The checks run in float64, so the errors are
  rounding errors and the tolerance is 1e-9 (1e-5 for the bit diagnostics, which compute in
  float32);
- **as called** — each claim about an objective (1-6) also runs through the objective class,
  built by name and called as the trainer calls it (distinct teacher views, epochs through the
  teacher-temperature warm-up, state across steps): its loss, gradients and state buffers
  against the claim's formula (:mod:`~sslobjectives.verify.as_called`).

It also measures how far centering is from inverse-prior normalisation — the mean Jensen gap
and the mean ``KL(inverse-prior || centered)`` — as the teacher temperature goes from 1 to
0.02 and the batch from 16 to 1024 (:func:`jensen_sweep`).

One module per concern: :mod:`~sslobjectives.verify.proofs`, the numeric
:mod:`~sslobjectives.verify.references`, :mod:`~sslobjectives.verify.checks` and
:mod:`~sslobjectives.verify.as_called`, the
:mod:`~sslobjectives.verify.claims` and their runner, the :mod:`~sslobjectives.verify.jensen`
sweep and the command (:mod:`~sslobjectives.verify.cli`); this package re-exports their names.
"""

from sslobjectives.verify.checks import (  # noqa: F401
    balanced_teacher_errors,
    bce_bound_errors,
    channel_errors,
    coding_rate_errors,
    cross_entropy_errors,
    geometric_mean_errors,
    jensen_errors,
)
from sslobjectives.verify.claims import (  # noqa: F401
    CLAIMS,
    ClaimCheck,
    claim_number,
    claim_numbers,
    run_claims,
)
from sslobjectives.verify.cli import (  # noqa: F401
    format_sweep,
    format_table,
    main,
)
from sslobjectives.verify.jensen import (  # noqa: F401
    SWEEP_BATCHES,
    SWEEP_TEMPS,
    jensen_sweep,
    plot_sweep,
)
from sslobjectives.verify.proofs import (  # noqa: F401
    PROOFS_DIR,
    _proved,
    load_proof,
    run_proof,
)
from sslobjectives.verify.references import (  # noqa: F401
    TEACHER_KINDS,
    single_threaded,
    teacher_cases,
)
from sslobjectives.verify.results import (  # noqa: F401
    ClaimResult,
    Numeric,
    Symbolic,
)

__all__ = [
    "CLAIMS",
    "ClaimCheck",
    "ClaimResult",
    "Numeric",
    "PROOFS_DIR",
    "SWEEP_BATCHES",
    "SWEEP_TEMPS",
    "Symbolic",
    "TEACHER_KINDS",
    "balanced_teacher_errors",
    "bce_bound_errors",
    "channel_errors",
    "claim_number",
    "claim_numbers",
    "coding_rate_errors",
    "cross_entropy_errors",
    "format_sweep",
    "format_table",
    "geometric_mean_errors",
    "jensen_errors",
    "jensen_sweep",
    "load_proof",
    "main",
    "plot_sweep",
    "run_claims",
    "run_proof",
    "single_threaded",
    "teacher_cases",
]
