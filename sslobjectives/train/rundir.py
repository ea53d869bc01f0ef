"""The run folder: one room for its protocol, read and written only through :class:`RunDir`.

A run lives in ``<out>/runs/<label>-s<seed>-<run_id>/`` (:func:`run_dir_name`)::

    config.json      the resolved run config (written by a sweep before submitting)
    checkpoint.pt    tensors only, replaced atomically at the end of every epoch
    result.json      written atomically once, when the run ends (done or failed);
                     a run is done only once this file exists and says so
    attempts.jsonl   one line per attempt start / checkpoint signal / end (sweeps)
    .running.lock    held (flock) by the process training in the folder

Every file is replaced atomically (write a temporary file, fsync, rename), so a reader sees
the old file or the new one, never half of one; that is why :meth:`RunDir.result` can treat
an unreadable ``result.json`` as "no result" rather than as an error.

>>> import tempfile
>>> run = RunDir(tempfile.mkdtemp())
>>> run.result() is None
True
>>> run.write_result({"status": "done", "run_id": "abc"})
>>> run.result()["status"], run.is_done()
('done', True)
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

RESULT_FILE = "result.json"
CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.json"
ATTEMPTS_FILE = "attempts.jsonl"
LOCK_FILE = ".running.lock"
#: The folder below a sweep or comparison output directory that holds the run folders.
RUNS_DIR = "runs"
#: Keys of ``result.json``'s ``final`` renamed since results were first written (old -> new):
#: the raw teacher posterior's marginal entropy got its own name, apart from the normalised
#: teacher's per-epoch ``history`` ``marginal_entropy`` (see :mod:`sslobjectives.eval.run`).
RENAMED_FINAL_KEYS = {"marginal_entropy": "posterior_marginal_entropy"}


class RunAlreadyRunning(RuntimeError):
    """Another process holds the run directory's lock."""


def run_dir_name(config) -> str:
    """The run folder's name: ``<display name>-s<seed>-<run_id>`` (run ids never change)."""
    return f"{config.display_name}-s{config.seed}-{config.run_id}"


def run_dir_for(out_dir: str | Path, config) -> Path:
    """The run folder of ``config`` below a sweep or comparison directory ``out_dir``."""
    return Path(out_dir) / RUNS_DIR / run_dir_name(config)


# ------------------------------------------------------------------------------ files


