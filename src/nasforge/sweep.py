"""``nasforge sweep``: one nasforge command over a grid of config values × seeds, on Ray.

A sweep is a list of *steps* (nasforge commands, e.g. ``search`` then ``train --genotype
{prev}``), a *grid* (config keys, or options of the steps, each with a list of values) and
a number of seeds. Every grid point × seed is a *trial*: the steps run one after the other,
each as its own ``nasforge`` subprocess with ``--set KEY=VALUE`` for the grid values and
``run.seed``, in ``DIR/<trial>/<step>/`` (an ordinary run directory). Trials are Ray tasks,
so they spread over the local cores or a cluster (``--address``), with fractional GPUs.

A step is finished when its run directory holds its results file; a re-run of the same
sweep skips finished trials (and finished steps of unfinished ones) and continues a step
that was killed after its first checkpoint with ``--resume`` (docs/resume.md). A failed
trial keeps its ``trial.log`` and is a row with status ``failed`` and the last line it
printed.
``DIR/results.csv`` / ``results.json`` hold one row per trial (grid values, seed, status,
seconds, the numbers of every step's results file) and ``DIR/sweep.png`` plots a metric
against the first grid key, mean ± std over seeds.

Ray is imported only when trials run, so planning, ``--dry-run`` and ``import nasforge``
never need it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from nasforge.config import CONFIG_DIR, read_yaml_file
from nasforge.errors import NasforgeError
from nasforge.stages import sweepable_stages

SWEEP_CONFIG_DIR = CONFIG_DIR / "sweeps"

# Commands a sweep can run (the stage registry's sweepable stages): the file their run
# directory holds once they have finished.
SWEEPABLE: dict[tuple[str, ...], str] = {s.command: s.results for s in sweepable_stages()}
# Commands whose leftover run directory is continued with ``--resume RUN_DIR`` when it holds
# a checkpoint, else overwritten (``--force``); the others continue in an existing directory
# by themselves.
NEEDS_FORCE = {s.command for s in sweepable_stages() if s.resume_option}
# Options the sweep sets itself.
RESERVED_OPTIONS = {"--out": "the sweep gives every step its own run directory",
                    "--resume": "re-run the sweep to continue it",
                    "--force": "the sweep restarts unfinished steps by itself",
                    "--seed": "use --seeds N for run.seed = 0..N-1"}
PREFERRED_METRICS = ("test_acc", "val_acc", "acc", "mean_acc", "val_acc_random_path")
FIXED_COLUMNS = ("trial", "seed", "status", "seconds", "error")
STEP_SEPARATOR = "--then"
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Step:
    """One nasforge command of a trial; ``argv`` may hold ``{prev}`` (the previous run dir)."""

    argv: list[str]
    command: tuple[str, ...]
    name: str

    @property
    def results_file(self) -> str:
        return SWEEPABLE[self.command]


@dataclass
class SweepSpec:
    """What to run: the steps, the grid (key → value texts, in order) and the seeds."""

    steps: list[Step]
    grid: dict[str, list[str]] = field(default_factory=dict)
    seeds: int = 1
    gpus_per_trial: float = 0.0
    cpus_per_trial: float = 1.0
    metric: str | None = None


@dataclass
class Trial:
    """One grid point × seed: its name (= directory under the sweep) and resolved commands."""

    name: str
    point: dict[str, str]
    seed: int
    argvs: list[list[str]]


# --------------------------------------------------------------------------- parsing

def split_values(text: str) -> list[str]:
    """``1,2`` → ['1', '2']; commas inside [], {}, () or quotes do not split: ``[0],[-0.08]``."""
    out, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    out.append("".join(current).strip())
    return out


def _grid_key(key: str, where: str) -> str:
    key = key.strip()
    if key.startswith("--"):
        key = key[2:]
    if not key or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key):
        raise NasforgeError(f"{where}: grid key {key!r} must be a config key like search.epochs "
                            "or an option of the command like config")
    if key in ("run.seed", "seed"):
        raise NasforgeError(f"{where}: the seed is not a grid key; use --seeds N")
    if key in ("out", "resume", "force"):
        raise NasforgeError(f"{where}: --{key} cannot be swept")
    return key


def _add_grid_values(grid: dict[str, list[str]], key: str, values: list[str],
                     where: str) -> None:
    if not values or any(v == "" for v in values):
        raise NasforgeError(f"{where}: grid key {key} has an empty value")
    if len(set(values)) != len(values):
        raise NasforgeError(f"{where}: grid key {key} repeats a value: {', '.join(values)}")
    grid[key] = values


def parse_grid(texts: Sequence[str]) -> dict[str, list[str]]:
    """``['search.epochs=1,2', 'config=a,b']`` → ``{'search.epochs': ['1', '2'], ...}``."""
    grid: dict[str, list[str]] = {}
    for text in texts:
        if "=" not in text:
            raise NasforgeError(f"--grid {text!r} must look like key=value1,value2")
        key, raw = text.split("=", 1)
        key = _grid_key(key, f"--grid {text!r}")
        if key in grid:
            raise NasforgeError(f"--grid {key} is given twice; list all its values in one --grid")
        _add_grid_values(grid, key, split_values(raw), f"--grid {text!r}")
    return grid


def _value_text(value: Any) -> str:
    """A YAML grid value as the text of a --set override (lists in flow style)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def command_of(argv: Sequence[str], where: str = "sweep") -> tuple[str, ...]:
    """The sweepable command at the start of ``argv`` (``('snn', 'search')``)."""
    for command in SWEEPABLE:
        if tuple(argv[:len(command)]) == command:
            return command
    names = ", ".join(" ".join(c) for c in SWEEPABLE)
    given = " ".join(argv[:2]) if argv else "nothing"
    raise NasforgeError(f"{where}: COMMAND must be one of {names}; got {given!r}")


