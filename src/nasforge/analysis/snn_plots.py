"""Chapter-5 (AutoSNN) pictures: accuracy vs spikes, layer-wise spikes, space quality,
searched architectures and the evolutionary search (thesis Figs. 5.1, 5.4, 5.5, 5.7, 5.8,
5.11, 5.12, 5.13).

Every ``plot_*`` function takes plain data and a path, writes a PNG and returns the path;
the ``*_figure`` helpers build the same figure without saving it, so tests can look inside.
Spike counts are per image (raw numbers); axes show them in thousands ("K").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch  # noqa: E402

from nasforge.analysis.figures import save_figure
from nasforge.errors import NasforgeError  # noqa: E402

MIN_MARKER_AREA = 30.0  # points², the smallest marker of the accuracy-vs-spikes plot
AREA_PER_M = 40.0  # points² per million parameters
KIND_MARKERS = {"hand-crafted": "o", "searched": "D"}
BOX_COLOURS = {
    "io": "#ffffff",
    "stem": "#d9d9d9",
    "SCB": "#9ecae1",
    "SRB": "#fdae6b",
    "skip": "#f0f0f0",
    "SIB": "#a1d99b",
    "pool": "#bcbddc",
    "head": "#fff2b3",
    "other": "#fbb4ae",
}


def _save(fig: Figure, path: str | Path) -> Path:
    return save_figure(fig, path, tight=False)


def _kilo(value: float, _pos: Any = None) -> str:
    """Tick text for a raw spike count: 12500 -> "12.5K"."""
    return f"{value / 1000:g}K"


def _colours(labels: Sequence[str]) -> dict[str, Any]:
    """One colour per label, in first-seen order."""
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _unique(items: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


# ---------------------------------------------------------------- accuracy vs spikes


def marker_area(params_m: float) -> float:
    """Marker area (points²) of a net with ``params_m`` million parameters."""
    return max(MIN_MARKER_AREA, AREA_PER_M * float(params_m))


def pareto_front(points: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The points no other point dominates (spikes <= and acc >= with one strict).

    Returns the original point objects sorted by spikes (then accuracy) ascending; equal
    points do not dominate each other, so duplicates on the front are all kept.
    """
    order = sorted(points, key=lambda p: (float(p["spikes"]), -float(p["acc"])))
    front: list[Any] = []
    best_before = float("-inf")  # best accuracy among strictly fewer spikes
    i = 0
    while i < len(order):
        spikes = float(order[i]["spikes"])
        j = i
        while j < len(order) and float(order[j]["spikes"]) == spikes:
            j += 1
        group = order[i:j]
        top = float(group[0]["acc"])
        if top > best_before:
            front += [p for p in group if float(p["acc"]) == top]
            best_before = top
        i = j
    return sorted(front, key=lambda p: (float(p["spikes"]), float(p["acc"])))


def _panels(points: Sequence[Mapping[str, Any]]) -> list[tuple[Any, list[Mapping[str, Any]]]]:
    """Points grouped by timesteps (sorted, unknown last); one group when at most one T."""
    keys = _unique([p.get("timesteps") for p in points])
    if len(keys) <= 1:
        return [(keys[0] if keys else None, list(points))]
    keys.sort(key=lambda t: (t is None, t if t is not None else 0))
    return [(t, [p for p in points if p.get("timesteps") == t]) for t in keys]


