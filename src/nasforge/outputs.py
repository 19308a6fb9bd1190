"""What nasforge may remove or overwrite: only what it wrote itself.

Every run directory carries a marker file, :data:`MARKER`, listing the paths (relative to
the directory) that nasforge wrote there; the atomic writers, CSV logs, plots and index
files call :func:`record` after each write. ``--force`` then removes exactly those paths
(:func:`clear_run_dir`) and refuses, naming them, when anything else is in the folder — a
user's file, an input the command is about to read, or a folder without a marker. It never
clears the working directory, a parent of it, the home directory or a symbolic link.

Single-file outputs (``select --out``, ``derive --out``, plots, reports) go through
:func:`check_new_file`: an existing file is replaced only with ``--force``.

A stage that fails before its first checkpoint leaves nothing behind that looks like a run:
:func:`discard_unstarted` (called by the command line on any failure) removes what the
stages of this process wrote into the run directories they created.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from nasforge.errors import NasforgeError

MARKER = ".nasforge"
_HEADER = ("# nasforge run directory. The paths below were written by nasforge; "
           "--force removes only these.\n")
_MAX_DEPTH = 6          # how far up from a written file to look for its run directory
_listed: dict[Path, set[str]] = {}      # marker path -> its entries, as read or appended
_fresh: list[tuple[Path, bool]] = []    # run dirs created by this process, existed before?
_inputs: list[Path] = []                # paths the command line names (read, never cleared)


def declare_inputs(paths: Iterable[str | Path]) -> None:
    """Paths this command reads (its options): ``--force`` refuses to clear a folder holding
    one of them, whichever stage clears it."""
    _inputs.extend(Path(p) for p in paths)


def _entries(marker: Path) -> set[str]:
    if marker not in _listed:
        try:
            lines = marker.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        _listed[marker] = {ln for ln in lines if ln and not ln.startswith("#")}
    return _listed[marker]


def _run_dir_of(path: Path) -> Path | None:
    """The nearest folder above ``path`` that carries a marker."""
    for depth, parent in enumerate(path.parents):
        if depth >= _MAX_DEPTH:
            return None
        if (parent / MARKER).is_file():
            return parent
    return None


def _add(run_dir: Path, rel: str) -> None:
    marker = run_dir / MARKER
    entries = _entries(marker)
    if rel in entries:
        return
    with marker.open("a", encoding="utf-8") as fh:
        fh.write(rel + "\n")
    entries.add(rel)


def record(path: str | Path, *, directory: bool = False) -> None:
    """Note in the enclosing run directory's marker that nasforge wrote ``path``.

    ``directory=True`` claims a whole folder (TensorBoard event files, a nested stage's run
    directory). Outside any run directory this does nothing.
    """
    path = Path(os.path.abspath(path))
    run_dir = _run_dir_of(path)
    if run_dir is None:
        return
    rel = path.relative_to(run_dir).as_posix()
    with contextlib.suppress(OSError):  # a read-only marker must not fail the write itself
        _add(run_dir, rel + "/" if directory else rel)


def mark_run_dir(run_dir: str | Path) -> None:
    """Make ``run_dir`` (existing, empty or nasforge's) a run directory: write its marker and
    claim it in the run directory above it, if any (the demo's stages)."""
    run_dir = Path(run_dir)
    marker = run_dir / MARKER
    if not marker.is_file():
        marker.write_text(_HEADER, encoding="utf-8")
        _listed[marker] = set()
    record(run_dir, directory=True)


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / MARKER).is_file()


def _derived_from(name: str, owned: set[str]) -> bool:
    """Whether ``name`` (a file name) is a side file of an owned file in the same folder:
    ``X.prev``, ``X.corrupt``, ``X.prev.corrupt`` or an atomic writer's ``.X.*.tmp``."""
    for suffix in (".prev.corrupt", ".corrupt", ".prev"):
        if name.endswith(suffix) and name[: -len(suffix)] in owned:
            return True
    if name.startswith(".") and name.endswith(".tmp"):
        return any(name.startswith(f".{o}.") for o in owned)
    return False


def _split(run_dir: Path) -> tuple[list[Path], list[Path]]:
    """``(owned, foreign)`` paths in ``run_dir``; owned folders are not descended into
    unless they are run directories themselves (then their own marker decides)."""
    _listed.pop(run_dir / MARKER, None)  # another process (a resumed run) may have added
    entries = _entries(run_dir / MARKER) if is_run_dir(run_dir) else set()
    owned: list[Path] = []
    foreign: list[Path] = []

    def walk(folder: Path, prefix: str) -> None:
        names = {e[len(prefix):] for e in entries if e.startswith(prefix)}
        here = {n for n in names if "/" not in n}
        for child in sorted(folder.iterdir()):
            name = child.name
            rel = prefix + name
            if folder == run_dir and name == MARKER:
                continue
            if child.is_dir() and not child.is_symlink():
                if rel + "/" in entries:
                    if is_run_dir(child):
                        sub_owned, sub_foreign = _split(child)
                        owned.extend(sub_owned)
                        foreign.extend(sub_foreign)
                        owned.append(child / MARKER)
                    else:
                        owned.append(child)
                elif any(e.startswith(rel + "/") for e in entries):
                    walk(child, rel + "/")
                else:
                    foreign.append(child)
            elif name in here or _derived_from(name, here):
                owned.append(child)
            else:
                foreign.append(child)

    walk(run_dir, "")
    return owned, foreign


def _refuse_unsafe_target(out: Path, what: str) -> Path:
    if out.is_symlink():
        raise NasforgeError(f"{what} {out} is a symbolic link; --force never clears through a "
                            "link: give the folder it points to, or another --out")
    real = out.resolve()
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise NasforgeError(f"{what} {out} is the working directory or a folder above it; "
                            "--force never clears it: give a new folder as --out")
    if real == Path.home().resolve() or real == Path(real.anchor):
        raise NasforgeError(f"{what} {out} is the home or root directory; --force never "
                            "clears it: give a new folder as --out")
    return real


def _names(paths: Iterable[Path], root: Path, limit: int = 5) -> str:
    paths = list(paths)
    shown = ", ".join(str(p.relative_to(root)) + ("/" if p.is_dir() else "")
                      for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def clear_run_dir(out: str | Path, *, inputs: Iterable[str | Path] = (),
                  what: str = "run directory") -> None:
    """Empty ``out`` for a fresh run (``--force``): remove what nasforge wrote, nothing else.

    Refuses (one line) when ``out`` holds anything nasforge did not write, when one of
    ``inputs`` lies inside it, or when ``out`` is a link, the working directory, a parent of
    it, the home or the root directory.
    """
    out = Path(out)
    real = _refuse_unsafe_target(out, what)
    for item in [*inputs, *_inputs]:
        item_path = Path(item)
        if not item_path.exists():
            continue
        item_real = item_path.resolve()
        if item_real == real or real in item_real.parents:
            raise NasforgeError(f"the input {item} lies inside the {what} {out} that --force "
                                "would clear; move it elsewhere or give another --out")
    if not is_run_dir(out):
        raise NasforgeError(f"{what} {out} was not made by nasforge (no {MARKER} marker), so "
                            f"--force will not clear it; it holds {_names(out.iterdir(), out)}:"
                            " move them away or give a new --out")
    owned, foreign = _split(out)
    if foreign:
        raise NasforgeError(f"{what} {out} holds files nasforge did not write: "
                            f"{_names(foreign, out)}; --force removes only nasforge's files, "
                            "so move them away or give a new --out")
    _remove(out, owned)


def _remove(run_dir: Path, owned: list[Path]) -> None:
    for path in owned:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    # folders left empty by the removal (nested stage directories, strengths/, ...)
    for folder in sorted({p.parent for p in owned}, key=lambda p: len(p.parts), reverse=True):
        while folder != run_dir and run_dir in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent
    marker = run_dir / MARKER
    marker.unlink(missing_ok=True)
    _listed.pop(marker, None)


def check_new_dir(out: str | Path, *, force: bool, inputs: Iterable[str | Path] = (),
                  what: str = "run directory", hint: str = "") -> Path:
    """Make sure ``out`` can receive a fresh run: absent or empty, or (with ``force``) cleared
    of what nasforge wrote there. Returns ``out``; it is not created here."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NasforgeError(f"{what} {out} is a file; give --out a new or empty directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise NasforgeError(f"{what} {out} already exists; {hint or ''}pass --force to "
                                "replace what nasforge wrote there")
        clear_run_dir(out, inputs=inputs, what=what)
    return out


def create_run_dir(out: str | Path) -> Path:
    """Create (or take over the empty) ``out`` as a run directory of this process."""
    out = Path(out)
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    mark_run_dir(out)
    _fresh.append((out, existed))
    return out


def check_new_file(path: str | Path, *, force: bool, what: str = "output") -> Path:
    """Refuse to replace an existing file unless ``force``; never replace a folder."""
    path = Path(path)
    if path.is_dir():
        raise NasforgeError(f"{what} {path} is a directory; give a file name")
    if path.exists() and not force:
        raise NasforgeError(f"{what} {path} already exists; pass --force to overwrite it, or "
                            "give another name")
    return path


def _started(run_dir: Path) -> bool:
    """Whether a run got as far as something worth keeping: a checkpoint or results."""
    for marker in [run_dir / MARKER, *run_dir.rglob(MARKER)]:
        _listed.pop(marker, None)
        for entry in _entries(marker):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            worth_keeping = name.endswith(".pt") or name in ("results.json", "result.json")
            if worth_keeping and (marker.parent / entry.rstrip("/")).exists():
                return True
    return False


def discard_unstarted() -> None:
    """After a failed command: remove the run directories this process created whose stage
    never reached a checkpoint, so no lone ``config.yaml`` or ``proxy.txt`` looks like a
    run and the next correct command is not blocked. Folders that existed before keep
    everything that is not nasforge's."""
    while _fresh:
        run_dir, existed = _fresh.pop()
        if not is_run_dir(run_dir) or _started(run_dir):
            continue
        try:
            owned, _ = _split(run_dir)
            _remove(run_dir, owned)
            if not existed:
                run_dir.rmdir()
        except OSError:
            continue


def forget_fresh() -> None:
    """Forget the run directories created, the inputs declared and the markers read so far:
    the command line calls it before each command (tests and notebooks run several in one
    process, and only the failing command's own directories may be discarded)."""
    _fresh.clear()
    _listed.clear()
    _inputs.clear()
