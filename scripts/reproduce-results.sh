#!/usr/bin/env bash
# Regenerate docs/RESULTS.md: run every experiment spec at its committed budget with the
# local executor, then write the report. A killed run resumes: rerunning this script skips
# finished runs and resumes unfinished ones from their checkpoints. The report states each
# sweep's wall clock (from its submissions and result files).
#   bash scripts/reproduce-results.sh
# Results go to results/sweeps/<name> (experiment 8's stage 2 finds stage 1 there).
# The sweeps share one baselines cache, results/sweeps/baselines (each sweep's baselines/
# links to it): a baseline is keyed by everything that determines it, so the testbed's
# supervised reference is trained once per seed for all the sweeps that run on the testbed,
# not once per sweep (about 100 s per seed on this machine); docs/compare's baselines seed it.
# Runs shared between sweeps (the same run id: experiment 1b's are `sslobj compare`'s, 6's
# T 0.02 dino-running-centre and kl-batch-prior are 1b's, 3's beta 0.1, 4's width 256 and 5's
# hard targets are 2's reset-none, ...) are trained once:
# scripts/share-runs.py copies finished, fresh ones from docs/compare/runs,
# docs/testbed-colour/seeds-3-4/runs and the sweeps already run before each submit.
set -euo pipefail
shopt -s nullglob   # a fresh clone has no docs/compare/baselines (not in git): seed nothing
cd "$(dirname "$0")/.."
out=results/sweeps
mkdir -p "$out/baselines"
for f in docs/compare/baselines/*.json; do
  [ -e "$out/baselines/$(basename "$f")" ] || cp "$f" "$out/baselines/"
done
for spec in experiments/0*.toml; do   # 08_..._1 before 08_..._2: stage 2 reads stage 1
  name=$(python -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['sweep']['name'])" "$spec")
  mkdir -p "$out/$name"
  [ -e "$out/$name/baselines" ] || ln -s ../baselines "$out/$name/baselines"
  python scripts/share-runs.py "$spec" "$out/$name"
  sslobj sweep submit "$spec" --executor local --out "$out/$name"
done
sslobj report "$out" -o docs/RESULTS.md