def accuracy_vs_spikes_figure(points: Sequence[Mapping[str, Any]], *,
                              title: str | None = None) -> Figure:
    """Figs. 5.1/5.12 as a Figure: one panel per distinct ``timesteps`` (one if <= 1).

    Each point: ``label``, ``acc`` (%), ``spikes`` (per image), ``params_m`` (millions),
    optional ``channels``, ``kind`` ("hand-crafted" | "searched") and ``timesteps``.
    """
    for p in points:
        missing = [k for k in ("label", "acc", "spikes", "params_m") if k not in p]
        if missing:
            raise NasforgeError(f"accuracy-vs-spikes point lacks {', '.join(missing)}: {dict(p)}")
        kind = p.get("kind", "searched")
        if kind not in KIND_MARKERS:
            raise NasforgeError(f"unknown point kind '{kind}'; choose from: hand-crafted, searched")
    panels = _panels(points)
    labels = _unique([str(p["label"]) for p in points])
    colours = _colours(labels)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels) + 2.0, 4.4),
                             squeeze=False)
    for ax, (timesteps, group) in zip(axes[0], panels, strict=True):
        for label in labels:
            mine = [p for p in group if str(p["label"]) == label]
            if not mine:
                continue
            ordered = sorted(mine, key=lambda p: (p.get("channels") is None,
                                                  p.get("channels") or 0, float(p["spikes"])))
            if len(ordered) > 1:
                ax.plot([float(p["spikes"]) for p in ordered], [float(p["acc"]) for p in ordered],
                        "-", lw=0.8, color=colours[label], zorder=1)
            for kind, marker in KIND_MARKERS.items():
                same = [p for p in mine if p.get("kind", "searched") == kind]
                if not same:
                    continue
                ax.scatter([float(p["spikes"]) for p in same], [float(p["acc"]) for p in same],
                           s=[marker_area(p["params_m"]) for p in same], marker=marker,
                           color=colours[label], edgecolors="black", linewidths=0.6,
                           alpha=0.85, zorder=2, gid=label)
            for p in mine:
                if p.get("channels") is not None:
                    ax.annotate(str(p["channels"]), (float(p["spikes"]), float(p["acc"])),
                                xytext=(6, 4), textcoords="offset points", fontsize=7)
        front = pareto_front(group)
        if front:
            xs = [float(p["spikes"]) for p in front]
            ys = [float(p["acc"]) for p in front]
            ax.step(xs, ys, where="post", ls="--", lw=1.0, color="black", zorder=1.5,
                    label="Pareto front")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_kilo))
        ax.set_xlabel("spikes per image (K)")
        ax.set_ylabel("test accuracy (%)")
        if len(panels) > 1:
            ax.set_title(f"T = {timesteps}" if timesteps is not None else "T unknown")
        ax.grid(alpha=0.3)
    handles: list[Any] = [
        Line2D([], [], marker="o", ls="", color=colours[lab], markeredgecolor="black", label=lab)
        for lab in labels
    ]
    kinds = _unique([p.get("kind", "searched") for p in points])
    handles += [Line2D([], [], marker=KIND_MARKERS[k], ls="", color="white",
                       markeredgecolor="black", label=k) for k in kinds]
    if points:
        handles.append(Line2D([], [], ls="--", color="black", label="Pareto front"))
        # outside the axes: points may sit in any corner
        axes[0][-1].legend(handles=handles, fontsize=7, loc="upper left",
                           bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_spikes(points: Sequence[Mapping[str, Any]], path: str | Path, *,
                            title: str | None = None) -> Path:
    """Test accuracy vs spikes per image, marker area ~ parameters, Pareto front dashed."""
    return _save(accuracy_vs_spikes_figure(points, title=title), path)


# ---------------------------------------------------------------- layer-wise spikes


def short_layer_name(name: str) -> str:
    """``body.0.body.1`` -> ``b0.1``, ``body.2.out`` -> ``b2.out``, ``stem.neuron`` -> ``stem``."""
    text = re.sub(r"\.neuron$", "", name)
    text = re.sub(r"^body\.(\d+)", r"b\1", text)
    text = text.replace(".body.", ".")
    return text if len(text) <= 14 else text[:13] + "…"


def layer_spikes_figure(profiles: Mapping[str, Mapping[str, Any]], *,
                        title: str | None = None) -> Figure:
    """Figs. 5.4/5.5/5.7 as a Figure: (a) spikes per layer as grouped bars, (b) firing rates.

    ``profiles`` maps a label to ``{"per_layer": {layer: spikes per image},
    "rates": {layer: firing rate}}`` (the form :func:`nasforge.snn.spikes.count_spikes`
    returns). Layers keep their given order; profiles align by position.
    """
    labels = list(profiles)
    colours = _colours(labels)
    layers = {lab: list(profiles[lab].get("per_layer", {})) for lab in labels}
    for lab in labels:  # a profile may give rates only
        if not layers[lab]:
            layers[lab] = list(profiles[lab].get("rates", {}))
    n = max((len(v) for v in layers.values()), default=0)
    fig, (ax_sp, ax_rate) = plt.subplots(1, 2, figsize=(max(10.0, 0.55 * n * 2 + 3), 4.4))
    width = 0.8 / max(len(labels), 1)
    for k, lab in enumerate(labels):
        per_layer = profiles[lab].get("per_layer", {})
        names = list(per_layer)
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(names))]
        if names:
            ax_sp.bar(xs, [float(per_layer[m]) for m in names], width=width,
                      color=colours[lab], label=lab, gid=lab)
        rates = profiles[lab].get("rates", {})
        idx = [i for i, m in enumerate(layers[lab]) if m in rates]
        if idx:
            ax_rate.plot(idx, [float(rates[layers[lab][i]]) for i in idx], "-o", ms=3.5,
                         color=colours[lab], label=lab, gid=lab)
    ticks = []
    for i in range(n):
        names = _unique([short_layer_name(layers[lab][i]) for lab in labels
                         if i < len(layers[lab])])
        ticks.append("/".join(names))
    for ax in (ax_sp, ax_rate):
        ax.set_xticks(range(n), ticks, rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("layer (forward order)")
        ax.grid(alpha=0.3, axis="y")
        if labels:
            ax.legend(fontsize=7)
    ax_sp.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_kilo))
    ax_sp.set_ylabel("spikes per image (K)")
    ax_sp.set_title("(a) spikes per layer")
    ax_rate.set_ylabel("firing rate")
    ax_rate.set_ylim(bottom=0)
    ax_rate.set_title("(b) firing rate per layer")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_layer_spikes(profiles: Mapping[str, Mapping[str, Any]], path: str | Path, *,
                      title: str | None = None) -> Path:
    """Spikes per layer (grouped bars) and firing rate per layer, one series per profile."""
    return _save(layer_spikes_figure(profiles, title=title), path)


