"""The proof files (``proofs/<name>.py``, sympy derivations), imported by path and run."""

from __future__ import annotations

import functools
import importlib.util
import types
from pathlib import Path

from sslobjectives.resources import resource_dir
from sslobjectives.verify.results import Symbolic

# --------------------------------------------------------------------------- proofs

PROOFS_DIR = resource_dir("proofs")


def load_proof(name: str, proofs_dir: Path = PROOFS_DIR) -> types.ModuleType:
    """Import ``proofs/<name>.py`` by path (``proofs/`` is not a package)."""
    path = proofs_dir / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"proof file {path} not found (reinstall the package)")
    spec = importlib.util.spec_from_file_location(f"sslobjectives_proofs.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _proved(path: str, mtime: float) -> tuple[tuple[str, bool], ...]:
    """The derivation's steps, once per file version and process (sympy is the slow part)."""
    module = load_proof(Path(path).stem, Path(path).parent)
    return tuple((str(text), bool(holds)) for text, holds in module.prove())


def run_proof(name: str, proofs_dir: Path = PROOFS_DIR) -> tuple[types.ModuleType, Symbolic]:
    """Run one proof file's ``prove()``; a crash is a failed proof, not an exception."""
    module = load_proof(name, proofs_dir)
    path = proofs_dir / f"{name}.py"
    try:
        steps = list(_proved(str(path), path.stat().st_mtime))
        return module, Symbolic(module.SCOPE, steps)
    except Exception as exc:  # a proof that cannot run has failed
        return module, Symbolic(module.SCOPE, [], crash=f"{type(exc).__name__}: {exc}")
