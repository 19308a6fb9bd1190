"""What every long-running stage shares: device, seeding, mixed precision, run directories
and logs."""

from __future__ import annotations

import contextlib
import csv
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasforge.checkpoint import atomic_write_json, save_checkpoint
from nasforge.config import Config, config_to_dict, load_config, read_config, save_config
from nasforge.errors import NasforgeError, NumericalError
from nasforge.outputs import check_new_dir, create_run_dir, record
from nasforge.stages import resume_learning_rates


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when present, else CPU; an unavailable device is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise NasforgeError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NasforgeError(f"device '{name}' requested but CUDA is not available; use cpu")
    return device


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device).

    ``deterministic`` (``run.deterministic``) also asks CUDA for reproducible kernels:
    ``torch.use_deterministic_algorithms(True, warn_only=True)`` (an op without a
    deterministic CUDA kernel warns instead of failing), ``cudnn.deterministic = True``,
    ``cudnn.benchmark = False`` and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless already set.
    CPU runs are bitwise reproducible without it (docs/resume.md).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before cuBLAS starts
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every global random stream a loop may draw from (dropout, drop-path, noise ops,
    SDARTS perturbations): torch's CPU stream, the CUDA device's, Python's and NumPy's.
    Batches and the strategies' samples use private generators fixed by (seed, epoch/draw)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                             "numpy": np.random.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any] | torch.Tensor, device: torch.device) -> None:
    """Restore :func:`rng_state` (older checkpoints hold only torch's CPU state)."""
    if isinstance(state, torch.Tensor):
        torch.set_rng_state(state)
        return
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def compile_module(module: torch.nn.Module, mode: str) -> torch.nn.Module:
    """``torch.compile`` ``module`` in place (``run.compile``; ``off`` leaves it eager).

    In place (``nn.Module.compile``), so state-dict keys and checkpoints do not change."""
    if mode != "off":
        module.compile(mode=mode)
    return module


def use_channels_last(enabled: bool, device: torch.device) -> bool:
    """Whether a run keeps images and conv weights in channels_last (``run.channels_last``).

    On CUDA and, since the torch 2.13 backward crash of the 1×1 stride-2 convolution is worked
    around in ``FactorizedReduce`` (bench/channels_last_crash.py), on CPU too, where the DARTS
    search step is 1.55–1.67× faster than NCHW (bench/README.md).
    """
    return enabled and device.type in ("cpu", "cuda")


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """Autocast dtype for ``amp`` on ``device``; CPU runs in float32."""
    if device.type != "cuda" or amp == "fp32":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class LossWatch:
    """Where the loss first stopped being finite, kept on the device.

    ``update`` costs two tiny device ops per step and no host sync; :func:`check_finite`
    reads it once per epoch, together with the epoch's accumulated loss.
    """

    def __init__(self, device: torch.device) -> None:
        self.finite_steps = torch.zeros((), dtype=torch.int64, device=device)
        self._finite = torch.ones((), dtype=torch.bool, device=device)

    def update(self, loss: torch.Tensor) -> None:
        self._finite &= torch.isfinite(loss.detach()).all()
        self.finite_steps += self._finite


def lower_lr_hint(command: str, key: str, lr: float) -> str:
    """``command --set KEY=lr/10``: the way on that a NaN message suggests."""
    return f"{command} --set {key}={lr / 10:g}"


def weights_finite(*modules: torch.nn.Module | None) -> bool:
    """Whether every floating-point parameter of ``modules`` is finite (one host sync)."""
    flags = [torch.isfinite(p.detach()).all() for m in modules if m is not None
             for p in m.parameters() if p.is_floating_point()]
    return bool(torch.stack([f.to(flags[0].device) for f in flags]).all()) if flags else True