# ---------------------------------------------------------------- search-space quality


def accuracy_cdf(accs: Sequence[float]) -> tuple[list[float], list[float]]:
    """Sorted accuracies and the fraction of nets with accuracy <= each."""
    from nasforge.analysis.edf import error_edf

    return error_edf(accs)


def space_quality_figure(spaces: Mapping[str, Sequence[tuple[float, float]]], *,
                         title: str | None = None) -> Figure:
    """Fig. 5.8 as a Figure: (a) spikes vs accuracy per space, (b) accuracy CDF per space.

    ``spaces`` maps a space label to ``[(spikes per image, accuracy %), ...]`` of sampled nets.
    """
    names = list(spaces)
    colours = _colours(names)
    fig, (ax_sc, ax_cdf) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in names:
        pairs = [(float(s), float(a)) for s, a in spaces[name]]
        if not pairs:
            continue
        ax_sc.scatter([s for s, _ in pairs], [a for _, a in pairs], s=14, alpha=0.6,
                      color=colours[name], label=f"{name} (n={len(pairs)})", gid=name)
        xs, ys = accuracy_cdf([a for _, a in pairs])
        ax_cdf.step([xs[0], *xs], [0.0, *ys], where="post", color=colours[name],
                    label=f"{name} (n={len(xs)})", gid=name)
    ax_sc.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_kilo))
    ax_sc.set(xlabel="spikes per image (K)", ylabel="accuracy (%)",
              title="(a) sampled architectures")
    ax_cdf.set(xlabel="accuracy (%)", ylabel="fraction of nets with accuracy <= a",
               title="(b) accuracy CDF")
    ax_cdf.set_ylim(0, 1.02)
    for ax in (ax_sc, ax_cdf):
        ax.grid(alpha=0.3)
        if any(spaces[n] for n in names):
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_space_quality(spaces: Mapping[str, Sequence[tuple[float, float]]], path: str | Path,
                       *, title: str | None = None) -> Path:
    """Scatter of (spikes, accuracy) and the accuracy CDF of each search space."""
    return _save(space_quality_figure(spaces, title=title), path)