def make_steps(argvs: Sequence[Sequence[str]], where: str = "sweep") -> list[Step]:
    """Steps from command lines; each checked for a known command and no reserved option."""
    if not argvs or not any(argvs):
        raise NasforgeError(f"{where}: no COMMAND; e.g. `nasforge sweep search --dataset digits "
                            "--grid search.epochs=1,2 --out DIR`")
    steps: list[Step] = []
    for i, argv in enumerate(argvs):
        if not argv:
            raise NasforgeError(f"{where}: {STEP_SEPARATOR} must be followed by a COMMAND"
                                if i else f"{where}: COMMAND must come before {STEP_SEPARATOR}")
        command = command_of(argv, where)
        for token in argv:
            option = token.split("=", 1)[0]
            if option in RESERVED_OPTIONS:
                raise NasforgeError(f"{where}: {option} is set by the sweep "
                                    f"({RESERVED_OPTIONS[option]})")
            if token.startswith("run.seed=") or token.startswith("--set=run.seed="):
                raise NasforgeError(f"{where}: run.seed is set by the sweep; use --seeds N")
        if i == 0 and any("{prev}" in t for t in argv):
            raise NasforgeError(f"{where}: {{prev}} names the previous step's run directory; "
                                "the first step has none")
        name = "-".join(command)
        taken = {s.name for s in steps}
        if name in taken:
            name = f"{name}-{i + 1}"
        steps.append(Step(list(argv), command, name))
    return steps


def split_steps(argv: Sequence[str]) -> list[list[str]]:
    """``search ... --then train ...`` → one command line per step."""
    steps: list[list[str]] = [[]]
    for token in argv:
        if token == STEP_SEPARATOR:
            steps.append([])
        else:
            steps[-1].append(token)
    return steps


# --------------------------------------------------------------------------- sweep configs

def sweep_config_names() -> list[str]:
    return sorted(p.stem for p in SWEEP_CONFIG_DIR.glob("*.yaml"))


def sweep_config_lines() -> list[str]:
    """``nasforge sweep --list``: each shipped sweep config with its first comment line."""
    lines = []
    for name in sweep_config_names():
        text = resolve_sweep_config(name).read_text()
        lines.append(f"{name:24s} {text.splitlines()[0].lstrip('# ') if text else ''}")
    return lines