def check_finite(loss: torch.Tensor | float, *, epoch: int, run: str | Path,
                 checkpoint: Path, resume: str, watch: LossWatch | None = None,
                 what: str = "loss", module: torch.nn.Module | None = None) -> None:
    """Stop a run whose epoch loss is NaN/inf, or whose ``module`` holds a NaN/inf weight
    after the epoch (a spiking network's loss can stay finite when its weights are not),
    with one line naming the epoch, the step (from ``watch``), the last good checkpoint and
    the ``resume`` command (a lower learning rate).

    Called once per epoch on the accumulated loss before anything of the epoch is written,
    so the checkpoint stays the last good one; it costs one host sync per epoch (two with
    ``module``).
    """
    if math.isfinite(float(loss)):
        if module is None or weights_finite(module):
            return
        what, watch = "weights", None
    step = "" if watch is None else f" step {int(watch.finite_steps)}"
    if checkpoint.exists() and epoch > 0:
        last = f"last good checkpoint: {checkpoint} (epoch {epoch - 1})"
        raise NumericalError(f"non-finite {what} at epoch {epoch}{step} of {run}; {last}; "
                             f"resume with a lower learning rate: {resume}")
    # nothing to resume: the command line removes the unstarted run (nasforge.outputs)
    lower = resume[resume.index("--set"):] if "--set" in resume else "a lower learning rate"
    raise NumericalError(f"non-finite {what} at epoch {epoch}{step} of {run}; no checkpoint "
                         f"yet (the first epoch failed); start it again with {lower}")


RESUME_OVERRIDES = (*resume_learning_rates(), "data.root", "run.device", "run.progress",
                    "run.amp", "run.compile", "run.deterministic")
"""What ``--resume RUN --set KEY=VALUE`` may change: every stage's learning rates (the stage
registry, :mod:`nasforge.stages`) and how the run executes; other keys must keep their saved
value."""


def resume_config(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = (),
                  *, config_dir: str | Path | None = None) -> Config:
    """The saved config of ``run_dir`` (its ``config.yaml``, or ``config_dir``'s) with the
    ``--set`` overrides a resumed run accepts (:data:`RESUME_OVERRIDES`: learning rates and
    how the run executes). An override that changes anything else is refused; one that
    repeats the saved value is accepted. Changes are written back to ``config.yaml``."""
    where = Path(config_dir if config_dir is not None else run_dir)
    cfg = load_run_config(where)
    if not overrides:
        return cfg
    before = config_to_dict(cfg)
    new = load_config(None, list(overrides), **before)
    after = config_to_dict(new)
    changed = [f"{sec}.{key}" for sec, values in after.items()
               for key, value in values.items() if before[sec][key] != value]
    refused = [key for key in changed if key not in RESUME_OVERRIDES]
    if refused:
        raise NasforgeError(
            f"--resume continues {run_dir} with its saved config; --set cannot change "
            f"{', '.join(refused)} there (allowed: {', '.join(RESUME_OVERRIDES)}); start a "
            "new run to change it")
    if changed and os.environ.get("RANK", "0") == "0":  # data-parallel: rank 0 writes
        save_config(new, where / "config.yaml")
    return new


