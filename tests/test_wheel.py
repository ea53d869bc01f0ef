"""A wheel installed outside the checkout runs every command: the proofs and experiment specs
ship inside it (mapped from the top-level folders, not copied), and nothing is read from the
checkout (issue 14.1). CI runs the same check in `.ci/run`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "sslobjectives"

pytestmark = pytest.mark.slow

# build output and run folders of the checkout are not sources; a stale build/ would even
# leak deleted modules into the wheel
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", "results", "runs", ".pytest_cache"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src") / "tree"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCES)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    (path,) = out.glob("sslobjectives-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("venv")
    # system site-packages only to reuse torch and the other dependencies; the package itself
    # must come from the wheel (checked below)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(home)], check=True)
    # --force-reinstall: pip would otherwise take a copy of the package it can see (an
    # editable install, or an .egg-info on PYTHONPATH) for this one and install nothing
    installed = _run(
        home,
        home,
        "python",
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--force-reinstall",
        "-q",
        str(wheel),
    )
    assert installed.returncode == 0, installed.stderr
    return home


def _run(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``args[0]`` from the venv's bin/, in ``cwd``, with the checkout off sys.path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_wheel_holds_every_module_and_the_same_proofs_and_specs(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for path in PKG.rglob("*.py"):
            if "__pycache__" not in path.parts:
                assert path.relative_to(ROOT).as_posix() in names, path
        for folder, inside, pattern in (
            ("proofs", "_proofs", "*.py"),
            ("experiments", "_experiments", "*.toml"),
        ):
            files = sorted((ROOT / folder).glob(pattern))
            assert files
            for path in files:
                assert zf.read(f"sslobjectives/{inside}/{path.name}") == path.read_bytes()


def test_commands_from_the_wheel_outside_the_checkout(venv, tmp_path):
    where = _run(
        venv,
        tmp_path,
        "python",
        "-c",
        "import sys, sslobjectives; print(sslobjectives.__file__); print(sys.path)",
    )
    assert where.returncode == 0, where.stderr
    module, path = where.stdout.splitlines()
    assert Path(module).resolve().is_relative_to(venv.resolve()), module
    assert str(ROOT) not in path

    verify = _run(venv, tmp_path, "sslobj", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "7/7 claims pass" in verify.stdout

    demo = _run(venv, tmp_path, "sslobj", "demo", "--batch", "16", "--dim", "32")
    assert demo.returncode == 0, demo.stderr
    assert "simdino" in demo.stdout and "bits" in demo.stdout

    claims = _run(
        venv,
        tmp_path,
        "python",
        "-c",
        "from sslobjectives.report import default_claims_path, load_claims;"
        "print(default_claims_path()); print(len(load_claims()))",
    )
    assert claims.returncode == 0, claims.stderr
    shipped, count = claims.stdout.splitlines()
    assert Path(shipped).resolve().is_relative_to(venv.resolve()) and int(count) > 0
    (tmp_path / "sweeps").mkdir()
    report = _run(venv, tmp_path, "sslobj", "report", "sweeps", "-o", "out/RESULTS.md")
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "out" / "RESULTS.md").read_text().startswith("# Results")

    bench = _run(venv, tmp_path, "sslobj", "bench")
    assert bench.returncode == 2
    assert len(bench.stderr.strip().splitlines()) == 1 and "benchmarks" in bench.stderr
