#!/usr/bin/env python
"""Compute the baselines `sslobj report` will read, two at a time, one thread each.

The report computes a sweep's baselines where it reads them, one after another: in a fresh
clone, where none is cached, that is every supervised reference (a model trained per seed
and budget, about a minute each on the testbed) in one process with the machine's threads,
about 14 of the 151 minutes `scripts/reproduce-results.sh` took (docs/testbed-colour/
fresh-clone-reproduce.json). This script computes them first in a pool of ``--jobs``
processes of one thread each, as `sslobj compare` does (`baselines.prefill`), longest
first; the report then only reads them. One thread per process also makes a reference's
digits the same as `sslobj compare`'s (the last digits of a trained model depend on the
thread count, and the cache key does not hold it).

    python scripts/prefill-baselines.py results/sweeps [--jobs 2]

Not yet called by reproduce-results.sh: docs/RESULTS.md's supervised references were
trained by the report (two threads), and with this step a fresh clone would train them with
one and give other last digits (one reference checked: the same as compare's to the last
digit, not the report's). Wire it in with the next full regeneration (docs/STATUS.md).

Which baselines: for every sweep folder under the given folder, the runs that are done,
grouped by what a baseline depends on (data, backbone, budget: `baselines.cache_key`), over
the seeds of each group, in the sweep's ``baselines/`` cache. Whatever this misses the
report computes itself, so it can only save time, never change a number.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sslobjectives import baselines
from sslobjectives.results import _baseline_context, load_results
from sslobjectives.train.config import RunConfig

#: longest first: a supervised reference trains a model, the others only evaluate one
KINDS = ("supervised", "untrained_centred", "untrained")


def jobs_of(root: Path) -> list[tuple[str, dict, str]]:
    """(kind, config, cache dir) of every baseline the report of ``root``'s sweeps reads,
    longest first, each once (sweeps that share a cache share its entries). Grouped as the
    report groups them (``results._baseline_context``), cached where it reads them
    (``baselines._cache_path``): the package's own helpers, so the two cannot drift."""
    todo: dict[Path, tuple[str, dict, str]] = {}
    for sweep in sorted(p for p in root.iterdir() if (p / "runs").is_dir()):
        contexts: dict[str, tuple[RunConfig, set[int]]] = {}
        for result in load_results([sweep / "runs"]):
            config = RunConfig.from_dict(result["config"])
            contexts.setdefault(_baseline_context(result), (config, set()))[1].add(config.seed)
        for config, seeds in contexts.values():
            for kind in KINDS:
                for seed in sorted(seeds):
                    c = config.replace(seed=seed)
                    path = baselines._cache_path(kind, c, sweep).resolve()
                    todo.setdefault(path, (kind, c.to_dict(), str(sweep)))
    return sorted(todo.values(), key=lambda job: KINDS.index(job[0]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", type=Path, help="the folder of sweep folders (results/sweeps)")
    p.add_argument("--jobs", type=int, default=2, help="processes at once (default 2)")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    if not args.root.is_dir():
        p.error(f"{args.root} is not a folder of sweeps")
    jobs = jobs_of(args.root)
    start = time.monotonic()
    ctx = multiprocessing.get_context("spawn")  # no forked torch thread pools
    with ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
        # one thread per worker (``baselines.prefill``'s worker, as `sslobj compare` uses it)
        futures = [pool.submit(baselines._compute_in_worker, *job) for job in jobs]
        for n, (future, job) in enumerate(zip(futures, jobs, strict=True), 1):
            future.result()  # a failure is raised here, naming its cause
            print(f"\r[{n}/{len(jobs)}] baselines ({job[0]})", end="", file=sys.stderr)
    print(f"\n{len(jobs)} baselines ready in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