def atomic_write_bytes(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(fh)`` on a temporary file next to ``path``, fsync, then rename it over
    ``path``: readers never see half a file, and a crash leaves the old file intact."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to a temporary file, then rename: readers never see half a file."""
    blob = json.dumps(data, indent=2, sort_keys=False, default=_json_default).encode()
    atomic_write_bytes(Path(path), lambda fh: fh.write(blob))


def upgrade_result(result: dict[str, Any]) -> dict[str, Any]:
    """A result as it is written today, from one written by any earlier version (in place;
    returns ``result``). Only ``final`` changed: ``history`` kept its keys.

    >>> upgrade_result({"final": {"marginal_entropy": 4.2, "knn": 0.9}})
    {'final': {'posterior_marginal_entropy': 4.2, 'knn': 0.9}}
    """
    final = result.get("final")
    if isinstance(final, dict) and any(old in final for old in RENAMED_FINAL_KEYS):
        result["final"] = {RENAMED_FINAL_KEYS.get(k, k): v for k, v in final.items()}
    return result


def read_result_file(path: str | Path) -> dict[str, Any] | None:
    """The result in ``path`` under today's keys (:func:`upgrade_result`); None when absent or
    unreadable (:func:`read_json`)."""
    result = read_json(path)
    return None if result is None else upgrade_result(result)


def read_json(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when absent or unreadable (our files are only ever
    replaced atomically, so an unreadable one is not ours)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    torch = sys.modules.get("torch")  # a tensor can only come from code that imported torch
    if torch is not None and isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def versions() -> dict[str, str]:
    """The versions a result records (a result is reproducible only with them)."""
    import numpy as np
    import torch

    import sslobjectives

    return {
        "sslobjectives": sslobjectives.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``path`` (best effort where the filesystem
    has no flock). Entering raises ``error(message)`` when another process holds it.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.lock"
    >>> with FileLock(p, "busy"):
    ...     FileLock.held(p)
    True
    >>> FileLock.held(p)
    False
    """

    def __init__(self, path: str | Path, message: str, error: type[Exception] = RuntimeError):
        self.path, self.message, self.error = Path(path), message, error

    def __enter__(self) -> FileLock:
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise self.error(self.message) from None
        except OSError:
            pass  # filesystem without flock: go on unlocked
        return self

    def __exit__(self, *exc: Any) -> None:
        os.close(self.fd)

    @staticmethod
    def held(path: str | Path) -> bool:
        """Whether some process holds the lock on ``path`` right now (this machine's view).
        Probing from inside the holding process answers True as well: flock locks belong to
        open file descriptions, not processes."""
        import fcntl

        path = Path(path)
        if not path.exists():
            return False
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------ the folder


class RunDir:
    """One run folder and its protocol (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def for_config(cls, out_dir: str | Path, config) -> RunDir:
        return cls(run_dir_for(out_dir, config))

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def result_path(self) -> Path:
        return self.path / RESULT_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    # result.json ----------------------------------------------------------------------

    def result(self) -> dict[str, Any] | None:
        """The run's result if it has one (the one way every reader reads ``result.json``)."""
        return read_result_file(self.result_path)

    def is_done(self) -> bool:
        result = self.result()
        return result is not None and result.get("status") == "done"

    def write_result(self, result: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.result_path, result)

    def holds_run(self) -> bool:
        """Whether a run was started here (a checkpoint or a result exists)."""
        return self.checkpoint_path.exists() or self.result_path.exists()

    # config.json ----------------------------------------------------------------------

    def write_config(self, config: dict[str, Any]) -> None:
        """Write ``config.json`` unless present (the config of a run id never changes)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / CONFIG_FILE).exists():
            write_json_atomic(self.path / CONFIG_FILE, config)

    # checkpoint.pt --------------------------------------------------------------------

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        import torch

        atomic_write_bytes(self.checkpoint_path, lambda fh: torch.save(state, fh))

    def load_checkpoint(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        """The checkpoint's state (tensors only: ``weights_only=True``), None without one."""
        import torch

        if not self.checkpoint_path.exists():
            return None
        return torch.load(self.checkpoint_path, map_location=map_location, weights_only=True)

    def checkpoint_epoch(self) -> int:
        """Epochs completed according to the checkpoint (0 without one, -1 unreadable)."""
        try:
            state = self.load_checkpoint()
        except Exception:
            return -1
        return 0 if state is None else int(state["epoch"])

    # attempts.jsonl -------------------------------------------------------------------

    def log_attempt(self, event: str, **fields: Any) -> None:
        """Append one JSON line to ``attempts.jsonl``: a single small ``O_APPEND`` write, so
        lines of concurrent writers never interleave."""
        record = {"event": event, "time": round(time.time(), 3), **fields}
        line = json.dumps(record, default=str) + "\n"
        fd = os.open(self.path / ATTEMPTS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def attempts(self) -> list[dict[str, Any]]:
        """The records of ``attempts.jsonl`` (a torn last line is skipped)."""
        path = self.path / ATTEMPTS_FILE
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    # the lock -------------------------------------------------------------------------

    def lock(self) -> FileLock:
        """Exclusive lock while training: two attempts of one run never write the same
        checkpoint. Raises :class:`RunAlreadyRunning` when another process holds it."""
        return FileLock(
            self.path / LOCK_FILE,
            f"{self.path} is being trained by another process (lock {LOCK_FILE} is held)",
            RunAlreadyRunning,
        )

    def lock_held(self) -> bool:
        """Whether some process is training in this folder right now."""
        return FileLock.held(self.path / LOCK_FILE)


def read_result(run_dir: str | Path) -> dict[str, Any] | None:
    """The result of the run in ``run_dir`` if it has one (:meth:`RunDir.result`)."""
    return RunDir(run_dir).result()


def resolve_init_from(init_from: str, seed: int) -> Path:
    """The checkpoint file ``init_from`` names (``RunConfig.init_from``), checked.

    ``{seed}`` is replaced by ``seed``; a glob pattern must match exactly one path; a
    directory is a run directory whose ``result.json`` says done, and its ``checkpoint.pt``
    is used. Anything else is a ``ValueError`` that says what is wrong.

    >>> resolve_init_from("/nonexistent/run-s{seed}", 3)
    Traceback (most recent call last):
    ...
    ValueError: init_from: /nonexistent/run-s3 does not exist
    """
    text = init_from.replace("{seed}", str(seed))
    path = Path(text)
    if any(c in text for c in "*?["):
        import glob

        matches = sorted(glob.glob(text))
        if len(matches) != 1:
            shown = ", ".join(matches[:5]) or "nothing"
            raise ValueError(
                f"init_from: the pattern {text!r} must match exactly one path, "
                f"matched {len(matches)}: {shown}"
            )
        path = Path(matches[0])
    if not path.exists():
        raise ValueError(f"init_from: {path} does not exist")
    if path.is_dir():
        run = RunDir(path)
        done = run.result()
        if done is None or done.get("status") != "done":
            state = "failed" if done else "has no result (not finished?)"
            raise ValueError(f"init_from: the run in {path} {state}: its weights are not final")
        path = run.checkpoint_path
        if not path.exists():
            raise ValueError(f"init_from: {path} does not exist")
    return path
