"""Plan, submit, watch and collect a sweep.

Directory layout of a sweep ``<out>/``::

    manifest.json        spec (text, data and hash), run ids, job ids of every submission
    runs/<label>-s<seed>-<run_id>/
        config.json      the resolved run config
        checkpoint.pt    per-epoch checkpoint (the trainer's)
        result.json      written once, atomically, when the run ends (done or failed)
        attempts.jsonl   one line per attempt start / checkpoint signal / end
    submitit/<job_id>/   the job's stdout/stderr logs (and submitit's pickles, or the
                         local pool's state.json)
    .submit.lock         held by the process working on the folder (its pid inside)
    runs.csv summary.csv table.txt curves.png bit_usage.png    (written by collect)

Runs are identified by :attr:`RunConfig.run_id` (a hash of the resolved config): submitting a
spec again submits only the runs that are neither done nor queued/running, so a failed or
cancelled run is redone and a finished result is never touched (the trainer returns a done
``result.json`` as it is).

One module per concern: :mod:`~sslobjectives.sweep.manifest`, :mod:`~sslobjectives.sweep.states`,
:mod:`~sslobjectives.sweep.submission` and :mod:`~sslobjectives.sweep.collection`; this module
re-exports their names (it is kept so that ``sslobjectives.sweep.manager`` imports keep working).
"""

from sslobjectives.sweep.collection import (  # noqa: F401
    collect,
)
from sslobjectives.sweep.manifest import (  # noqa: F401
    MANIFEST,
    SUBMITIT_DIR,
    read_manifest,
)
from sslobjectives.sweep.states import (  # noqa: F401
    IN_PROGRESS,
    STATES,
    Log,
    RunStatus,
    format_status,
    plan,
    status,
    wait_for,
)
from sslobjectives.sweep.submission import (  # noqa: F401
    SubmitReport,
    submit,
)

__all__ = [
    "IN_PROGRESS",
    "Log",
    "MANIFEST",
    "RunStatus",
    "STATES",
    "SUBMITIT_DIR",
    "SubmitReport",
    "collect",
    "format_status",
    "plan",
    "read_manifest",
    "status",
    "submit",
    "wait_for",
]
