"""Pictures of proxy data: entropy histograms (Figs. 3.2, 3.7, 3.11), class proportions
(Fig. 3.15) and t-SNE embeddings of selections (Fig. 3.8)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from nasforge.analysis.figures import save_figure

COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown")


def _save(fig, path: str | Path) -> Path:
    return save_figure(fig, path)


def plot_entropy_histogram(entropy: torch.Tensor, selections: dict[str, torch.Tensor],
                           bin_width: float, path: str | Path, *, title: str = "") -> Path:
    """Counts per log10-entropy bin of the full data (grey) and of each selection."""
    from nasforge.proxy.histogram import entropy_histogram

    hist = entropy_histogram(entropy, bin_width)
    edges = hist.edges.numpy()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.bar(edges[:-1], hist.counts.numpy(), width=bin_width, align="edge", color="0.8",
           edgecolor="0.5", label=f"full data ({len(entropy)})")
    for (label, idx), colour in zip(selections.items(), COLOURS, strict=False):
        counts = torch.bincount(hist.bin_of[idx], minlength=len(edges) - 1).numpy()
        ax.bar(edges[:-1], counts, width=bin_width, align="edge", color=colour, alpha=0.6,
               edgecolor=colour, label=f"{label} ({len(idx)})")
    ax.set_yscale("log")
    ax.set_xlabel(f"log10 entropy (bin width {bin_width:g})")
    ax.set_ylabel("examples")
    ax.set_title(title or "data entropy")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_class_proportions(labels: torch.Tensor, selections: dict[str, torch.Tensor],
                           path: str | Path, *, num_classes: int | None = None) -> Path:
    """Fraction of each class in the full data and in each selection (grouped bars)."""
    k = int(num_classes or int(labels.max()) + 1)
    groups = {"full data": torch.arange(len(labels)), **selections}
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * k + 2), 3.6))
    width = 0.8 / len(groups)
    for g, ((label, idx), colour) in enumerate(zip(groups.items(), ("0.6", *COLOURS),
                                                   strict=False)):
        share = torch.bincount(labels[idx], minlength=k).double() / max(len(idx), 1)
        ax.bar(np.arange(k) + g * width - 0.4 + width / 2, share.numpy(), width=width,
               color=colour, label=label)
    ax.axhline(1 / k, color="k", lw=0.8, ls=":")
    ax.set_xticks(np.arange(k))
    ax.set_xlabel("class")
    ax.set_ylabel("fraction of examples")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_tsne(features: torch.Tensor, selections: dict[str, torch.Tensor], path: str | Path,
              *, seed: int = 0, max_points: int = 3000) -> Path:
    """t-SNE of (a seeded sample of) all examples in grey with selections highlighted."""
    from sklearn.manifold import TSNE

    n = len(features)
    gen = torch.Generator().manual_seed(seed)
    chosen = torch.cat([*selections.values()]).unique() if selections else torch.empty(0)
    rest = torch.randperm(n, generator=gen)[:max_points]
    points = torch.cat([rest, chosen]).unique()
    emb = TSNE(n_components=2, random_state=seed, init="pca",
               perplexity=min(30.0, max(5.0, (len(points) - 1) / 3))).fit_transform(
        features[points].double().numpy())
    where = {int(p): i for i, p in enumerate(points.tolist())}
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(emb[:, 0], emb[:, 1], s=3, c="0.8", label="data")
    for (label, idx), colour in zip(selections.items(), COLOURS, strict=False):
        rows = [where[int(i)] for i in idx.tolist()]
        ax.scatter(emb[rows, 0], emb[rows, 1], s=6, c=colour, label=label)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8, markerscale=3)
    return _save(fig, path)


# ---------------------------------------------------------------- from files (``nasforge plot``)

def read_selections(paths: list[str], n: int) -> dict[str, torch.Tensor]:
    """Index files (one example index a line) of a data set of ``n`` examples, by file stem:
    the selections a plot highlights."""
    from nasforge.data import read_index_file

    return {Path(p).stem: read_index_file(p, n) for p in paths}


def plot_entropy_files(entropy_list: str | Path, selection_files: list[str],
                       path: str | Path, *, dataset: str | None = None,
                       bin_width: float | None = None) -> Path:
    """:func:`plot_entropy_histogram` of an entropy list and index files; the bin width is
    ``bin_width`` or the data set's default (:func:`nasforge.proxy.histogram.bin_width_for`)."""
    from nasforge.proxy.entropy import read_entropy_list
    from nasforge.proxy.histogram import bin_width_for

    ent = read_entropy_list(entropy_list)
    width = bin_width_for(dataset or "", bin_width)
    selections = read_selections(selection_files, len(ent.entropy))
    return plot_entropy_histogram(ent.entropy, selections, width, path)


def plot_class_files(entropy_list: str | Path, selection_files: list[str],
                     path: str | Path) -> Path:
    """:func:`plot_class_proportions` of index files, with the labels of an entropy list."""
    from nasforge.proxy.entropy import read_entropy_list

    ent = read_entropy_list(entropy_list)
    return plot_class_proportions(ent.label, read_selections(selection_files, len(ent.label)),
                                  path)


def plot_tsne_files(features_file: str | Path, selection_files: list[str], path: str | Path,
                    *, seed: int = 0) -> Path:
    """:func:`plot_tsne` of a features ``.npy`` with the examples of index files marked."""
    from nasforge.proxy.entropy import load_features

    feats = load_features(features_file)
    return plot_tsne(feats, read_selections(selection_files, len(feats)), path, seed=seed)
