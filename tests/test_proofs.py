"""Every proof in proofs/ runs and every step of its derivation holds.

``proofs/`` is not a package: files are loaded by path (``sslobjectives.verify.load_proof``),
the way ``sslobj verify`` runs them. Results are cached per file version in the process, so
the verify tests reuse these runs.
"""

import ast
import subprocess
import sys

import pytest

from sslobjectives import verify

CLAIMS = {claim.id: claim.name for claim in verify.CLAIMS}


def test_one_proof_file_per_claim():
    files = {p.stem for p in verify.PROOFS_DIR.glob("*.py")}
    assert files == set(CLAIMS.values())


@pytest.mark.parametrize("claim_id", sorted(CLAIMS))
def test_proof_holds(claim_id):
    module, symbolic = verify.run_proof(CLAIMS[claim_id])
    assert not symbolic.crash, symbolic.crash
    failing = [step for step, holds in symbolic.steps if not holds]
    assert symbolic.steps and not failing, failing
    assert module.CLAIM == claim_id
    for attr in ("TITLE", "STATEMENT", "SCOPE", "CONCLUSION"):
        assert isinstance(getattr(module, attr), str) and getattr(module, attr)
    assert len(module.STATEMENT) <= 75  # one line of the verify table


@pytest.mark.parametrize("claim_id", sorted(CLAIMS))
def test_proof_file_is_a_script_that_asserts(claim_id):
    """``python proofs/<name>.py`` hands the module to the shared runner, which prints the
    derivation and asserts every step (the runner itself is tested below)."""
    path = verify.PROOFS_DIR / f"{CLAIMS[claim_id]}.py"
    tree = ast.parse(path.read_text())
    main = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
    ]
    assert len(main) == 1
    assert "run_as_script(sys.modules[__name__])" in ast.unparse(main[0])


def test_script_runner_prints_every_step_and_asserts(capsys):
    from types import SimpleNamespace

    from sslobjectives.derivation import run_as_script

    proof = SimpleNamespace(
        CLAIM=9, TITLE="t", STATEMENT="s", SCOPE="any", CONCLUSION="c",
        prove=lambda: [("step one", True), ("step two", True)],
    )  # fmt: skip
    run_as_script(proof)
    out = capsys.readouterr().out
    assert out.startswith("Claim 9: t") and "[ok] step one" in out and out.rstrip().endswith("c")
    proof.prove = lambda: [("good", True), ("bad", False)]
    with pytest.raises(AssertionError, match="does not hold"):
        run_as_script(proof)
    assert "[FAIL] bad" in capsys.readouterr().out


def test_a_proof_runs_as_a_script():
    path = verify.PROOFS_DIR / "cross_entropy_kl.py"
    done = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Claim 1: Cross-entropy = entropy + KL")
    assert "[ok]" in done.stdout and "FAIL" not in done.stdout


def test_a_claim_is_numbered_once_in_its_proof_file(tmp_path):
    import dataclasses

    numbers = verify.claim_numbers()
    assert sorted(numbers) == list(range(1, len(verify.CLAIMS) + 1))  # unique, no gap
    assert [f.name for f in dataclasses.fields(verify.ClaimCheck)] == ["name", "check"]
    # renumbering a proof file renumbers its claim
    (tmp_path / "channel_capacity.py").write_text("CLAIM = 42\n")
    assert verify.claim_number("channel_capacity", tmp_path) == 42
    assert verify.claim_numbers(tmp_path) == {42: numbers[7]}
    assert verify.claim_number("missing", tmp_path) is None