def _fixed_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``key old -> new`` for the keys a resume cannot change (not in RESUME_OVERRIDES)."""
    from nasforge.rerun import setting_differences

    return setting_differences(before, after, RESUME_OVERRIDES, run_options=())


def check_resume_options(run_dir: str | Path,
                         options: list[tuple[str, list[str]]] | tuple = (), *,
                         config: str | None = None,
                         config_overrides: list[str] | tuple[str, ...] = (),
                         config_dir: str | Path | None = None,
                         also: list[str] | tuple[str, ...] = ()) -> None:
    """Refuse the command-line options a ``--resume`` cannot honour, in one line naming them.

    ``options`` pairs an option (``--algo``) with the ``--set`` overrides it stands for; it
    is refused when they change a saved setting outside :data:`RESUME_OVERRIDES` (repeating
    the saved value is fine). ``config`` (``--config``, with ``config_overrides``) is refused
    when the config it resolves to differs from the saved one there. ``also`` lists
    refusals the caller found itself (``--out``, ``--force``, ...)."""
    refused = list(also)
    if options or config is not None:
        before = config_to_dict(load_run_config(config_dir if config_dir is not None
                                                else run_dir))
        for option, overrides in options:
            after = config_to_dict(load_config(None, list(overrides), **before))
            changes = _fixed_changes(before, after)
            if changes:
                refused.append(f"{option} ({'; '.join(changes)})")
        if config is not None:
            changes = _fixed_changes(before, config_to_dict(
                load_config(config, list(config_overrides))))
            if changes:
                more = f"; and {len(changes) - 3} more" if len(changes) > 3 else ""
                refused.append(f"--config {config} ({'; '.join(changes[:3])}{more})")
    if refused:
        raise NasforgeError(
            f"--resume continues {run_dir} with its saved settings and cannot honour "
            f"{', '.join(refused)}; drop {'it' if len(refused) == 1 else 'them'}, or start a "
            "new run with another --out to change them")


def prepare_run_dir(out: str | Path, cfg: Config, *, force: bool = False) -> Path:
    """Create a fresh run directory holding the resolved config.

    An existing non-empty ``out`` is refused, or with ``force`` cleared of what nasforge
    wrote there (never anything else: :mod:`nasforge.outputs`); files the config reads
    (``data.proxy``, ``proxy.entropy``, ...) must not lie inside it.
    """
    out = check_new_dir(out, force=force, inputs=config_paths(cfg),
                        hint=f"pass --resume {out} to continue it, or ")
    try:
        create_run_dir(out)
        save_config(cfg, out / "config.yaml")
    except OSError as exc:
        raise NasforgeError(f"cannot write run directory {out}: {exc.strerror}") from exc
    return out


def config_paths(cfg: Config) -> list[Path]:
    """Every existing file or folder a config names (the inputs a run reads)."""
    found: list[Path] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif isinstance(value, str) and value and len(value) < 4096:
            try:
                if ("/" in value or "." in value) and Path(value).exists():
                    found.append(Path(value))
            except (OSError, ValueError):
                pass

    walk(config_to_dict(cfg))
    return found


def load_run_config(run_dir: str | Path) -> Config:
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise NasforgeError(f"{run_dir} is not a nasforge run directory (no config.yaml)")
    return read_config(path)


class CsvLog:
    """Append-only CSV of per-epoch metrics; rows past a resumed epoch are dropped.

    ``tensorboard=True`` also mirrors every row into TensorBoard event files in
    ``tb/<log name>/`` next to the CSV (:mod:`nasforge.tb`; skipped without tensorboard).
    """

    def __init__(self, path: str | Path, *, resume_after: int | None = None,
                 tensorboard: bool = False) -> None:
        self.path = Path(path)
        self.tb = None
        if resume_after is not None and self.path.exists():
            rows = [r for r in self.read() if _row_epoch(r) <= resume_after]
            self.path.unlink()
            for row in rows:
                self.write(row)
        elif self.path.exists():
            self.path.unlink()
        if tensorboard:
            from nasforge.tb import TensorBoardMirror

            self.tb = TensorBoardMirror(self.path.parent / "tb" / self.path.stem,
                                        resume_after=resume_after)

    def write(self, row: dict[str, Any]) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        if new:
            record(self.path)
        if self.tb is not None:
            self.tb.write(row)

    def read(self) -> list[dict[str, str]]:
        return read_csv(self.path)


def _row_epoch(row: dict[str, str | None]) -> float:
    """A row's epoch; infinity (so a resume drops it) for a row cut short by a kill."""
    if None in row.values() or None in row:
        return math.inf
    try:
        return int(row["epoch"])
    except (KeyError, TypeError, ValueError):
        return math.inf


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV log as dicts; an absent log has no rows."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def write_results(run_dir: Path, results: dict) -> Path:
    return atomic_write_json(run_dir / "results.json", results)


def record_epoch(log: CsvLog, row: dict[str, Any], state: dict[str, Any], checkpoint: Path,
                 append: tuple[Path, str] | None = None) -> None:
    """The end of an epoch on disk: the log row, an optional line appended to a file (the
    search's strengths history), then the checkpoint. Data-parallel loops run it through
    ``Dist.main_only``, so a failure on rank 0 stops every rank instead of leaving them
    waiting in the next collective."""
    log.write(row)
    if append is not None:
        with append[0].open("a") as fh:
            fh.write(append[1])
        record(append[0])
    save_checkpoint(state, checkpoint)
