"""Copy finished runs a sweep shares with other sweeps into its folder, so it does not train
them again.

A run's id is the hash of everything that determines its result, the label left out
(:attr:`sslobjectives.train.config.RunConfig.run_id`): experiment 3's ``beta-0.1`` row, 4's
width 256 and 5's ``hard`` row are the same runs as experiment 2's ``reset-none``, 6's T 0.02
``dino-running-centre`` and ``kl-batch-prior`` are 1b's ``dino`` and ``kl_inverse_prior``, and
1b's runs are ``sslobj compare``'s (docs/compare/runs). For every run the spec plans that has no
finished result in the sweep's folder yet, this looks for a finished run folder with the
same run id among the sources, checks that its result comes from this code (a stale result
is never copied: it would be trained again anyway), and copies the folder to the name the
sweep gives it (``<label>-s<seed>-<run id>``; the report reads the label from the sweep's
manifest, not from the copied files). The copy keeps the run's own wall clock
(``runtime_s``); the sweep's submissions do not include it. Used by
scripts/reproduce-results.sh before each ``sslobj sweep submit``.

Usage::

    python scripts/share-runs.py SPEC OUT [SOURCE_RUNS_DIR ...]

SOURCE_RUNS_DIR defaults to docs/compare/runs, docs/testbed-colour/seeds-3-4/runs (the
comparison's seeds 3 and 4) and every ``results/sweeps/*/runs``; run folders are not in git,
so in a fresh clone only the sweeps already run are sources.
Prints one line per copied run and a count.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from sslobjectives.sweep.spec import load_spec
from sslobjectives.train.rundir import RunDir, RunFileError, run_dir_for, stale_reason


def finished(folder: Path, run_id: str) -> dict | None:
    """The result of run ``run_id``, finished, in ``folder`` and written by this code, else
    None (read by :meth:`RunDir.result`, which checks it is that run's; an unreadable or
    foreign result counts as none)."""
    try:
        result = RunDir(folder).result(expect={"run_id": run_id})
    except RunFileError:
        return None
    if result is None or result.get("status") != "done":
        return None
    return None if stale_reason(result) else result


def index_sources(sources: list[Path]) -> dict[str, Path]:
    """run id -> a finished, fresh run folder holding it (the first source wins)."""
    found: dict[str, Path] = {}
    for source in sources:
        if not source.is_dir():
            continue
        for folder in sorted(source.iterdir()):
            run_id = folder.name.rsplit("-", 1)[-1]
            if run_id in found or not folder.is_dir():
                continue
            if finished(folder, run_id) is not None:
                found[run_id] = folder
    return found


def share(spec_path: Path, out: Path, sources: list[Path]) -> list[tuple[Path, Path]]:
    """Copy the shared runs into ``out``; returns (source, destination) per copied run."""
    spec = load_spec(spec_path)
    found = index_sources([s for s in sources if s.resolve() != (out / "runs").resolve()])
    copied = []
    for planned in spec.expand():
        dest = run_dir_for(out, planned.config)
        if finished(dest, planned.run_id) is not None or planned.run_id not in found:
            continue
        if dest.exists():  # an unfinished or stale attempt: the finished copy replaces it
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(found[planned.run_id], dest)
        copied.append((found[planned.run_id], dest))
    return copied


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec", type=Path)
    p.add_argument("out", type=Path, help="the sweep's output folder")
    p.add_argument("sources", type=Path, nargs="*", help="folders of run folders")
    args = p.parse_args(argv)
    sources = args.sources or [
        Path("docs/compare/runs"),
        Path("docs/testbed-colour/seeds-3-4/runs"),
        *sorted(Path("results/sweeps").glob("*/runs")),
    ]
    copied = share(args.spec, args.out, sources)
    for src, dest in copied:
        print(f"shared {src} -> {dest}")
    print(f"{args.spec}: {len(copied)} finished run(s) copied in", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
