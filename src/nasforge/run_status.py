"""Find run directories under a folder and tell what state each is in (``nasforge runs``).

A run directory is one that a stage wrote: it holds ``config.yaml`` (every stage writes it
first), or a ``results.json`` with a ``"stage"`` key, or is a ``nasforge demo`` directory.
Its status is

- ``done``: ``results.json`` is present and readable (every stage writes it last, whole:
  a ``results.json`` that does not parse as a JSON object is corrupt, and its run
  ``failed``, whatever else it holds);
- ``running``: no results yet, and a file of the directory changed recently: within
  ``active`` seconds (10 minutes by default) or, for slow runs, within twice the mean epoch
  time measured in the log plus a minute. The loops write no lock or pid file, so this is
  a heuristic: a run killed a moment ago looks ``running`` until that window passes;
- ``resumable``: no results, not recently changed, and a checkpoint to continue from
  (``checkpoint.pt`` or its ``.prev`` copy; for ``snn search`` the scored architectures in
  ``evaluations.json``) — continue it with ``--resume DIR`` (``snn search``: re-run it);
- ``failed``: none of the above: it stopped before its first checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from nasforge.checkpoint import has_checkpoint
from nasforge.errors import NasforgeError
from nasforge.outputs import MARKER
from nasforge.stages import find_stage, get_stage, stage_logs

ACTIVE_SECONDS = 600.0
"""A run without results counts as running while a file changed within this many seconds."""

MAX_DEPTH = 4
"""How deep below the scanned folder run directories are looked for (demo sub-runs: 2)."""

LOGS = stage_logs()
"""The per-epoch CSV log of each kind of run (from the stage registry)."""

SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "tb"}
STATUSES = ("done", "running", "resumable", "failed")


@dataclass
class RunInfo:
    """What ``nasforge runs`` shows about one run directory."""

    path: str
    kind: str  # search, train, snn-supernet, snn-search, snn-train, entropy, demo, ... or run
    status: str  # done, running, resumable, failed
    epoch: int | None  # epochs finished (rows of the log)
    epochs: int | None  # epochs configured
    metric: str | None  # name of the key metric, e.g. test_acc
    value: float | None
    age: float  # seconds since a file of the directory last changed
    detail: str = ""  # algorithm, architecture or data set

    @property
    def progress(self) -> str:
        if self.epoch is None and self.epochs is None:
            return "-"
        done = "?" if self.epoch is None else str(self.epoch)
        return f"{done}/{'?' if self.epochs is None else self.epochs}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "progress": self.progress}


def read_json(path: Path) -> dict | None:
    """A JSON object from ``path``; None when it is absent or unreadable (a run being written)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_config_dict(run_dir: Path) -> dict:
    """``config.yaml`` as a plain dict ({} when absent or unreadable): no validation, so a
    config written by another nasforge version still lists."""
    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def is_demo(results: dict | None) -> bool:
    return bool(results) and "stage" not in results and \
        (results.get("files") or {}).get("search_run") is not None


def is_run_dir(path: Path) -> bool:
    if (path / "config.yaml").is_file():
        return True
    results = read_json(path / "results.json") if (path / "results.json").is_file() else None
    return bool(results) and ("stage" in results or is_demo(results))


def run_kind(run_dir: Path, results: dict | None = None, config: dict | None = None) -> str:
    """The stage that wrote ``run_dir``: results.json's ``stage``, else guessed from files."""
    if results is None:
        results = read_json(run_dir / "results.json")
    if results and "stage" in results:
        return str(results["stage"])
    if is_demo(results):
        return "demo"
    if (run_dir / LOGS["search"]).exists() or (run_dir / "strengths.jsonl").exists() \
            or (run_dir / "entropy.tsv.run").is_dir():
        return "search"
    if (run_dir / LOGS["snn-supernet"]).exists():
        return "snn-supernet"
    if (run_dir / get_stage("snn-search").progress_file).exists():
        return "snn-search"
    if run_dir.name.endswith(".run"):
        return "entropy"
    if (run_dir / "genotype.txt").exists():
        return "train"
    snn = (config if config is not None else read_config_dict(run_dir)).get("snn") or {}
    if snn.get("arch") or snn.get("model"):
        return "snn-train"
    return "run"