# ---------------------------------------------------------------- architecture diagram


def _block_kind(name: str) -> str:
    prefix = name.split("_")[0]
    return prefix if prefix in ("SCB", "SRB", "SIB", "skip") else "other"


def _multiplier(c: int, base: int) -> str:
    m = c // base
    return "C" if m == 1 else f"{m}C"


def _diagram(arch: str | Sequence[str], variant: str | None, space: str
             ) -> list[tuple[str, str, str]]:
    """(text, kind, note under the box) for every box, input to voting."""
    from nasforge.snn.backbone import layout, num_tbd, parse_arch
    from nasforge.snn.blocks import BLOCKS

    channels = 16
    slots = layout(channels, variant, space)  # checks variant and space
    names = parse_arch(arch if isinstance(arch, str) else list(arch),
                       n=num_tbd(variant, space), allowed=tuple(BLOCKS.names()))
    boxes = [("Input", "io", ""), ("Stem", "stem", "C")]
    it = iter(names)
    for slot in slots:
        note = _multiplier(slot.c_out, channels)
        if slot.kind == "tbd":
            name = next(it)
            boxes.append((name, _block_kind(name), note + (" /2" if slot.stride == 2 else "")))
        else:
            text = "AvgPool+PLIF" if variant == "v3" else "MaxPool"
            boxes.append((text, "pool", note + " /2"))
    if variant == "v1":
        boxes.append(("GAP+PLIF", "pool", "4C"))
    boxes += [("FC", "head", ""), ("PLIF", "head", ""), ("Voting", "head", "")]
    return boxes


def diagram_boxes(arch: str | Sequence[str], variant: str | None = None,
                  space: str = "default") -> list[tuple[str, str]]:
    """The (text, kind) of each box :func:`plot_snn_architecture` draws, left to right.

    Kinds: io, stem, SCB, SRB, skip, SIB, pool, head (other for unknown block families).
    """
    return [(text, kind) for text, kind, _ in _diagram(arch, variant, space)]


def snn_architecture_figure(arch: str | Sequence[str], *, variant: str | None = None,
                            space: str = "default", title: str | None = None) -> Figure:
    """Figs. 5.11/5.13 as a Figure: input → stem → body → [GAP+PLIF] → FC → PLIF → voting."""
    boxes = _diagram(arch, variant, space)
    step, width, height = 1.0, 0.72, 2.6
    fig, ax = plt.subplots(figsize=(0.8 * len(boxes) + 0.8, 3.6))
    for i, (text, kind, note) in enumerate(boxes):
        x = i * step
        ax.add_patch(FancyBboxPatch((x - width / 2, 0), width, height,
                                    boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=BOX_COLOURS.get(kind, BOX_COLOURS["other"]),
                                    edgecolor="black", linewidth=0.9,
                                    linestyle="--" if kind == "skip" else "-", gid=kind))
        ax.text(x, height / 2, text, rotation=90, ha="center", va="center", fontsize=9)
        if note:
            ax.text(x, -0.25, note, ha="center", va="top", fontsize=8)
        if i:
            ax.add_patch(FancyArrowPatch((x - step + width / 2, height / 2),
                                         (x - width / 2, height / 2), arrowstyle="-|>",
                                         mutation_scale=8, linewidth=0.8, color="black"))
    kinds = _unique([k for _, k, _ in boxes if k not in ("io", "head", "stem")])
    ax.legend(handles=[Patch(facecolor=BOX_COLOURS.get(k, BOX_COLOURS["other"]),
                             edgecolor="black", label=k) for k in kinds],
              loc="upper center", bbox_to_anchor=(0.5, 1.0), ncol=max(len(kinds), 1),
              fontsize=7, frameon=False)
    ax.set_xlim(-0.6, (len(boxes) - 1) * step + 0.6)
    ax.set_ylim(-0.8, height + 0.7)
    ax.set_aspect("auto")
    ax.axis("off")
    label = variant or "proposed"
    ax.set_title(title or f"SNN architecture ({label} backbone, space {space})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_snn_architecture(arch: str | Sequence[str], path: str | Path, *,
                          variant: str | None = None, space: str = "default",
                          title: str | None = None) -> Path:
    """A left-to-right block diagram of one searched SNN (boxes coloured by block type)."""
    return _save(snn_architecture_figure(arch, variant=variant, space=space, title=title), path)