def resolve_sweep_config(name: str | Path) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    candidate = SWEEP_CONFIG_DIR / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    raise NasforgeError(f"sweep config {str(name)!r} is neither a file nor a shipped sweep "
                        f"config ({', '.join(sweep_config_names())})")


SWEEP_CONFIG_KEYS = {"steps", "grid", "seeds", "vars", "gpus_per_trial", "cpus_per_trial",
                     "metric"}


def read_sweep_config(name: str | Path) -> dict[str, Any]:
    """A sweep config file, checked: ``steps`` (command lines), ``grid``, ``seeds``, ..."""
    path = resolve_sweep_config(name)
    data = read_yaml_file(path) or {}  # refuses duplicate keys, alias bombs, binary files
    if not isinstance(data, dict):
        raise NasforgeError(f"{path} must hold a mapping (steps, grid, seeds, ...)")
    unknown = set(data) - SWEEP_CONFIG_KEYS
    if unknown:
        raise NasforgeError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: "
                            f"{', '.join(sorted(SWEEP_CONFIG_KEYS))}")
    steps = data.get("steps")
    if isinstance(steps, str):
        steps = [steps]
    if not isinstance(steps, list) or not steps:
        raise NasforgeError(f"{path}: steps must be a list of nasforge command lines")
    data["steps"] = [shlex.split(s) if isinstance(s, str) else [str(t) for t in s]
                     for s in steps]
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise NasforgeError(f"{path}: grid must map keys to lists of values")
    parsed: dict[str, list[str]] = {}
    for key, values in grid.items():
        where = f"{path}: grid"
        values = values if isinstance(values, list) else [values]
        _add_grid_values(parsed, _grid_key(str(key), where), [_value_text(v) for v in values],
                         where)
    data["grid"] = parsed
    data["vars"] = data.get("vars") or {}
    if not isinstance(data["vars"], dict):
        raise NasforgeError(f"{path}: vars must map names to descriptions")
    return data


def _fill_vars(argvs: list[list[str]], values: dict[str, str], described: dict[str, Any],
               where: str) -> list[list[str]]:
    def sub(match: re.Match) -> str:
        name = match.group(1)
        if name == "prev":
            return match.group(0)
        if name not in values:
            what = f" ({described[name]})" if name in described else ""
            raise NasforgeError(f"{where} needs --var {name}=VALUE{what}")
        return values[name]

    return [[PLACEHOLDER.sub(sub, token) for token in argv] for argv in argvs]


def parse_vars(texts: Sequence[str]) -> dict[str, str]:
    out = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", name) or not value:
            raise NasforgeError(f"--var {text!r} must look like name=value")
        out[name] = value
    return out


def make_spec(command: Sequence[str], *, grid: Sequence[str] = (), seeds: int | None = None,
              sweep_config: str | None = None, variables: Sequence[str] = (),
              gpus_per_trial: float | None = None, cpus_per_trial: float | None = None,
              metric: str | None = None) -> SweepSpec:
    """The sweep the command line asks for: a sweep config, COMMAND (``--then`` COMMAND ...),
    or a sweep config plus options appended to each of its steps; ``--grid`` adds keys to the
    config's grid or replaces their values, ``--seeds`` replaces its seeds."""
    values = parse_vars(variables)
    if sweep_config:
        data = read_sweep_config(sweep_config)
        extra = list(command)
        if extra and not extra[0].startswith("-"):
            raise NasforgeError(f"sweep: --sweep-config {sweep_config} already names the "
                                f"commands; got another COMMAND {extra[0]!r}")
        argvs = [[*argv, *extra] for argv in data["steps"]]
        argvs = _fill_vars(argvs, values, data["vars"], f"sweep config {sweep_config}")
        merged = dict(data["grid"])
        merged.update(parse_grid(grid))
        seeds = seeds if seeds is not None else data.get("seeds")
        gpus_per_trial = gpus_per_trial if gpus_per_trial is not None else data.get(
            "gpus_per_trial")
        cpus_per_trial = cpus_per_trial if cpus_per_trial is not None else data.get(
            "cpus_per_trial")
        metric = metric or data.get("metric")
    else:
        argvs = _fill_vars(split_steps(command), values, {}, "sweep")
        merged = parse_grid(grid)
    steps = make_steps(argvs)
    seeds = 1 if seeds is None else seeds
    gpus_per_trial = 0.0 if gpus_per_trial is None else gpus_per_trial
    cpus_per_trial = 1.0 if cpus_per_trial is None else cpus_per_trial
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise NasforgeError(f"sweep: --seeds must be at least 1; got {seeds}")
    for name, value in (("--gpus-per-trial", gpus_per_trial), ("--cpus-per-trial",
                                                               cpus_per_trial)):
        if not isinstance(value, int | float) or value < 0:
            raise NasforgeError(f"sweep: {name} must be a number >= 0; got {value!r}")
    if cpus_per_trial <= 0 and gpus_per_trial <= 0:
        raise NasforgeError("sweep: a trial needs some resource: --cpus-per-trial > 0")
    return SweepSpec(steps, merged, seeds, float(gpus_per_trial), float(cpus_per_trial), metric)