def configured_epochs(kind: str, config: dict) -> int | None:
    """The epoch budget of a run of ``kind`` (the stage's ``epochs`` key in its config)."""
    stage = find_stage(kind)
    key = stage.epochs if stage is not None else None
    if key is None:
        return None
    section, name = key.split(".", 1)
    values = config.get(section) or {}
    try:
        if kind == "entropy" and values.get("pretrain") == "simclr":
            return int(values["simclr_epochs"]) + int(values["linear_epochs"])
        return int(values[name]) if name in values else None
    except (KeyError, TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def key_metric(kind: str, results: dict | None, last_row: dict | None
               ) -> tuple[str | None, float | None]:
    """The number that sums a run up: final test/val accuracy, else the log's latest val_acc."""
    if results:
        if kind == "snn-search":
            rows = results.get("searches") or []
            return ("val_acc", _float(rows[0].get("acc"))) if rows else (None, None)
        if kind == "snn-supernet":
            return "val_acc_random_path", _float(results.get("val_acc_random_path"))
        for name in ("test_acc", "val_acc"):
            if _float(results.get(name)) is not None:
                return name, _float(results[name])
    if last_row:
        for name in ("val_acc", "test_acc", "train_acc"):
            if _float(last_row.get(name)) is not None:
                return name, _float(last_row[name])
    return None, None


def _detail(kind: str, config: dict, results: dict | None) -> str:
    data = (config.get("data") or {}).get("dataset") or (results or {}).get("dataset") or ""
    if kind == "search":
        s = config.get("search") or {}
        space = s.get("space") or "darts"
        what = f"{s.get('algo', '?')}" + ("" if space == "darts" else f" {space}")
    elif kind == "snn-train":
        snn = config.get("snn") or {}
        what = snn.get("model") or snn.get("arch") or ""
    elif kind == "snn-supernet":
        snn = config.get("snn") or {}
        what = f"C={snn.get('channels')} T={snn.get('timesteps')}"
    elif kind == "demo":
        what = (results or {}).get("algo", "")
    elif kind == "entropy":
        what = (config.get("entropy") or {}).get("model", "")
    else:
        what = ""
    return " ".join(str(p) for p in (what, data) if p)


def _latest_change(run_dir: Path) -> float:
    """mtime of the newest file directly in ``run_dir`` (and in snn-search λ folders); the
    ownership marker is not the run's progress (a report made later appends to it)."""
    latest = 0.0
    with os.scandir(run_dir) as entries:
        for entry in entries:
            try:
                if entry.is_file() and entry.name != MARKER:
                    latest = max(latest, entry.stat().st_mtime)
                elif entry.is_dir() and entry.name.startswith("lam"):
                    for sub in os.scandir(entry.path):
                        if sub.is_file():
                            latest = max(latest, sub.stat().st_mtime)
            except OSError:  # a file replaced while we look
                continue
    return latest or run_dir.stat().st_mtime


def run_info(run_dir: str | Path, *, active: float = ACTIVE_SECONDS,
             now: float | None = None) -> RunInfo:
    """Kind, status, progress and key metric of one run directory (see the module doc)."""
    from nasforge.runtime import read_csv  # runtime imports torch; sweep workers do not

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NasforgeError(f"{run_dir} is not a directory")
    now = time.time() if now is None else now
    results = read_json(run_dir / "results.json")
    corrupt = not results and (run_dir / "results.json").exists()
    if corrupt:
        results = None
    config = read_config_dict(run_dir)
    kind = run_kind(run_dir, results, config)
    rows = read_csv(run_dir / LOGS[kind]) if kind in LOGS else []
    last = rows[-1] if rows else None
    epoch = len(rows) if kind in LOGS else None
    epochs = configured_epochs(kind, config)
    if results and kind in LOGS and epochs is not None and epoch == 0:
        # finished without a log: scored with given weights, or a search without epochs
        # (random, zc-*: cells scored one by one), whose budget is not search.epochs
        epoch = epochs = None
    age = max(0.0, now - _latest_change(run_dir))
    if corrupt:  # written atomically, so never half-way: it was damaged afterwards
        status = "failed"
    elif results is not None:
        status = "done"
    else:
        window = active
        seconds = _float(last.get("seconds")) if last else None
        if seconds and rows:
            window = max(window, 2 * seconds / len(rows) + 60)
        if age <= window:
            status = "running"
        elif has_checkpoint(run_dir / "checkpoint.pt") or _has_progress(kind, run_dir):
            status = "resumable"
        else:
            status = "failed"
    metric, value = key_metric(kind, results, last)
    detail = _detail(kind, config, results)
    if corrupt:
        detail = f"{detail}; results.json is corrupt" if detail else "results.json is corrupt"
    return RunInfo(path=str(run_dir), kind=kind, status=status, epoch=epoch, epochs=epochs,
                   metric=metric, value=value, age=age, detail=detail)


def _has_progress(kind: str, run_dir: Path) -> bool:
    """Whether a run of a stage that keeps its progress elsewhere than in a checkpoint
    (``snn search``: the scored architectures) has some to continue from."""
    stage = find_stage(kind)
    return bool(stage and stage.progress_file and (run_dir / stage.progress_file).exists())


def find_run_dirs(root: str | Path, *, max_depth: int = MAX_DEPTH) -> list[Path]:
    """Run directories at or below ``root``, at most ``max_depth`` levels down, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise NasforgeError(f"{root} is not a directory")
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        if is_run_dir(folder):
            found.append(folder)
        if depth >= max_depth:
            return
        try:
            children = sorted(e.path for e in os.scandir(folder)
                              if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
                              and e.name not in SKIP_DIRS)
        except OSError:
            return
        for child in children:
            walk(Path(child), depth + 1)

    walk(root, 0)
    return found


def list_runs(root: str | Path = "runs", *, max_depth: int = MAX_DEPTH,
              active: float = ACTIVE_SECONDS) -> list[RunInfo]:
    """Every run directory under ``root`` with its status, sorted by path."""
    now = time.time()
    return [run_info(d, active=active, now=now)
            for d in find_run_dirs(root, max_depth=max_depth)]


def format_age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def format_runs(runs: list[RunInfo]) -> str:
    """An aligned table: status, kind, epochs, key metric, age, path, detail."""
    header = ("STATUS", "KIND", "EPOCHS", "METRIC", "AGE", "PATH", "DETAIL")
    rows = [header]
    for r in runs:
        metric = "-" if r.value is None else f"{r.metric}={r.value:.2f}"
        rows.append((r.status, r.kind, r.progress, metric, format_age(r.age), r.path, r.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in rows)


__all__ = ["RunInfo", "find_run_dirs", "format_runs", "list_runs", "run_info", "run_kind"]