# ---------------------------------------------------------------- evolutionary search


def _arch_text(arch: str | Sequence[str]) -> str:
    parts = arch.split(",") if isinstance(arch, str) else list(arch)
    return ",".join(p.strip() for p in parts)


def round_fitness(history: Sequence[Mapping[str, Any]]
                  ) -> tuple[list[int], list[float], list[float]]:
    """Rounds (sorted), best fitness so far after each round and mean fitness of each round."""
    rounds = sorted({int(r["round"]) for r in history})
    best, mean, so_far = [], [], float("-inf")
    for rnd in rounds:
        values = [float(r["fitness"]) for r in history if int(r["round"]) == rnd]
        so_far = max(so_far, *values)
        best.append(so_far)
        mean.append(sum(values) / len(values))
    return rounds, best, mean


def search_history_figure(history: Sequence[Mapping[str, Any]], *, best: str | None = None,
                          title: str | None = None) -> Figure:
    """The evolutionary search as a Figure: (a) spikes vs accuracy by round, best starred;
    (b) best fitness so far and mean fitness per round.

    Each row: ``arch`` ("SRB_k5,skip,..."), ``acc`` (%), ``spikes`` (per image), ``fitness``,
    ``round`` — the rows :class:`nasforge.snn.evolution` writes to its history.
    """
    if not history:
        raise NasforgeError("search history is empty: nothing to plot")
    fig, (ax_sc, ax_fit) = plt.subplots(1, 2, figsize=(11, 4.2))
    rounds = [int(r["round"]) for r in history]
    sc = ax_sc.scatter([float(r["spikes"]) for r in history], [float(r["acc"]) for r in history],
                       c=rounds, cmap="viridis", s=18, alpha=0.8, vmin=min(rounds),
                       vmax=max(rounds) if max(rounds) > min(rounds) else min(rounds) + 1)
    bar = fig.colorbar(sc, ax=ax_sc)
    bar.set_label("round")
    bar.locator = matplotlib.ticker.MaxNLocator(integer=True)
    bar.update_ticks()
    if best is not None:
        want = _arch_text(best)
        chosen = [r for r in history if _arch_text(r["arch"]) == want]
        if not chosen:
            raise NasforgeError(f"best architecture '{want}' is not in the search history")
        top = max(chosen, key=lambda r: float(r["fitness"]))
    else:
        top = max(history, key=lambda r: float(r["fitness"]))
    x, y = float(top["spikes"]), float(top["acc"])
    ax_sc.scatter([x], [y], marker="*", s=260, color="red", edgecolors="black", zorder=3,
                  gid="best")
    ax_sc.annotate(_arch_text(top["arch"]).replace(",", ", "), (x, y), xytext=(0, -18),
                   textcoords="offset points", ha="center", va="top", fontsize=7,
                   bbox={"boxstyle": "round", "fc": "white", "alpha": 0.8})
    ax_sc.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_kilo))
    ax_sc.set(xlabel="spikes per image (K)", ylabel="accuracy (%)",
              title="(a) evaluated architectures")
    xs, best_so_far, mean = round_fitness(history)
    ax_fit.plot(xs, best_so_far, "-o", ms=4, label="best so far", gid="best")
    ax_fit.plot(xs, mean, "--s", ms=3.5, label="round mean", gid="mean")
    ax_fit.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax_fit.set(xlabel="round", ylabel="fitness", title="(b) fitness per round")
    ax_fit.legend(fontsize=8)
    for ax in (ax_sc, ax_fit):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_search_history(history: Sequence[Mapping[str, Any]], path: str | Path, *,
                        best: str | None = None, title: str | None = None) -> Path:
    """Spikes vs accuracy of every evaluation (by round) and the fitness curve per round."""
    return _save(search_history_figure(history, best=best, title=title), path)