# --------------------------------------------------------------------------- planning

def _sanitise(text: str) -> str:
    text = re.sub(r"[\[\]{}()'\" ]", "", text).replace(",", "+")
    return re.sub(r"[^A-Za-z0-9._+=-]", "-", text) or "_"


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """``search.epochs`` → ``epochs`` unless another key ends the same way."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def trial_name(point: dict[str, str], seed: int, short: dict[str, str]) -> str:
    parts = [f"{short[k]}={_sanitise(v)}" for k, v in point.items()]
    return "_".join([*parts, f"seed={seed}"])


def _digest(point: dict[str, str], seed: int) -> str:
    return hashlib.sha1(json.dumps([point, seed]).encode()).hexdigest()[:8]


def command_options(command: tuple[str, ...]) -> frozenset[str]:
    """The option strings (``--algo``, ...) the CLI accepts for the stage command
    ``command``."""
    from nasforge.cli.stage_commands import command_options as options

    return options(command)


def step_argv(step: Step, trial_dir: Path, prev: Path | None, point: dict[str, str],
              seed: int) -> list[str]:
    """The full command line of one step of one trial. A grid key without a dot is an
    option (``--KEY VALUE``) of the steps whose command has it; dotted keys go to every
    step as ``--set``."""
    argv = [t.replace("{prev}", str(prev)) if prev is not None else t for t in step.argv]
    options: list[str] = []
    sets = ["run.progress=false"]
    for key, value in point.items():
        if "." in key:
            sets.append(f"{key}={value}")
        elif f"--{key}" in command_options(step.command):
            options += [f"--{key}", value]
    argv += options
    for text in [*sets, f"run.seed={seed}"]:  # after the user's own --set: the grid wins
        argv += ["--set", text]
    return [*argv, "--out", str(trial_dir / step.name)]


def plan(spec: SweepSpec, out: str | Path) -> list[Trial]:
    """Every grid point × seed in order: the first grid key varies slowest, seeds fastest."""
    out = Path(out).resolve()
    keys = list(spec.grid)
    for key in keys:
        if "." not in key and not any(f"--{key}" in command_options(step.command)
                                      for step in spec.steps):
            raise NasforgeError(
                f"grid key '{key}' is an option of none of the sweep's commands "
                f"({', '.join(' '.join(step.command) for step in spec.steps)}); use a config "
                "key with a dot, e.g. search.algo")
    short = _short_keys(keys)
    trials: list[Trial] = []
    for values in product(*(spec.grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        for seed in range(spec.seeds):
            name = trial_name(point, seed, short)
            if len(name) > 100:
                name = f"{name[:90]}-{_digest(point, seed)}"
            trials.append(Trial(name, point, seed, []))
    names = [t.name for t in trials]
    for trial in trials:
        if names.count(trial.name) > 1:  # values that differ only in dropped characters
            trial.name = f"{trial.name}-{_digest(trial.point, trial.seed)}"
    for trial in trials:
        prev = None
        for step in spec.steps:
            trial.argvs.append(step_argv(step, out / trial.name, prev, trial.point, trial.seed))
            prev = out / trial.name / step.name
    return trials


def validate(spec: SweepSpec, trials: Sequence[Trial]) -> None:
    """Parse every trial's commands with the real CLI and load their configs, so a typo in a
    grid key or value fails in one line before anything starts."""
    from nasforge.cli.stage_commands import stage_parser
    from nasforge.config import load_config

    parser = stage_parser()
    checked: set[tuple[str, ...]] = set()
    for trial in trials:
        for step, argv in zip(spec.steps, trial.argvs, strict=True):
            key = tuple(argv[:-2])  # the same command line apart from --out
            if key in checked:
                continue
            checked.add(key)
            where = f"sweep trial {trial.name}, step `{' '.join(step.command)}`"
            try:
                ns = parser.parse_args(argv)
                sets = [f"data.dataset={ns.dataset}"] if getattr(ns, "dataset", None) else []
                load_config(getattr(ns, "config", None), [*sets, *getattr(ns, "overrides", [])])
            except NasforgeError as exc:
                raise NasforgeError(f"{where}: {exc}") from None
            except SystemExit:
                raise NasforgeError(f"{where}: cannot parse `{shlex.join(argv)}`") from None


# --------------------------------------------------------------------------- one trial

def step_done(run_dir: Path, results_file: str) -> bool:
    return (run_dir / results_file).is_file()


def _last_line(path: Path, start: int) -> str:
    with path.open("rb") as fh:
        fh.seek(start)
        text = fh.read().decode(errors="replace")
    lines = [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]
    return lines[-1] if lines else ""


def _read_json_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (temporary file, fsync, rename) without importing torch
    (``nasforge.checkpoint`` does), so that a Ray worker stays small: it only starts
    subprocesses."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        fh.write(json.dumps(obj, indent=2))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def resumable(run_dir: Path) -> bool:
    """A killed run that ``--resume`` continues: its config and a checkpoint were saved."""
    return (run_dir / "config.yaml").is_file() and any(
        (run_dir / name).is_file() for name in ("checkpoint.pt", "checkpoint.pt.prev"))


def execute_trial(task: dict[str, Any]) -> dict[str, Any]:
    """Run one trial's steps as ``nasforge`` subprocesses (on a Ray worker or anywhere).

    ``task`` holds plain values: name, dir, cwd, steps (name, argv, results_file,
    needs_force), threads, gpus. Finished steps are skipped; the first failing step ends
    the trial. Writes ``trial.json`` and appends every step's output to ``trial.log``.
    """
    trial_dir = Path(task["dir"])
    trial_dir.mkdir(parents=True, exist_ok=True)
    log_path = trial_dir / "trial.log"
    earlier = {s["name"]: s for s in _read_json_file(trial_dir / "trial.json").get("steps", [])}
    env = dict(os.environ)
    threads = str(max(1, int(task["threads"])))
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    if not task["gpus"]:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a trial without a GPU share runs on the CPU
    cwd = task["cwd"] if Path(task["cwd"]).is_dir() else str(trial_dir)
    status, error, steps = "done", "", []
    for step in task["steps"]:
        run_dir = trial_dir / step["name"]
        if step_done(run_dir, step["results_file"]):
            seconds = earlier.get(step["name"], {}).get("seconds")
            steps.append({"name": step["name"], "status": "done", "seconds": seconds})
            continue
        argv = list(step["argv"])
        if step["needs_force"] and resumable(run_dir):  # killed mid-run: continue it
            argv = [*step["command"], "--resume", str(run_dir)]
        elif step["needs_force"] and run_dir.is_dir() and any(run_dir.iterdir()):
            argv.append("--force")  # killed before its first checkpoint: start it again
        with log_path.open("a") as log:
            log.write(f"$ nasforge {shlex.join(argv)}\n")
            log.flush()
            start = log.tell()
            t0 = time.perf_counter()
            try:
                rc = subprocess.run([sys.executable, "-m", "nasforge.cli", *argv], env=env,
                                    cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL).returncode
            except OSError as exc:
                rc = -1
                log.write(f"cannot start the step: {exc}\n")
            seconds = time.perf_counter() - t0
        ok = rc == 0 and step_done(run_dir, step["results_file"])
        steps.append({"name": step["name"], "status": "done" if ok else "failed",
                      "seconds": seconds, "returncode": rc})
        if not ok:
            last = _last_line(log_path, start)
            if rc == 0:
                last = f"exited without writing {step['results_file']}"
            elif rc < 0 and not last:
                last = f"killed by signal {-rc}"
            status, error = "failed", f"{step['name']}: {last or f'exit code {rc}'}"
            break
    times = [s["seconds"] for s in steps if s.get("seconds") is not None]
    record = {"name": task["name"], "status": status, "error": error,
              "seconds": sum(times) if times else None, "steps": steps}
    _write_json(trial_dir / "trial.json", record)
    return record


def _task(spec: SweepSpec, trial: Trial, out: Path) -> dict[str, Any]:
    return {"name": trial.name, "dir": str(out / trial.name), "cwd": os.getcwd(),
            "threads": spec.cpus_per_trial, "gpus": spec.gpus_per_trial,
            "steps": [{"name": s.name, "argv": argv, "results_file": s.results_file,
                       "needs_force": s.command in NEEDS_FORCE, "command": list(s.command)}
                      for s, argv in zip(spec.steps, trial.argvs, strict=True)]}


# --------------------------------------------------------------------------- results

def flatten_metrics(obj: Any, prefix: str = "") -> dict[str, float]:
    """Numbers of a results file, nested ones with dotted names (``cost.seconds``,
    ``searches.0.acc``); strings and booleans are left out."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(flatten_metrics(value, f"{prefix}{key}."))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out.update(flatten_metrics(value, f"{prefix}{i}."))
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        out[prefix[:-1]] = obj
    return out


