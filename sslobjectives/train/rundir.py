"""The run folder: one room for its protocol, read and written only through :class:`RunDir`.

A run lives in ``<out>/runs/<label>-s<seed>-<run_id>/`` (:func:`run_dir_name`)::

    config.json      the resolved run config (written by a sweep before submitting)
    checkpoint.pt    tensors only, replaced atomically at the end of every epoch
    result.json      written atomically once, when the run ends (done or failed);
                     a run is done only once this file exists and says so
    attempts.jsonl   one line per attempt start / checkpoint signal / end (sweeps)
    .running.lock    held (flock) by the process training in the folder

Every file is replaced atomically (write a temporary file, fsync, rename), so a reader sees
the old file or the new one, never half of one: an unreadable ``result.json`` or
``checkpoint.pt`` is not one this project wrote, and reading it is a :class:`RunFileError`
naming the file.

A file is used only if it is the run's (:func:`identity`): ``result.json`` and
``checkpoint.pt`` record the run id, the full config hash and the data fingerprint (for a
user's ``.npz`` or image folder, a hash of its contents, which is also part of the run id) of
the run that wrote them, and a mismatch is a :class:`RunFileError` naming the file, never a
silent reuse. A checkpoint carries the SHA-256 of its tensors and is refused when they do
not match. Both record the code they came from (:func:`code_version`: package version, git
commit and whether the tree was dirty); the code is not part of the run id (ids stay
stable): a result of other code is *stale* (:func:`stale_reason`), rerun unless the caller
keeps it (``--reuse-stale``).

>>> import tempfile
>>> run = RunDir(tempfile.mkdtemp())
>>> run.result() is None
True
>>> run.write_result({"status": "done", "run_id": "abc"})
>>> run.result()["status"], run.is_done()
('done', True)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from functools import lru_cache
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


#: Format of ``checkpoint.pt``: an outer file holding the identity, the code, the SHA-256 of
#: the payload and the payload (the trainer's state, itself a ``torch.save`` file, as bytes).
CHECKPOINT_FORMAT = 2


class RunAlreadyRunning(RuntimeError):
    """Another process holds the run directory's lock."""


class RunFileError(ValueError):
    """A file of a run folder that cannot be used: unreadable, or not this run's. The
    message names the file and what to do about it."""


# ------------------------------------------------------------------------------ identity


def config_hash(config) -> str:
    """SHA-256 of everything that determines the result (the run id is its first 12 hex
    digits; the full hash is what a result is checked against)."""
    return config.config_hash


def data_fingerprint(dataset: str) -> str:
    """What the data of ``dataset`` is: a named source (its data is defined by the code) is
    its name; a user's ``.npz`` file or image folder is ``sha256:<hash of its contents>``
    (file names and bytes), so that new contents at the same path are new data.

    >>> data_fingerprint("digits")
    'digits'
    """
    from sslobjectives.data.sources import SOURCES

    if dataset in SOURCES:
        return dataset
    path = Path(dataset).expanduser()
    try:
        exists = path.exists()
    except (OSError, ValueError):  # a name no path can have (a NUL byte, too long)
        exists = False
    if not exists:
        return f"missing:{dataset}"
    if path.is_file():
        st = path.stat()
        return _content_hash(str(path.resolve()), ((path.name, st.st_size, st.st_mtime_ns),))
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        key = tuple((str(p.relative_to(path)), *_size_mtime(p)) for p in files)
        return _content_hash(str(path.resolve()), key)
    return f"missing:{dataset}"