# ---------------------------------------------------------------- from run directories

def _read_run_json(path: Path, what: str) -> dict:
    """A run's JSON file; a missing or unreadable one is a user error naming the run."""
    import json

    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise NasforgeError(f"{path.parent} is not {what} (no {path.name})") from None
    except ValueError as exc:
        raise NasforgeError(f"cannot read {path}: {exc}") from None


def snn_train_point(run_dir: str | Path) -> dict[str, Any]:
    """The point of one ``snn train`` run in :func:`plot_accuracy_vs_spikes`: its label
    (baseline name, ``AutoSNN`` for a searched network, else the run's label), test
    accuracy, spikes, parameters, C, T and kind."""
    r = _read_run_json(Path(run_dir) / "results.json", "an `snn train` run")
    if r.get("stage") != "snn-train":
        raise NasforgeError(f"{run_dir} is not an `snn train` run (stage {r.get('stage')})")
    label = r["model"] or ("AutoSNN" if r["arch"] else r["label"])
    return {"label": label, "acc": r["test_acc"], "spikes": r["spikes"],
            "params_m": r["params_m"], "channels": r["channels"],
            "timesteps": r["timesteps"], "kind": r["kind"]}


def plot_pareto_runs(run_dirs: Sequence[str | Path], path: str | Path, *,
                     title: str | None = None) -> Path:
    """Accuracy vs spikes (Figs. 5.1, 5.12) of ``snn train`` run directories."""
    return plot_accuracy_vs_spikes([snn_train_point(run) for run in run_dirs], path,
                                   title=title)


def plot_layer_runs(run_dirs: Sequence[str | Path], path: str | Path, *,
                    labels: Sequence[str] = (), title: str | None = None) -> Path:
    """Spikes per layer (Fig. 5.7) of ``snn train`` runs, from each run's ``spikes.json``;
    series named by ``labels`` in order, the rest by the run's own label."""
    profiles = {}
    for i, run in enumerate(run_dirs):
        profile = _read_run_json(Path(run) / "spikes.json", "an `snn train` run")
        profiles[labels[i] if i < len(labels) else profile["label"]] = profile
    return plot_layer_spikes(profiles, path, title=title)


def read_search_result(search_dir: str | Path, lam: float | None = None
                       ) -> tuple[dict[str, Any], float]:
    """``(result.json, lam)`` of the search of fitness exponent ``lam`` (default: the first)
    in an ``snn search`` directory; an unknown ``lam`` is a one-line error listing them."""
    from nasforge.snn.search import lam_dir

    summary = _read_run_json(Path(search_dir) / "results.json", "an `snn search` run")
    lams = [row["lam"] for row in summary["searches"]]
    lam = lams[0] if lam is None else lam
    if lam not in lams:
        raise NasforgeError(f"{search_dir} has no search with lam={lam}; it has "
                            f"{', '.join(str(v) for v in lams)}")
    return _read_run_json(lam_dir(Path(search_dir), lam) / "result.json", "a search"), lam


def plot_search_run(search_dir: str | Path, path: str | Path, *, lam: float | None = None,
                    title: str | None = None) -> Path:
    """The evaluations of one search (the one of fitness exponent ``lam``; default: the
    first) of an ``snn search`` directory, by :func:`plot_search_history`."""
    result, lam = read_search_result(search_dir, lam)
    return plot_search_history(result["history"], path, best=result["best"],
                               title=title or f"{result['method']} search, lambda={lam:+g}")