def trial_metrics(spec: SweepSpec, trial_dir: Path) -> dict[str, float]:
    """Every step's numbers; with several steps (or a clash with a column) as ``step/name``."""
    metrics: dict[str, float] = {}
    reserved = {*FIXED_COLUMNS, *spec.grid}
    for step in spec.steps:
        path = trial_dir / step.name / step.results_file
        if not path.is_file():
            continue
        for name, value in flatten_metrics(_read_json_file(path)).items():
            if len(spec.steps) > 1 or name in reserved:
                name = f"{step.name}/{name}"
            metrics[name] = value
    return metrics


def pick_metric(spec: SweepSpec, rows: Sequence[dict[str, Any]]) -> str | None:
    """The metric to plot: ``spec.metric``, else the last step's test_acc, val_acc, ..."""
    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    numeric = [n for n in names if n not in (*FIXED_COLUMNS, *spec.grid)]
    if spec.metric:
        if spec.metric in numeric or not rows:
            return spec.metric
        print(f"nasforge: warning: --metric {spec.metric} is not among the trials' metrics "
              f"({', '.join(numeric) or 'none'}); plotting the default", file=sys.stderr)
    prefixes = [f"{s.name}/" for s in reversed(spec.steps)] if len(spec.steps) > 1 else [""]
    for prefix in prefixes:
        for leaf in PREFERRED_METRICS:
            for name in numeric:
                if name.startswith(prefix) and (name[len(prefix):] == leaf
                                                or name.endswith(f".{leaf}")):
                    return name
    rest = [n for n in numeric if not n.endswith("seconds")]
    return rest[0] if rest else None


