"""Atomic files: a run killed at any moment leaves either the old file or the new one.

Every write goes to a temporary file in the same directory, is fsynced, then renamed over
the target, and the directory is fsynced after the rename. Checkpoints keep the previous
good copy as ``NAME.prev`` (a hard link made before the rename, so ``NAME`` never goes
missing). A checkpoint that is found corrupt or truncated (torch.load fails, or a CRC-32 of
its zip members does not match) is reported as one warning line on stderr, set aside as
``NAME.corrupt``, and the ``.prev`` copy is used instead (docs/resume.md).

Test hook: ``NASFORGE_TEST_KILL_AT=POINT:N`` makes the process SIGKILL itself the N-th time
it reaches POINT (:func:`kill_point`); ``checkpoint-write`` kills it halfway through writing
the temporary file of a checkpoint. Only the kill tests set it. ``NASFORGE_TEST_FULL_AT=
checkpoint-write:N`` instead makes the N-th checkpoint write fail halfway with ``OSError(ENOSPC)``
as on a full disk (:data:`FULL_ENV`; tests/test_env_faults.py).

A write that fails (a full disk, a read-only folder) raises ``OSError`` naming the file the
caller asked for, never the temporary file; the temporary file is removed.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from nasforge.errors import NasforgeError
from nasforge.outputs import record

if TYPE_CHECKING:
    import torch

KILL_ENV = "NASFORGE_TEST_KILL_AT"
FULL_ENV = "NASFORGE_TEST_FULL_AT"
_reached: dict[str, int] = {}


def _kill_due(point: str, env: str = KILL_ENV) -> bool:
    """Test hook: True the N-th time ``point`` is reached when $NASFORGE_TEST_KILL_AT (or
    ``env``) is ``POINT:N`` (N defaults to 1)."""
    spec = os.environ.get(env)
    if not spec:
        return False
    name, _, count = spec.partition(":")
    if name != point:
        return False
    key = f"{env}:{point}"
    _reached[key] = _reached.get(key, 0) + 1
    return _reached[key] == int(count or 1)


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def kill_point(point: str) -> None:
    """Test hook for the kill tests: SIGKILL this process here when $NASFORGE_TEST_KILL_AT
    names ``point`` (see the module docstring); a no-op otherwise."""
    if _kill_due(point):
        _die()


def _write_half_and_die(fh: BinaryIO, write: Callable[[BinaryIO], None]) -> None:
    """Test hook: write half of what ``write`` produces to ``fh``, fsync it, SIGKILL."""
    buf = io.BytesIO()
    write(buf)
    data = buf.getvalue()
    fh.write(data[: len(data) // 2])
    fh.flush()
    os.fsync(fh.fileno())
    _die()


def _keep_previous(path: Path) -> None:
    """Make ``PATH.prev`` the current ``PATH`` without a moment where ``PATH`` is missing."""
    prev = path.with_name(path.name + ".prev")
    link = path.with_name(f".{path.name}.{os.getpid()}.link.tmp")
    try:
        link.unlink(missing_ok=True)
        os.link(path, link)
        os.replace(link, prev)
    except OSError:  # no hard links here: PATH is missing until the new file is renamed
        link.unlink(missing_ok=True)
        os.replace(path, prev)


def _fsync_dir(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a directory
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class _FullDisk:
    """Test hook: a file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, fh: BinaryIO, room: int) -> None:
        self.fh, self.room = fh, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.fh.write(data[: self.room])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def _write_half_and_fail(fh: BinaryIO, write: Callable[[BinaryIO], None]) -> None:
    """Test hook: run ``write`` on a disk that fills up halfway through."""
    buf = io.BytesIO()
    write(buf)
    write(_FullDisk(fh, len(buf.getvalue()) // 2))  # type: ignore[arg-type]


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``path`` (what the caller asked to write) as its file name, in place of
    an internal temporary file or no name at all."""
    name = exc.filename
    if name is None or Path(str(name)).name.endswith(".tmp"):
        name = str(path)  # else: a path the user gave (e.g. a folder that cannot be made)
    return OSError(exc.errno, exc.strerror or str(exc), name)


def _atomic_write(path: str | Path, write: Callable[[BinaryIO], None], *,
                  keep_previous: bool = False) -> Path:
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            if keep_previous and _kill_due("checkpoint-write"):
                _write_half_and_die(fh, write)
            if keep_previous and _kill_due("checkpoint-write", FULL_ENV):
                _write_half_and_fail(fh, write)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if keep_previous and path.exists():
            _keep_previous(path)
        os.replace(tmp, path)
    except RuntimeError as exc:  # torch.save wraps the OSError of a failed write
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError):
            raise _naming(cause, path) from exc
        raise
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise _naming(exc, path) from exc
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    record(path)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return _atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` atomically, keeping the previous checkpoint as ``PATH.prev``.

    Temporary files left by an earlier writer of ``PATH`` that was killed are removed first.
    """
    path = Path(path)
    if path.parent.is_dir():
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
    import torch  # here, so that importing this module stays free of torch (sweep workers)

    return _atomic_write(path, lambda fh: torch.save(state, fh), keep_previous=True)


def _try_load(path: Path) -> tuple[dict | None, str]:
    """``(state, "")``, or ``(None, why)`` when ``path`` is truncated, corrupt or foreign.

    torch.load does not verify the CRC-32 of the zip members it reads, so a flipped byte in a
    tensor would load silently; ``testzip`` checks every member first.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                return None, f"CRC-32 mismatch in {bad}"
        import torch

        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # damaged files raise many types
        detail = (str(exc).strip().splitlines() or [""])[0][:120]
        return None, f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if not isinstance(state, dict):
        return None, f"holds a {type(state).__name__}, not a checkpoint"
    return state, ""


def has_checkpoint(path: str | Path) -> bool:
    """True when ``path`` or its ``.prev`` fallback exists."""
    path = Path(path)
    return path.exists() or path.with_name(path.name + ".prev").exists()


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint, falling back to ``PATH.prev`` when the latest is unreadable.

    The fallback is reported as one warning line on stderr; the unreadable file is set aside
    as ``PATH.corrupt`` and replaced by a copy of ``PATH.prev``, so the next save keeps the
    good copy as ``.prev`` and later loads need no fallback. Under torchrun only rank 0
    repairs and reports (every rank loads the same ``.prev``).
    """
    path = Path(path)
    prev = path.with_name(path.name + ".prev")
    if not path.exists() and not prev.exists():
        raise NasforgeError(f"no checkpoint at {path}")
    reason = "missing"
    if path.exists():
        state, reason = _try_load(path)
        if state is not None:
            return state
    state, prev_reason = _try_load(prev) if prev.exists() else (None, "missing")
    if state is None:
        raise NasforgeError(f"checkpoint {path} is corrupt or truncated ({reason}) and no "
                            f"readable {prev.name} exists ({prev_reason})")
    if os.environ.get("RANK", "0") != "0":  # data-parallel: rank 0 repairs and reports
        return state
    aside = ""
    try:
        if path.exists():
            os.replace(path, path.with_name(path.name + ".corrupt"))
            aside = f", set aside as {path.name}.corrupt"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.restore.tmp")
        shutil.copyfile(prev, tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError:  # a read-only run directory: load from .prev every time
        pass
    what = "missing" if reason == "missing" else f"corrupt or truncated ({reason})"
    epoch = state.get("epoch")
    at = f" (epoch {epoch})" if isinstance(epoch, int) else ""
    print(f"nasforge: warning: checkpoint {path} is {what}{aside}; using the previous good "
          f"one, {prev.name}{at}", file=sys.stderr, flush=True)
    return state


def load_weights(module: torch.nn.Module, weights: dict, path: str | Path, hint: str) -> None:
    """``module.load_state_dict(weights)``, with a mismatch (a config edited since the run
    started) reported as a user error naming the first bad tensor and ``hint``, the settings
    that shape the module."""
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = next((line for line in lines if line.startswith(("size mismatch", "Missing",
                                                                  "Unexpected"))), lines[-1])
        raise NasforgeError(f"checkpoint {path} does not fit the network this config builds "
                            f"({detail.rstrip('.')}); {hint} must keep the values the run "
                            "started with") from exc
