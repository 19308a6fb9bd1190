"""Spike-aware search on a trained super-network (thesis §5.3.2; ``nasforge snn search``).

An architecture is scored once, on the whole validation split the super-network run held
out, with the super-network's weights: accuracy and spikes per image. Scores live in
``evaluations.json`` so every λ (in this call or a later one in the same directory) reuses
them; only the fitness changes with λ, so a new λ costs seconds, not a retraining.
With ``snn.bn_recalibrate_batches=N`` each architecture's BatchNorm statistics are first
recomputed on N batches of the super-network's training split (and restored afterwards).
Every score also measures the path's energy per image (``snn.energy_profile``,
:mod:`nasforge.snn.energy`), which ``snn.energy_lam`` and ``snn.max_energy`` use; with
``snn.warm_start=M`` round 1 keeps the pool best of M random paths by a zero-cost proxy
(``snn.warm_proxy``) computed on untrained networks of the super-network's shape.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from nasforge.checkpoint import atomic_write_json, atomic_write_text, kill_point
from nasforge.config import (
    Config,
    _read_yaml,
    config_to_dict,
    load_config,
    read_config,
    resolve_config_path,
    save_config,
)
from nasforge.data import read_index_file
from nasforge.errors import NasforgeError
from nasforge.outputs import check_new_dir, create_run_dir, is_run_dir
from nasforge.rerun import other_settings_error, setting_differences
from nasforge.runtime import amp_dtype, load_run_config, pick_device, write_results
from nasforge.snn.data import load_snn_data, snn_batches
from nasforge.snn.energy import PROFILES, energy_summary
from nasforge.snn.epoch import evaluate_rates
from nasforge.snn.evolution import (
    Arch,
    Proxy,
    Scores,
    arch_from_text,
    arch_to_text,
    check_energy_options,
    check_lam,
    evolutionary_search,
    random_search,
)
from nasforge.snn.supernet import load_supernet, recalibrated_bn, recalibration_batches

EVALUATIONS = "evaluations.json"
SEARCH_FILE = "search.json"  # the super-network a search directory belongs to (for --resume)


def lam_dir(out: Path, lam: float) -> Path:
    return out / f"lam{lam:+g}"


def _read_cache(path: Path, supernet: str, scoring: dict[str, Any] | None = None
                ) -> dict[Arch, Scores]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise NasforgeError(f"cannot read {path}: {err}; delete it to re-evaluate") from err
    if data.get("supernet") != supernet:
        raise NasforgeError(f"{path} holds scores of another super-network "
                            f"({data.get('supernet')}); use a new --out")
    if data.get("scoring", {}) != (scoring or {}):
        raise NasforgeError(f"{path} holds scores made with other scoring settings "
                            f"({data.get('scoring', {})}, now {scoring or {}}); use a new --out")
    return _scores(data)


def _scores(data: dict) -> dict[Arch, Scores]:
    """The architectures' scores of an ``evaluations.json`` document."""
    return {arch_from_text(a): tuple(v) for a, v in data["scores"].items()}


def _write_cache(path: Path, supernet: str, cache: dict[Arch, Scores],
                 scoring: dict[str, Any] | None = None) -> None:
    atomic_write_json(path, {"supernet": supernet, "scoring": scoring or {}, "scores": {
        arch_to_text(a): list(v) for a, v in cache.items()}})


def search_config(supernet_dir: str | Path, overrides: list[str] | tuple[str, ...] = (),
                  config: str | Path | None = None) -> Config:
    """The super-network run's config ← ``config``'s ``snn``/``run`` keys ← ``overrides``.

    The network itself always comes from the checkpoint; a config file here carries the
    search settings (λ values, algorithm, budget) of an experiment.
    """
    sections = config_to_dict(load_run_config(supernet_dir))
    if config is not None:
        raw = _read_yaml(resolve_config_path(config))
        for name in ("snn", "run"):
            sections[name].update(raw.get(name) or {})  # validated by load_config below
    return load_config(None, overrides, **sections)