def write_results(spec: SweepSpec, rows: Sequence[dict[str, Any]], out: Path,
                  summary: dict[str, Any]) -> None:
    """``results.csv`` (one row per trial) and ``results.json``, both rewritten atomically."""
    from nasforge.checkpoint import atomic_write_json, atomic_write_text

    fields = ["trial", *spec.grid, "seed", "status", "seconds", "error"]
    for row in rows:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in fields})
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_json(out / "results.json", {**summary, "trials": list(rows)})


def _row(spec: SweepSpec, trial: Trial, record: dict[str, Any], out: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"trial": trial.name, **trial.point, "seed": trial.seed,
                           "status": record.get("status", "failed"),
                           "seconds": record.get("seconds"), "error": record.get("error", "")}
    if isinstance(row["seconds"], float):
        row["seconds"] = round(row["seconds"], 2)
    row.update(trial_metrics(spec, out / trial.name))
    return row


def _record_of_finished(trial_dir: Path) -> dict[str, Any]:
    record = _read_json_file(trial_dir / "trial.json")
    return {"status": "done", "error": "", "seconds": record.get("seconds")}


def _spec_json(spec: SweepSpec) -> dict[str, Any]:
    return {"steps": [s.argv for s in spec.steps], "grid": spec.grid, "seeds": spec.seeds,
            "gpus_per_trial": spec.gpus_per_trial, "cpus_per_trial": spec.cpus_per_trial}


