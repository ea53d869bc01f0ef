"""Benchmarks of a source checkout (not part of the installed package).

``python -m benchmarks`` (or ``sslobj bench``) runs the objective suite of issue 7: forward
and backward time and peak memory of every objective against its reference implementation
(:mod:`benchmarks.reference`) and the irreducible work, eager and under ``torch.compile``;
``--tiny`` is a smoke run. ``benchmarks/RESULTS.md`` keeps the latest CPU figures and says
how they are measured. Other modules here run on their own: ``python -m benchmarks.training``
(an objective's share of a training step), ``python -m benchmarks.sweep_overhead``.
"""
