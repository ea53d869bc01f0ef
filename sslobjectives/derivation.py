"""Running a proof file of ``proofs/`` as a script: print its derivation and assert it.

Each proof module defines ``CLAIM``, ``TITLE``, ``STATEMENT``, ``SCOPE``, ``CONCLUSION`` and
``prove() -> [(statement, holds), ...]``; ``sslobj verify`` reads the same attributes.
"""

from __future__ import annotations

import types


def run_as_script(proof: types.ModuleType) -> None:
    """Print the claim and every step of its derivation; fail if a step does not hold."""
    print(f"Claim {proof.CLAIM}: {proof.TITLE}\n  {proof.STATEMENT}\n  proved for: {proof.SCOPE}\n")
    derivation = proof.prove()
    for text, holds in derivation:
        print(f"[{'ok' if holds else 'FAIL'}] {text}")
    assert all(holds for _, holds in derivation), "a step of the derivation does not hold"
    print(f"\n{proof.CONCLUSION}")