def _trial_settings(trial: Trial) -> dict[str, Any]:
    return {"point": trial.point, "seed": trial.seed}


def _check_same_sweep(spec: SweepSpec, out: Path, trials: Sequence[Trial] = ()) -> None:
    """A re-run reuses the finished trials in ``out``: refuse one whose commands differ, or
    whose trial of the same name stands for other grid values (a grid key renamed to one with
    the same short name, e.g. search.epochs → train.epochs). Adding grid values or seeds
    keeps the finished trials."""
    saved = _read_json_file(out / "sweep.json")
    if saved and saved.get("steps") != [s.argv for s in spec.steps]:
        before = " --then ".join(shlex.join(a) for a in saved.get("steps", []))
        raise NasforgeError(f"{out} holds a sweep of `{before}`; its finished trials would not "
                            "match this command: give another --out")
    points = saved.get("points") if saved else None
    if not isinstance(points, dict):
        return
    for trial in trials:
        old = points.get(trial.name)
        if old is not None and old != _trial_settings(trial):
            raise NasforgeError(
                f"{out} holds trial {trial.name} of other grid values ({old.get('point')}, "
                f"seed {old.get('seed')}, now {trial.point}, seed {trial.seed}); its results "
                "would be reused under the new values: give another --out")


def _merged_points(out: Path, trials: Sequence[Trial]) -> dict[str, Any]:
    """The grid values of every trial this folder has held (earlier calls' too), by name."""
    saved = _read_json_file(out / "sweep.json").get("points")
    points = dict(saved) if isinstance(saved, dict) else {}
    points.update({t.name: _trial_settings(t) for t in trials})
    return points


# --------------------------------------------------------------------------- Ray

def _import_ray():
    try:
        import ray
    except ImportError:
        raise NasforgeError("`nasforge sweep` needs Ray: pip install 'nasforge[sweep]'") from None
    return ray


def _local_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def start_ray(address: str | None) -> bool:
    """Connect to ``address`` or start a local Ray; False if Ray was already running here."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=_local_cpus(), include_dashboard=False,
                     object_store_memory=200 * 2**20, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise NasforgeError(f"cannot start {where}: {exc}") from None
    return True


def _check_resources(spec: SweepSpec, address: str | None) -> None:
    ray = _import_ray()
    have = ray.cluster_resources()
    for name, need, option in (("CPU", spec.cpus_per_trial, "--cpus-per-trial"),
                               ("GPU", spec.gpus_per_trial, "--gpus-per-trial")):
        if need > have.get(name, 0.0):
            message = (f"sweep: {option} {need:g} but the Ray cluster has "
                       f"{have.get(name, 0.0):g} {name}s")
            if address is None:
                raise NasforgeError(message)
            print(f"nasforge: warning: {message} now; trials wait for the autoscaler",
                  file=sys.stderr)
    if have.get("GPU", 0.0) and not spec.gpus_per_trial:
        print(f"nasforge: note: Ray sees {have['GPU']:g} GPUs but --gpus-per-trial is 0: "
              "trials run on the CPU", file=sys.stderr)


def run_trials(spec: SweepSpec, trials: Sequence[Trial], out: Path, *, address: str | None,
               progress: bool, on_result: Callable[[Trial, dict[str, Any]], None]) -> None:
    """Run ``trials`` as Ray tasks; ``on_result`` sees each trial's record as it ends."""
    from tqdm import tqdm

    ray = _import_ray()
    started = start_ray(address)
    try:
        _check_resources(spec, address)
        remote = ray.remote(execute_trial).options(
            num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial, max_retries=0)
        pending = {remote.remote(_task(spec, t, out)): t for t in trials}
        failed = 0
        with tqdm(total=len(trials), unit="trial", desc="sweep", disable=not progress,
                  dynamic_ncols=True) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                trial = pending.pop(ready[0])
                try:
                    record = ray.get(ready[0])
                except ray.exceptions.RayError as exc:  # the worker itself died
                    lines = [line for line in str(exc).splitlines() if line.strip()]
                    record = {"status": "failed", "seconds": None,
                              "error": f"ray: {lines[-1] if lines else type(exc).__name__}"}
                failed += record["status"] != "done"
                on_result(trial, record)
                bar.set_postfix(failed=failed)
                bar.update(1)
    finally:
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------- the sweep