def run_snn_search(supernet_dir: str | Path, out: str | Path,
                   overrides: list[str] | tuple[str, ...] = (), *, force: bool = False,
                   config: str | Path | None = None, cfg: Config | None = None) -> dict:
    """Search every λ of ``snn.lams`` on the super-network in ``supernet_dir``.

    Re-running into the same ``out`` resumes: finished rounds replay from their state
    files and scored architectures come from ``evaluations.json`` (and
    :func:`resume_snn_search` does the same from ``out`` alone). ``cfg``, when given, is the
    resolved config to use instead of the super-network's ← ``config`` ← ``overrides``.
    """
    supernet_dir, out = Path(supernet_dir), Path(out)
    if cfg is None:
        cfg = search_config(supernet_dir, overrides, config)
    s = cfg.snn
    for lam in s.lams:
        check_lam(lam)
    check_energy_options(s.energy_lam, s.max_energy)
    profile = PROFILES.get(s.energy_profile)
    if s.warm_start:
        from nasforge.zc.proxies import PROXIES

        PROXIES.get(s.warm_proxy)
        if s.search_algo != "evolution":
            raise NasforgeError("snn.warm_start seeds the evolution's first round; the "
                                f"{s.search_algo} search takes none")
        if s.warm_start <= s.pool:
            raise NasforgeError(f"snn.warm_start ({s.warm_start}) must exceed snn.pool "
                                f"({s.pool}): it draws that many paths and keeps the pool best")
    device = pick_device(cfg.run.device)
    dtype = amp_dtype(device, cfg.run.amp)
    model, meta = load_supernet(supernet_dir, device)
    spec = meta["spec"]
    blocks = tuple(spec["candidates"])
    if not set(s.blocks) <= set(blocks):
        raise NasforgeError(f"snn.blocks {s.blocks} are not all in the super-network's "
                            f"candidates {list(blocks)}")
    if spec["neuron"] == "relu":
        n_avg = 1.0  # a DNN emits no spikes: only lam = 0 makes sense (§5.5.2)
        if any(lam != 0 for lam in s.lams):
            raise NasforgeError("a ReLU (DNN) super-network has no spikes: search it with "
                                "--lam 0")
    else:
        n_avg = float(meta["n_avg"])
    data = load_snn_data(cfg.data.dataset, cfg.data.root, timesteps=spec["timesteps"],
                         upscale=cfg.data.upscale)
    val_idx = read_index_file(supernet_dir / "val.txt", len(data.train))
    if not force:
        _check_same_search(out, cfg, supernet_dir)
    kept = _cache_kept_by_force(out, cfg) if force else None
    # Only now, with the super-network, λ values and data checked, is ``out`` written.
    if out.is_dir() and any(out.iterdir()) and (force or not (out / SEARCH_FILE).is_file()):
        # a search continues in its own directory; anything else is cleared (--force, only
        # what nasforge wrote) or refused
        check_new_dir(out, force=force, inputs=[supernet_dir], what="search directory",
                      hint="give a new --out, or ")
    if not is_run_dir(out):
        create_run_dir(out)
    save_config(cfg, out / "config.yaml")
    atomic_write_json(out / SEARCH_FILE, {"supernet": str(supernet_dir.resolve())})
    val = snn_batches(data, data.train, s.eval_batch_size, device=device, indices=val_idx,
                      shuffle=False)
    convention = meta["convention"]
    recalibrate = recalibration_batches(
        data, read_index_file(supernet_dir / "train.txt", len(data.train)), s.batch_size,
        s.bn_recalibrate_batches, cfg.run.seed, device)
    # Scores depend on these settings; a cache made with others is refused.
    scoring = ({"bn_recalibrate_batches": s.bn_recalibrate_batches, "batch_size": s.batch_size,
                "seed": cfg.run.seed} if recalibrate else {})

    def evaluate(arch: Arch) -> Scores:
        kill_point("snn-evaluate")  # test hook: NASFORGE_TEST_KILL_AT (checkpoint.py)
        return score_path(model, list(arch), val, recalibrate, loss_kind=s.loss, dtype=dtype,
                          count=None if spec["neuron"] == "relu" else convention,
                          timesteps=spec["timesteps"], profile=profile.name)

    cache_path = out / EVALUATIONS
    cache = _read_cache(cache_path, str(supernet_dir.resolve()), scoring)
    if kept is not None and kept.get("supernet") == str(supernet_dir.resolve()) and \
            kept.get("scoring", {}) == scoring:
        cache.update(_scores(kept))
    length = model.num_tbd
    proxy = warm_proxy(cfg, spec, data, supernet_dir, device) if s.warm_start else None
    t0 = time.perf_counter()
    summary: list[dict[str, Any]] = []
    for lam in s.lams:
        folder = lam_dir(out, lam)
        folder.mkdir(exist_ok=True)
        common = dict(blocks=s.blocks, length=length, lam=lam, n_avg=n_avg, seed=cfg.run.seed,
                      top_k=s.top_k, progress=cfg.run.progress, cache=cache,
                      energy_lam=s.energy_lam, max_energy=s.max_energy)
        try:
            if s.search_algo == "random":
                result = random_search(evaluate, budget=s.budget, **common)
            else:
                warm = dict(warm_start=s.warm_start, proxy_name=s.warm_proxy,
                            proxy=proxy) if s.warm_start else {}
                result = evolutionary_search(
                    evaluate, rounds=s.rounds, pool=s.pool, mutations=s.mutations,
                    crossovers=s.crossovers, mutation_prob=s.mutation_prob,
                    state_path=folder / "state.json", **common, **warm)
        finally:
            _write_cache(cache_path, str(supernet_dir.resolve()), cache, scoring)
        atomic_write_json(folder / "result.json", result.to_json())
        result.write_history_csv(folder / "history.csv")
        atomic_write_text(folder / "arch.txt", arch_to_text(result.best) + "\n")
        best = result.best_row
        row = {"lam": lam, "arch": arch_to_text(best.arch), "acc": best.acc,
               "spikes": best.spikes, "fitness": best.fitness,
               "evaluate_calls": result.evaluate_calls, "dir": folder.name}
        if best.energy is not None:
            row["energy"] = best.energy
        if s.max_energy is not None:
            row["over_budget"] = len(result.over_budget)
        summary.append(row)
    summary = _merge_earlier(out, summary, s.search_algo)
    results = {"stage": "snn-search", "supernet": str(supernet_dir), "algo": s.search_algo,
               "n_avg": n_avg, "convention": convention, "supernet_finished": meta["finished"],
               "energy_profile": profile.name, "energy_lam": s.energy_lam,
               "max_energy": s.max_energy,
               "searches": summary, "architectures_scored": len(cache),
               "seconds": time.perf_counter() - t0}
    write_results(out, results)
    return results


