"""Installing an optional extra keeps the installed torch (README "Quick start"): pip's resolver,
given the project with each extra and the installed torch as a constraint, installs no torch.

Nothing is installed: ``pip install --dry-run --report`` only resolves.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = sorted(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
)


def installed_torch_constraint() -> str:
    """The README's constraint: the installed torch's version without its local build tag."""
    import torch

    return "torch==" + torch.__version__.split("+")[0]


def planned_installs(report: dict) -> list[str]:
    """Names of the distributions a ``pip --report`` would install (normalised).

    >>> planned_installs({"install": [{"metadata": {"name": "Torch", "version": "2.14.1"}}]})
    ['torch']
    """
    return [re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower() for i in report["install"]]


def test_the_readme_constraint_is_the_one_tested():
    readme = (ROOT / "README.md").read_text()
    assert (
        "pip install -e '.[timm]' -c <(python -c 'import torch; "
        'print("torch==" + torch.__version__.split("+")[0])\')' in readme
    )


@pytest.mark.parametrize("extra", EXTRAS)
def test_an_extra_with_the_torch_constraint_keeps_torch(extra, tmp_path):
    constraint = tmp_path / "constraints.txt"
    constraint.write_text(installed_torch_constraint() + "\n")
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--report",
            str(report),
            "--no-build-isolation",
            "-e",
            f"{ROOT}[{extra}]",
            "-c",
            str(constraint),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    # a resolution conflict (no release of the extra fits this torch) fails here, loudly
    assert proc.returncode == 0, proc.stderr[-3000:]
    installs = planned_installs(json.loads(report.read_text()))
    assert "sslobjectives" in installs  # the report is the project's resolution
    assert "torch" not in installs, installs
