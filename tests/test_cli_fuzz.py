"""The fuzz of issue 15 kept as property tests (hypothesis): bad input to the CLI and to the
spec parser ends in exit status 2 and one line on stderr, never a traceback, and never
writes a file outside the output folder."""

from __future__ import annotations

import contextlib
import io
import os
import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sslobjectives.cli import main
from sslobjectives.data.sources import SOURCES

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
)  # any text a shell could pass, newlines and control characters included
# printable, without the characters argparse or the shell would reinterpret
word = st.text(alphabet=string.ascii_letters + string.digits + "._-=,:/ ", max_size=20)


def run_cli(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """``main(argv)`` in ``cwd``: (exit status, stdout, stderr); argparse's exit included."""
    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as stop:
                code = stop.code
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def listing(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def assert_refused(code: int, err: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err


def not_a_dataset(name: str) -> bool:
    return name.strip() not in SOURCES and not Path(name).expanduser().exists()


@FUZZ
@given(
    dataset=text.filter(not_a_dataset),
    seeds=st.one_of(st.none(), text, st.sampled_from(["0", "-1", "", "1,1", ",", "2"])),
    sets=st.lists(
        st.one_of(text, st.builds(lambda k, v: f"{k}={v}", word, word)).filter(
            lambda s: "dataset" not in s  # the one bad value every example keeps
        ),
        max_size=3,
    ),
    threads=st.one_of(st.none(), st.integers(-3, 2).map(str), text),
    objectives=st.one_of(st.none(), st.lists(word, min_size=1, max_size=2)),
)
def test_bad_compare_arguments_are_one_line_never_a_traceback(
    dataset, seeds, sets, threads, objectives
):
    """A dataset that names nothing is refused (before any run starts) whatever else the
    command line holds; every other argument may be bad too."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "cwd").mkdir()
        argv = ["compare", "--dataset", dataset, "--epochs", "1", "--no-progress"]
        argv += ["--out", str(root / "out")]
        if seeds is not None:
            argv += ["--seeds", seeds]
        if threads is not None:
            argv += ["--threads", threads]
        if objectives is not None:
            argv += ["--objectives", *objectives]
        for item in sets:
            argv += ["--set", item]
        code, _, err = run_cli(argv, root / "cwd")
        assert_refused(code, err)
        assert listing(root / "cwd") == set()  # nothing written outside the output folder
        assert not (root / "out" / "runs").exists()  # no run started


SECTIONS = ["sweep", "base", "grid", "zip", "executor", "bogus"]
KEYS = [
    "name", "seeds", "out", "objective", "epochs", "lr", "label", "kind", "head_dim",
    "reset_period", "objective_cfg.beta", "slurm_srun_args", "slurm_additional_parameters",
    "slurm_account", "slurm_setup", "timeout_min", "array_parallelism", "dataset", "seed",
]  # fmt: skip
toml_value = st.recursive(
    st.one_of(
        st.integers(-(10**12), 10**12).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(["true", "false", "nan", "inf", '"none"', '""', '"../x"', '"a\\nb"']),
        text.map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    ),
    lambda inner: st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
    max_leaves=6,
)
spec_line = st.one_of(
    st.sampled_from(SECTIONS).map(lambda s: f"[{s}]"),
    st.builds(lambda k, v: f'"{k}" = {v}', st.sampled_from(KEYS), toml_value),
    text,
)


@FUZZ
@given(lines=st.lists(spec_line, max_size=12), raw=st.one_of(st.none(), st.binary(max_size=60)))
def test_any_spec_is_planned_or_refused_in_one_line(lines, raw):
    """Whatever a spec file holds (random TOML-ish lines, or random bytes): ``sweep plan``
    prints a plan (exit 0) or refuses it in one line (exit 2), writing nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "cwd").mkdir()
        spec = root / "spec.toml"
        if raw is not None:
            spec.write_bytes(raw)
        else:
            spec.write_text("\n".join(lines) + "\n", encoding="utf-8")
        before = listing(root)
        code, out, err = run_cli(
            ["sweep", "plan", str(spec), "--out", str(root / "o")], root / "cwd"
        )
        if code == 0:
            assert "runs" in out and not err.strip()
        else:
            assert_refused(code, err)
        assert listing(root) == before  # plan writes nothing, anywhere


@FUZZ
@given(
    command=st.sampled_from(["status", "collect"]),
    manifest=st.one_of(
        st.binary(max_size=80),
        st.builds(
            lambda runs: '{"runs": ' + runs + ', "submissions": []}',
            st.sampled_from(
                [
                    "[]",
                    "{}",
                    '[{"run_id": "a", "label": "x", "dir": "../../../etc"}]',
                    '[{"run_id": "a", "label": "x", "dir": "/etc"}]',
                    '[{"run_id": 1}]',
                    "[1, 2]",
                ]
            ),
        ).map(str.encode),
    ),
)
def test_any_manifest_is_read_or_refused_in_one_line(command, manifest):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "sweep").mkdir()
        (root / "sweep" / "manifest.json").write_bytes(manifest)
        before = listing(root)
        code, _, err = run_cli(["sweep", command, str(root / "sweep")], root)
        if code != 0:
            assert_refused(code, err)
        assert {p for p in listing(root) - before if p.parts[0] != "sweep"} == set()