def _size_mtime(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns


@lru_cache(maxsize=64)
def _content_hash(root: str, listing: tuple) -> str:
    """Hash of the names and bytes of the files listed (cached while sizes and mtimes stay)."""
    h = hashlib.sha256()
    base = Path(root)
    for entry in listing:
        name = entry[0]
        path = base if base.is_file() else base / name
        h.update(name.encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()


def identity(config) -> dict[str, str]:
    """What makes a file the run's: run id, full config hash and data fingerprint."""
    return {
        "run_id": config.run_id,
        "config_hash": config.config_hash,
        "data_fingerprint": data_fingerprint(config.dataset),
    }


def source_hash(root: Path) -> str:
    """SHA-256 (hex, first 16 digits) of the package's Python sources under ``root``: every
    ``*.py`` file's path relative to ``root`` and its bytes, in sorted order. It is what
    decides whether a result is stale: a commit that changes only docs, tests, scripts or
    experiment specs leaves it (and every finished result) unchanged; a change to any
    module of the package, committed or not, changes it."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """The code a result comes from: package version, the hash of the package's sources
    (:func:`source_hash`), git commit of the package's checkout and whether its files differ
    from that commit (commit and dirty are None outside git; they are recorded for the
    reader, the source hash decides staleness)."""
    import sslobjectives

    root = Path(sslobjectives.__file__).resolve().parent
    out: dict[str, Any] = {
        "version": sslobjectives.__version__,
        "source": source_hash(root),
        "commit": None,
        "dirty": None,
    }
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "."],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return out
    out.update(commit=commit or None, dirty=bool(dirty))
    return out


def _describe_code(code: Any) -> str:
    if not isinstance(code, dict):
        return "code of an older version that recorded none"
    commit = code.get("commit")
    where = f" commit {str(commit)[:10]}" if commit else ""
    dirty = " (dirty)" if code.get("dirty") else ""
    source = f", sources {code['source']}" if code.get("source") else ""
    return f"sslobjectives {code.get('version')}{where}{dirty}{source}"


def stale_reason(record: dict[str, Any]) -> str | None:
    """Why ``record`` (a result or a checkpoint) comes from other code than this one, or
    None when it comes from this code."""
    ours = code_version()
    theirs = record.get("code")
    if isinstance(theirs, dict) and "source" in theirs and "source" in ours:
        # the package's sources decide: a docs- or tests-only commit keeps results fresh
        if theirs["source"] == ours["source"]:
            return None
    elif isinstance(theirs, dict) and all(theirs.get(k) == ours.get(k) for k in ours):
        return None  # recorded before the source hash: every field must match
    return f"written by {_describe_code(theirs)}, this is {_describe_code(ours)}"


def check_identity(record: Any, expected: dict[str, str], path: Path, what: str) -> None:
    """Raise :class:`RunFileError` unless ``record`` (read from ``path``) is the run's:
    every key of ``expected`` (see :func:`identity`) that ``record`` carries must match, and
    the run id must be there."""
    if not isinstance(record, dict):
        raise RunFileError(f"{path}: not a {what} (not a JSON object): delete it to rerun the run")
    got = record.get("run_id")
    if got != expected.get("run_id"):
        owner = f"{record.get('label', '?')} seed {record.get('seed', '?')}"
        raise RunFileError(
            f"{path} is the {what} of run {got} ({owner}), not of run {expected.get('run_id')} "
            "whose folder holds it: move it back to its own run folder or delete it"
        )
    for key, label in (("config_hash", "config"), ("data_fingerprint", "data")):
        if key in expected and key in record and record[key] != expected[key]:
            raise RunFileError(
                f"{path}: the {what} was made with other {label} than run {got} has now "
                f"({key} {str(record[key])[:19]} != {str(expected[key])[:19]}): "
                "move the run folder away to rerun it"
            )


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
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk or an interrupt leaves no partial file behind
        tmp.unlink(missing_ok=True)
        raise


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
        "commit": code_version()["commit"],
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

    def result(self, expect: Any = None) -> dict[str, Any] | None:
        """The run's result if it has one (the one way every reader reads ``result.json``).

        An unreadable file is a :class:`RunFileError` naming it. With ``expect`` (a config,
        or a dict of :func:`identity` keys) a result of another run, config or data is one
        too: it is never silently used."""
        path = self.result_path
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise RunFileError(f"{path} is a folder, not a result: remove it") from None
        try:
            result = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunFileError(
                f"{path} is not valid JSON ({type(err).__name__}): it was not written by "
                "this project; delete it to rerun the run"
            ) from None
        if not isinstance(result, dict):
            raise RunFileError(f"{path} is not a result (not a JSON object): delete it")
        if expect is not None:
            expected = expect if isinstance(expect, dict) else identity(expect)
            check_identity(result, expected, path, "result")
        return upgrade_result(result)

    def is_done(self, expect: Any = None) -> bool:
        result = self.result(expect)
        return result is not None and result.get("status") == "done"

    def write_result(self, result: dict[str, Any], config: Any = None) -> None:
        """Write ``result.json``; with ``config``, stamped with its :func:`identity` and the
        :func:`code_version` (the trainer always passes it)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if config is not None:
            result = {**result, **identity(config), "code": code_version()}
        write_json_atomic(self.result_path, result)

    def record_failure(self, config: Any, error: str) -> None:
        """A failed result for a run that broke outside the training loop (the reason is
        kept with the run, where ``status`` and the summaries find it)."""
        self.write_result(
            {"label": config.display_name, "seed": config.seed, "config": config.to_dict(),
             "status": "failed", "error": error, "final": None, "collapsed": None},
            config,
        )  # fmt: skip

    def retire(self, reason: str) -> list[Path]:
        """Move ``result.json`` and ``checkpoint.pt`` aside (``*.stale-<time>``) so that the run
        is trained again from scratch; nothing is deleted. Returns the new paths."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        moved = []
        for path in (self.result_path, self.checkpoint_path):
            if path.exists():
                new = path.with_name(f"{path.stem}.stale-{stamp}{path.suffix}")
                os.replace(path, new)
                moved.append(new)
        if moved:
            self.log_attempt("retired", reason=reason, files=[p.name for p in moved])
        return moved

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

    def save_checkpoint(self, state: dict[str, Any], config: Any = None) -> None:
        """Write ``checkpoint.pt`` atomically: the state with its SHA-256 and, with
        ``config``, the run's :func:`identity` and the :func:`code_version`."""
        atomic_write_bytes(
            self.checkpoint_path, lambda fh: fh.write(pack_checkpoint(state, config))
        )

    def checkpoint_header(self) -> dict[str, Any] | None:
        """Identity, code and epoch of the checkpoint (checksum verified), None without one."""
        if not self.checkpoint_path.exists():
            return None
        return read_checkpoint(self.checkpoint_path)[0]

    def load_checkpoint(
        self, map_location: Any = "cpu", expect: Any = None
    ) -> dict[str, Any] | None:
        """The checkpoint's state (tensors only, its checksum verified), None without one.
        A damaged or foreign file, or (with ``expect``) another run's, is a
        :class:`RunFileError` naming the file."""
        if not self.checkpoint_path.exists():
            return None
        header, state = read_checkpoint(self.checkpoint_path, map_location)
        if expect is not None:
            expected = expect if isinstance(expect, dict) else identity(expect)
            check_identity(header, expected, self.checkpoint_path, "checkpoint")
        return state

    def checkpoint_epoch(self) -> int:
        """Epochs completed according to the checkpoint (0 without one, -1 unreadable)."""
        try:
            header = self.checkpoint_header()
        except Exception:
            return -1
        return 0 if header is None else int(header.get("epoch", -1))

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


# ------------------------------------------------------------------------------ checkpoints


def pack_checkpoint(state: dict[str, Any], config: Any = None) -> bytes:
    """The bytes of a ``checkpoint.pt``: the state's ``torch.save`` bytes as a uint8 tensor,
    their SHA-256, the epoch and (with ``config``) the identity and the code."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    header: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "epoch": int(state.get("epoch", 0)) if isinstance(state, dict) else 0,
    }
    if config is not None:
        header.update(identity(config), code=json.dumps(code_version()))
        header.update(label=config.display_name, seed=config.seed)
    elif isinstance(state, dict) and "run_id" in state:
        header["run_id"] = state["run_id"]
    out = io.BytesIO()
    payload_t = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
    torch.save({"header": header, "payload": payload_t}, out)
    return out.getvalue()


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> tuple[dict[str, Any], Any]:
    """``(header, state)`` of a checkpoint written by :func:`pack_checkpoint`, its checksum
    verified; anything else (truncated, empty, flipped bytes, objects other than tensors,
    an older format) is a :class:`RunFileError` naming the file and what to do."""
    import torch

    path = Path(path)
    fix = "delete it to train the run from the start"
    try:
        outer = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RunFileError(
            f"{path}: not a readable checkpoint ({_load_problem(err)}): {fix}"
        ) from None
    if not (isinstance(outer, dict) and {"header", "payload"} <= outer.keys()):
        raise RunFileError(
            f"{path}: a checkpoint without checksum (older format or not this project's): {fix}"
        )
    header, payload_t = outer["header"], outer["payload"]
    if not isinstance(header, dict) or not isinstance(payload_t, torch.Tensor):
        raise RunFileError(f"{path}: not a checkpoint of this project: {fix}")
    payload = payload_t.numpy().tobytes()
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise RunFileError(f"{path}: the checkpoint fails its checksum (damaged file): {fix}")
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as err:
        raise RunFileError(
            f"{path}: not a readable checkpoint ({_load_problem(err)}): {fix}"
        ) from None
    if isinstance(header.get("code"), str):
        try:
            header = {**header, "code": json.loads(header["code"])}
        except json.JSONDecodeError:
            header = {**header, "code": None}
    return header, state


def _load_problem(err: Exception) -> str:
    """What went wrong loading a file, without torch's advice to trust it
    (``weights_only=False`` would run whatever code the file holds)."""
    import pickle

    if isinstance(err, pickle.UnpicklingError) or "weights_only" in str(err):
        return "it holds objects other than tensors, which are never loaded"
    if isinstance(err, EOFError):
        return "empty or truncated"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return first[:120]


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