SEARCH_ONLY = ("snn.lams", "snn.search_algo", "snn.rounds", "snn.pool", "snn.top_k",
               "snn.mutations", "snn.crossovers", "snn.mutation_prob", "snn.budget",
               "snn.energy_lam", "snn.max_energy", "snn.warm_start", "snn.warm_proxy",
               "snn.blocks")
"""Settings that steer the search but not an architecture's scores."""


def _cache_kept_by_force(out: Path, cfg: Config) -> dict | None:
    """The scores a ``--force`` re-run may keep: those of an earlier search in ``out`` whose
    settings differ only in :data:`SEARCH_ONLY` (e.g. a search that found nothing under
    ``--max-energy`` and is re-run with a larger budget). Scoring is deterministic given the
    other settings, so re-evaluating them would only cost time. ``None`` when nothing can
    be kept; the caller still checks the super-network and the scoring settings."""
    try:
        saved = config_to_dict(read_config(out / "config.yaml"))
    except (OSError, ValueError, NasforgeError):
        return None
    if setting_differences(saved, config_to_dict(cfg), SEARCH_ONLY):
        return None
    try:
        data = json.loads((out / EVALUATIONS).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("scores"), dict) else None


def _check_same_search(out: Path, cfg: Config, supernet_dir: Path) -> None:
    """A search folder accumulates λ across calls: refuse a call whose other settings (or
    super-network) differ from the saved ones, whose rows it would mix with its own."""
    path = out / "config.yaml"
    if not path.is_file():
        return
    try:
        saved = config_to_dict(read_config(path))
    except (OSError, ValueError, NasforgeError):
        raise NasforgeError(f"{path} is unreadable; use a new --out, or --force to start "
                            "the search again") from None
    diffs = setting_differences(saved, config_to_dict(cfg), ("snn.lams",))
    try:
        before = json.loads((out / SEARCH_FILE).read_text())["supernet"]
    except (OSError, ValueError, KeyError, TypeError):
        before = None
    if before is not None and before != str(supernet_dir.resolve()):
        diffs.insert(0, f"supernet {before} -> {supernet_dir.resolve()}")
    if diffs:
        raise other_settings_error(out, "an snn search", diffs)


