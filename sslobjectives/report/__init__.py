"""``sslobj report``: collected sweeps next to the papers' claims, as one markdown file.

Per experiment (one sweep output directory each): what was run (spec, budget, seeds, runs
done / failed / collapsed / not run, measured run time), a table of mean ± 95% CI over seeds
per group (the keys the spec varies, :func:`sslobjectives.results.summarize`), figures (PNG
under ``figures/<sweep name>/`` beside the markdown), the paper's claim and, per claimed
pair of groups, a verdict:

- ``agrees``: ours ranks the pair the paper's way and the two 95% CIs do not overlap;
- ``disagrees``: ours ranks it the other way and the CIs do not overlap;
- ``inconclusive (CIs overlap)``: otherwise (also with fewer than two finished runs).

A disagreement is a result: it is reported as measured. The claims are data, in
``experiments/claims.toml`` (its header documents the format, the group selectors and the
metrics); :func:`load_claims` reads and checks it.

One module per concern: :mod:`~sslobjectives.report.claims` (the claims file),
:mod:`~sslobjectives.report.groups` (selectors, runs), :mod:`~sslobjectives.report.experiments`
(a sweep directory read back), :mod:`~sslobjectives.report.verdicts` (metrics, CIs, verdicts),
:mod:`~sslobjectives.report.plots` (figures) and :mod:`~sslobjectives.report.markdown` (the
report); this package re-exports their names.
"""

from sslobjectives.report.claims import (  # noqa: F401
    AGREES,
    CLAIM_KEYS,
    DISAGREES,
    EXPERIMENT_KEYS,
    INCONCLUSIVE,
    NO_DATA,
    OPS,
    REDUCE,
    SOURCES,
    TOO_FEW,
    Claim,
    Difference,
    ExperimentClaims,
    default_claims_path,
    load_claims,
)
from sslobjectives.report.experiments import (  # noqa: F401
    Experiment,
    load_experiment,
)
from sslobjectives.report.groups import (  # noqa: F401
    Run,
    group_name,
    parse_selector,
    selector_problems,
)
from sslobjectives.report.markdown import (  # noqa: F401
    experiment_section,
    git_commit,
    main,
    write_results_report,
)
from sslobjectives.report.plots import (  # noqa: F401
    _claim_metrics,
    paired_differences,
    plot_claim_metrics,
    plot_difference,
    plot_scatter,
)
from sslobjectives.report.verdicts import (  # noqa: F401
    Stat,
    Verdict,
    expect_verdict,
    judge,
    metric_value,
    pair_verdict,
    question_answer,
)

__all__ = [
    "AGREES",
    "CLAIM_KEYS",
    "Claim",
    "DISAGREES",
    "Difference",
    "EXPERIMENT_KEYS",
    "Experiment",
    "ExperimentClaims",
    "INCONCLUSIVE",
    "NO_DATA",
    "OPS",
    "REDUCE",
    "Run",
    "SOURCES",
    "Stat",
    "TOO_FEW",
    "Verdict",
    "default_claims_path",
    "expect_verdict",
    "experiment_section",
    "git_commit",
    "group_name",
    "judge",
    "load_claims",
    "load_experiment",
    "main",
    "metric_value",
    "pair_verdict",
    "paired_differences",
    "parse_selector",
    "plot_claim_metrics",
    "plot_difference",
    "plot_scatter",
    "question_answer",
    "selector_problems",
    "write_results_report",
]