def describe_plan(spec: SweepSpec, trials: Sequence[Trial], out: str | Path) -> str:
    """One line per trial and its commands (``--dry-run``)."""
    out = Path(out)
    def count(n: int, what: str) -> str:
        return f"{n} {what}{'s' * (n != 1)}"

    lines = [f"{count(len(trials), 'trial')} ({count(len(trials) // spec.seeds, 'grid point')} "
             f"x {count(spec.seeds, 'seed')}), {spec.cpus_per_trial:g} CPU and "
             f"{spec.gpus_per_trial:g} GPU each:"]
    for trial in trials:
        done = all(step_done(out / trial.name / s.name, s.results_file) for s in spec.steps)
        lines.append(f"{trial.name}{'  (finished)' if done else ''}")
        for argv in trial.argvs:
            lines.append(f"    nasforge {shlex.join(argv)}")
    return "\n".join(lines)


def run_sweep(spec: SweepSpec, out: str | Path, *, address: str | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Run every unfinished trial of ``spec`` into ``out``; returns the summary that
    ``results.json`` holds (counts, the plotted metric, one row per trial)."""
    from nasforge.analysis.sweep_plot import plot_sweep
    from nasforge.checkpoint import atomic_write_json

    out = Path(out).resolve()
    trials = plan(spec, out)
    validate(spec, trials)
    if out.exists() and not out.is_dir():
        raise NasforgeError(f"--out {out} is a file, not a directory")
    _check_same_sweep(spec, out, trials)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sweep.json", {**_spec_json(spec),
                                           "trials": [t.name for t in trials],
                                           "points": _merged_points(out, trials)})
    finished = [t for t in trials
                if all(step_done(out / t.name / s.name, s.results_file) for s in spec.steps)]
    todo = [t for t in trials if t not in finished]
    t0 = time.perf_counter()
    rows: dict[str, dict[str, Any]] = {t.name: _row(spec, t, _record_of_finished(out / t.name),
                                                    out) for t in finished}
    summary = {**_spec_json(spec), "out": str(out), "trials_total": len(trials),
               "skipped": len(finished), "ran": len(todo)}

    def ordered() -> list[dict[str, Any]]:
        return [rows[t.name] for t in trials if t.name in rows]

    def on_result(trial: Trial, record: dict[str, Any]) -> None:
        rows[trial.name] = _row(spec, trial, record, out)
        write_results(spec, ordered(), out, summary)

    if todo:
        run_trials(spec, todo, out, address=address, progress=progress, on_result=on_result)
    all_rows = ordered()
    metric = pick_metric(spec, all_rows)
    failed = [r for r in all_rows if r["status"] != "done"]
    summary.update(failed=len(failed), metric=metric, seconds=time.perf_counter() - t0)
    plot = None
    if metric is not None:
        plot = plot_sweep(all_rows, list(spec.grid), metric, out / "sweep.png",
                          title=" --then ".join(" ".join(s.command) for s in spec.steps))
    summary["plot"] = str(plot) if plot else None
    write_results(spec, all_rows, out, summary)
    return {**summary, "trials": all_rows}