def score_path(model, path: list[str], val, recalibrate=(), *, loss_kind: str = "mse",
               dtype=None, count: str | None = "thesis", timesteps: int = 1,
               profile: str | None = None) -> Scores:
    """Accuracy (%) and spikes per image of one path of ``model`` (a super-network) on
    ``val``, after recalibrating its BatchNorm statistics on ``recalibrate`` (if any);
    with an energy ``profile`` also its energy in µJ per image (a third value)."""
    forward = lambda x, _step=0: model(x, path)  # noqa: E731
    with recalibrated_bn(model, recalibrate, forward) if recalibrate else nullcontext():
        stats = evaluate_rates(model, val, forward=forward, loss_kind=loss_kind, dtype=dtype,
                               count=count, timesteps=timesteps, energy=profile is not None)
    if profile is None:
        return stats.acc, stats.spikes or 0.0
    return stats.acc, stats.spikes or 0.0, energy_summary(stats.energy or {}, profile)[
        "energy_uj"]


def warm_proxy(cfg: Config, spec: dict[str, Any], data, supernet_dir: Path,  # noqa: ANN001
               device) -> Proxy:  # noqa: ANN001
    """Scores of ``snn.warm_proxy`` for a list of paths: each on an untrained network of the
    super-network's shape (``torch.manual_seed(run.seed)`` before each one, as
    ``nasforge zc score`` does), on one seeded batch of the super-network's training split."""
    import torch

    from nasforge.snn.backbone import SNNBackbone
    from nasforge.snn.blocks import bn_mode
    from nasforge.snn.epoch import rate_loss
    from nasforge.snn.neuron import neuron_kind
    from nasforge.zc.proxies import PROXIES
    from nasforge.zc.sample import SNNRates

    s = cfg.snn
    if data.frames:
        raise NasforgeError("snn.warm_start scores static images; event-frame data sets "
                            f"({data.name}) take none")
    proxy = PROXIES.get(s.warm_proxy)
    size = max(proxy.batch_size, 2)
    train_idx = read_index_file(supernet_dir / "train.txt", len(data.train))
    x, y = next(iter(snn_batches(data, data.train, min(size, len(train_idx)), device=device,
                                 indices=train_idx, seed=cfg.run.seed).epoch(0)))

    def loss(rates, target):  # noqa: ANN001, ANN202
        return rate_loss(rates, target, s.loss)

    memo: dict[Arch, float] = {}  # one score per path for all λ of the call

    def score(archs) -> list[float]:  # noqa: ANN001
        return [memo[a] if a in memo else memo.setdefault(a, one(a)) for a in archs]

    def one(arch: Arch) -> float:
        torch.manual_seed(cfg.run.seed)
        with neuron_kind(spec["neuron"]), bn_mode(spec.get("bn", "per-step")):
            net = SNNBackbone(list(arch), spec["channels"], spec["timesteps"],
                              spec["num_classes"], spec["in_size"], spec["in_channels"],
                              spec["variant"], spec["space"])
        return proxy(SNNRates(net.to(device)), x, y, loss)

    return score


def resume_snn_search(out: str | Path) -> dict:
    """Continue the search in ``out`` (``nasforge snn search --resume OUT``) with its saved
    config and super-network: the same as re-running the command that started it."""
    out = Path(out)
    cfg = load_run_config(out)
    path = out / SEARCH_FILE
    try:
        supernet = json.loads(path.read_text())["supernet"]
    except (OSError, ValueError, KeyError) as err:
        raise NasforgeError(f"{out} is not an snn search directory (no readable "
                            f"{SEARCH_FILE}); re-run the command that started it") from err
    return run_snn_search(supernet, out, cfg=cfg)


def _merge_earlier(out: Path, summary: list[dict[str, Any]], algo: str
                   ) -> list[dict[str, Any]]:
    """Keep the rows of earlier calls into ``out`` (other λ, same algorithm) before this one's."""
    path = out / "results.json"
    if not path.exists():
        return summary
    try:
        earlier = json.loads(path.read_text())
    except ValueError:
        return summary
    if earlier.get("algo") != algo:
        return summary
    now = {row["lam"] for row in summary}
    return [row for row in earlier.get("searches", []) if row["lam"] not in now] + summary


def best_arch(search_dir: str | Path, lam: float | None = None) -> str:
    """The top-1 architecture of a search run (the first λ unless ``lam`` is given)."""
    path = Path(search_dir) / "results.json"
    if not path.is_file():
        raise NasforgeError(f"{search_dir} is not an snn search run (no results.json)")
    searches = json.loads(path.read_text())["searches"]
    for row in searches:
        if lam is None or abs(row["lam"] - lam) < 1e-12:
            return row["arch"]
    raise NasforgeError(f"{search_dir} has no search with lam={lam}; it has "
                        f"{', '.join(str(r['lam']) for r in searches)}")
