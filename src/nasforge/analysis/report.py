"""Run reports (``nasforge report``): one self-contained HTML page and a markdown twin.

:func:`build_report` reads a run directory, whatever stage wrote it (search, train,
snn supernet / search / train, entropy), and writes into ``OUT`` (default ``RUN_DIR/report``):

- ``report.html``: every plot embedded as a ``data:image/png;base64`` URI and the style
  inline, so the one file can be mailed or archived and opens without network access;
- ``report.md``: the same content, linking the PNGs written next to it.

A directory holding several runs (a ``nasforge demo`` directory, a study, a sweep, or a search
whose entropy scoring lives in ``entropy.tsv.run/``) gives one report: an index of the runs
with their status, then a section per run. A piece a run has not written yet (a killed run
has no ``results.json``, a search without proxy has no selection record) is shown as "not
available" with the run's status; a plot that fails is reported in place, never raised.
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from nasforge.checkpoint import atomic_write_text
from nasforge.errors import NasforgeError
from nasforge.outputs import check_new_file, create_run_dir, is_run_dir
from nasforge.run_status import (
    LOGS,
    STATUSES,
    RunInfo,
    find_run_dirs,
    format_age,
    is_demo,
    read_config_dict,
    read_json,
    run_info,
)
from nasforge.runtime import read_csv
from nasforge.stages import find_stage

REPORT_DIR = "report"
"""Default output folder, inside the run directory (the demo's own report.md stays intact)."""

MAX_RUN_SECTIONS = 24
"""A collection of more runs lists them all in its index but details only the first ones."""

LOG_ROWS = 20
"""The per-epoch table of a log shows at most this many (the last) epochs."""


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ccc; } h2 { border-bottom: 1px solid #ddd; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: .6em; overflow-x: auto;
      font-size: 13px; white-space: pre-wrap; word-break: break-all; }
img { max-width: 100%; border: 1px solid #eee; margin: .4em 0; }
.na { color: #a33; font-style: italic; }
.status-done { color: #1a7f37; } .status-running { color: #0969da; }
.status-resumable { color: #9a6700; } .status-failed { color: #cf222e; }
"""


# ---------------------------------------------------------------- document model


@dataclass
class Doc:
    """A report as a list of blocks, rendered to both markdown and HTML."""

    out: Path
    blocks: list[tuple[Any, ...]] = field(default_factory=list)

    def heading(self, level: int, text: str, anchor: str | None = None) -> None:
        self.blocks.append(("h", level, text, anchor))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def missing(self, text: str) -> None:
        self.blocks.append(("na", text))

    def code(self, text: str, summary: str | None = None) -> None:
        """Preformatted text; with ``summary`` folded away in the HTML (``<details>``)."""
        self.blocks.append(("pre", text.rstrip("\n"), summary))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", list(headers), [[fmt(c) for c in r] for r in rows]))

    def image(self, name: str, alt: str) -> None:
        self.blocks.append(("img", name, alt))

    def plot(self, name: str, alt: str, make: Callable[[Path], Any]) -> bool:
        """Write a PNG with ``make(path)`` and show it; a failure becomes a note."""
        try:
            make(self.out / name)
        except Exception as err:  # a report renders whatever it can
            self.missing(f"{alt}: not available ({' '.join(str(err).split())[:300]})")
            return False
        self.image(name, alt)
        return True

    def markdown(self) -> str:
        parts = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                parts.append(f"{'#' * block[1]} {block[2]}")
            elif kind == "p":
                parts.append(block[1])
            elif kind == "na":
                parts.append(f"*{block[1]}*")
            elif kind == "pre":
                parts.append(f"```\n{block[1]}\n```")
            elif kind == "table":
                parts.append(_md_table(block[1], block[2]))
            elif kind == "img":
                parts.append(f"![{block[2]}]({block[1]})")
        return "\n\n".join(parts) + "\n"

    def html(self, title: str) -> str:
        body = []
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                anchor = f' id="{_esc(block[3])}"' if block[3] else ""
                body.append(f"<h{block[1]}{anchor}>{_esc(block[2])}</h{block[1]}>")
            elif kind == "p":
                body.append(f"<p>{_esc(block[1])}</p>")
            elif kind == "na":
                body.append(f'<p class="na">{_esc(block[1])}</p>')
            elif kind == "pre" and block[2]:
                body.append(f"<details><summary>{_esc(block[2])}</summary>"
                            f"<pre>{_esc(block[1])}</pre></details>")
            elif kind == "pre":
                body.append(f"<pre>{_esc(block[1])}</pre>")
            elif kind == "table":
                body.append(_html_table(block[1], block[2]))
            elif kind == "img":
                data = base64.b64encode((self.out / block[1]).read_bytes()).decode("ascii")
                body.append(f'<img alt="{_esc(block[2], True)}" '
                            f'src="data:image/png;base64,{data}">')
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<title>{_esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
                + "\n".join(body) + "\n</body>\n</html>\n")


def _esc(text: str, quote: bool = False) -> str:
    return html.escape(str(text), quote=quote)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
             "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="status-{_esc(c)}">{_esc(c)}</td>' if c in STATUSES
        else f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"




def fmt(value: Any) -> str:
    """A value as report text: floats to 6 significant digits, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def flatten(obj: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """Scalar leaves of a results dict as (dotted key, value); lists of dicts are left out
    (their sections show them), short scalar lists are kept."""
    rows: list[tuple[str, Any]] = []
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += flatten(value, name + ".")
        elif isinstance(value, (list, tuple)):
            if len(value) <= 16 and all(not isinstance(v, (dict, list)) for v in value):
                rows.append((name, value))
        else:
            rows.append((name, value))
    return rows


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "run"


# ---------------------------------------------------------------- sections of one run


@dataclass
class RunContext:
    run_dir: Path
    info: RunInfo
    results: dict | None
    config: dict
    prefix: str  # file name prefix of this run's PNGs

    @property
    def kind(self) -> str:
        return self.info.kind


def _status_line(ctx: RunContext) -> str:
    info = ctx.info
    text = f"status: {info.status}"
    stage = find_stage(ctx.kind)
    hint = stage.resume_command(ctx.run_dir) if stage is not None else None
    if info.status == "resumable" and hint:
        text += " - continue it with " + hint
    elif info.status == "failed" and (ctx.run_dir / "results.json").exists():
        text += " - its results.json is corrupt (unreadable); run the stage again"
    elif info.status == "failed":
        text += " - it stopped before its first checkpoint"
    elif info.status == "running":
        text += f" - a file changed {format_age(info.age)} ago"
    return text


def _not_available(ctx: RunContext, what: str, *, full: bool = False) -> str:
    status = _status_line(ctx) if full else f"status: {ctx.info.status}"
    missing = "corrupt results.json" if (ctx.run_dir / "results.json").exists() \
        else "no results.json"
    return f"{what}: not available ({missing}; {status})"


def _summary(doc: Doc, ctx: RunContext, level: int) -> None:
    info = ctx.info
    doc.heading(level, "Summary")
    rows = [("run directory", str(ctx.run_dir)), ("kind", info.kind),
            ("status", info.status), ("epochs", info.progress),
            ("key metric", "-" if info.value is None else f"{info.metric} = {fmt(info.value)}"),
            ("last change", f"{format_age(info.age)} ago")]
    if info.detail:
        rows.append(("what", info.detail))
    doc.table(["field", "value"], rows)
    if info.status != "done":
        doc.missing(_not_available(ctx, "final results", full=True))


def _final_metrics(doc: Doc, ctx: RunContext, level: int) -> None:
    doc.heading(level, "Final metrics")
    if ctx.results is None:
        doc.missing(_not_available(ctx, "final metrics"))
        return
    skip = {"genotype", "stage", "cost", "spec", "files", "searches", "snn"}
    doc.table(["metric", "value"],
              flatten({k: v for k, v in ctx.results.items() if k not in skip}))
    if ctx.kind == "snn-search":
        searches = ctx.results.get("searches") or []
        doc.table(["lambda", "top-1 architecture", "val acc (super-net weights)", "spikes",
                   "fitness", "evaluate calls"],
                  [(s.get("lam"), s.get("arch"), s.get("acc"), s.get("spikes"),
                    s.get("fitness"), s.get("evaluate_calls")) for s in searches])
    if ctx.kind == "snn-supernet" and isinstance(ctx.results.get("spec"), dict):
        doc.para("Super-network:")
        doc.table(["setting", "value"], flatten(ctx.results["spec"]))


def _count_lines(path: Path) -> int | None:
    try:
        return sum(1 for line in path.read_text().splitlines() if line.strip())
    except OSError:
        return None


def _data(doc: Doc, ctx: RunContext, level: int) -> None:
    doc.heading(level, "Data and proxy subset")
    data = ctx.config.get("data") or {}
    proxy_cfg = ctx.config.get("proxy") or {}
    results = ctx.results or {}
    cost = results.get("cost") or {}
    rows: list[tuple[str, Any]] = [("data set", data.get("dataset") or results.get("dataset"))]
    if data.get("root"):
        rows.append(("data root", data["root"]))
    if data.get("upscale"):
        rows.append(("upscaled to", data["upscale"]))
    train_examples = cost.get("train_examples", results.get("train_examples"))
    proxy = data.get("proxy")
    if proxy:
        rows.append(("proxy index file", proxy))
        count = _count_lines(Path(proxy)) if Path(proxy).is_file() else None
        rows.append(("proxy size", "file not found from here" if count is None else count))
    elif ctx.kind == "search":
        rows.append(("proxy", "none: the full training split"))
    if train_examples is not None:
        rows.append(("training examples used", train_examples))
    if ctx.kind == "snn-supernet":
        for split in ("train", "val"):
            count = _count_lines(ctx.run_dir / f"{split}.txt")
            if count is not None:
                rows.append((f"super-network {split} examples", count))
    if ctx.kind == "search" and proxy_cfg.get("method"):
        rows.append(("proxy selector", f"{proxy_cfg.get('method')} (size "
                                        f"{fmt(proxy_cfg.get('size'))})"))
    doc.table(["field", "value"], rows)
    record = read_json(ctx.run_dir / "proxy.json")
    if record is not None:
        doc.para("Proxy selection record (proxy.json):")
        doc.table(["field", "value"], flatten(record))
    elif proxy and ctx.kind == "search":
        doc.para("No proxy.json: the proxy index file was given, not selected by this run.")
    entropy = _entropy_list(ctx)
    if ctx.kind == "search" and entropy is not None and proxy and Path(proxy).is_file():
        doc.plot(f"{ctx.prefix}entropy.png", "entropy histogram of the data and the proxy",
                 lambda p: _entropy_plot(ctx, entropy, Path(proxy), p))
    elif ctx.kind == "entropy" and entropy is not None:
        doc.plot(f"{ctx.prefix}entropy.png", "entropy histogram of the scored data",
                 lambda p: _entropy_plot(ctx, entropy, None, p))


def _entropy_list(ctx: RunContext) -> Path | None:
    if ctx.kind == "entropy":
        listed = (ctx.results or {}).get("entropy_list")
        candidates = [Path(listed)] if listed else []
        if ctx.run_dir.name.endswith(".run"):
            candidates.append(ctx.run_dir.with_name(ctx.run_dir.name[:-4]))
    else:
        given = (ctx.config.get("proxy") or {}).get("entropy")
        candidates = [ctx.run_dir / "entropy.tsv", *([Path(given)] if given else [])]
    return next((p for p in candidates if p.is_file()), None)


def _entropy_plot(ctx: RunContext, entropy_path: Path, proxy: Path | None, png: Path) -> Path:
    from nasforge.analysis.proxy_plots import plot_entropy_histogram
    from nasforge.data import read_index_file
    from nasforge.proxy.entropy import read_entropy_list
    from nasforge.proxy.histogram import bin_width_for

    entropy = read_entropy_list(entropy_path).entropy
    selections = {}
    if proxy is not None:
        selections[(ctx.config.get("proxy") or {}).get("method") or "proxy"] = \
            read_index_file(proxy, len(entropy))
    width = bin_width_for((ctx.config.get("data") or {}).get("dataset"),
                          (ctx.config.get("proxy") or {}).get("bin_width"))
    return plot_entropy_histogram(entropy, selections, width, png,
                                  title=f"{entropy_path.name}: log10 entropy")


CURVE_TITLES = {"search": "Search curves", "train": "Retrain curves",
                "snn-supernet": "Super-network curves", "snn-train": "Training curves",
                "entropy": "Auxiliary-model curves"}


def _curve_rows(kind: str, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    if kind != "entropy":
        return rows
    # nasforge entropy logs `loss` and `test_acc`; SimCLR epochs leave the accuracies empty.
    return [{**r, "train_loss": r.get("loss", "")} for r in rows]


def _curves(doc: Doc, ctx: RunContext, level: int) -> None:
    from nasforge.analysis.curves import plot_curves

    doc.heading(level, CURVE_TITLES.get(ctx.kind, "Curves"))
    log = ctx.run_dir / LOGS[ctx.kind]
    rows = read_csv(log)
    if not rows:
        doc.missing(f"per-epoch log {log.name}: not available (no epoch finished yet; "
                    f"{_status_line(ctx)})")
        return
    doc.plot(f"{ctx.prefix}curves.png", f"{ctx.kind} loss and accuracy per epoch",
             lambda p: plot_curves({ctx.kind: _curve_rows(ctx.kind, rows)}, p))
    shown = rows[-LOG_ROWS:]
    if len(rows) > len(shown):
        doc.para(f"Last {len(shown)} of {len(rows)} epochs ({log.name}):")
    else:
        doc.para(f"Per-epoch log ({log.name}):")
    columns = list(rows[0])
    doc.table(columns, [[_number_text(r.get(c, "")) for c in columns] for r in shown])


def _number_text(text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        return text
    return text if value.is_integer() and "." not in text else fmt(value)


def _search_strengths(ctx: RunContext) -> tuple[dict | None, str]:
    """The final strengths (strengths.json), else the last epoch's record of a killed run."""
    final = read_json(ctx.run_dir / "strengths.json")
    if final is not None:
        return final, "strengths.json"
    history = ctx.run_dir / "strengths.jsonl"
    try:
        lines = [ln for ln in history.read_text().splitlines() if ln.strip()]
        last = json.loads(lines[-1])
    except (OSError, ValueError, IndexError):
        return None, ""
    search = ctx.config.get("search") or {}
    if "normal" in last:
        from nasforge.spaces.darts.spaces import SPACES

        space = search.get("space") or "darts"
        if space in SPACES:
            last.setdefault("primitives", list(SPACES.get(space).primitives))
        last.setdefault("nodes", search.get("nodes"))
    elif "ops" in last:
        from nasforge.spaces.nb101.space import NB101_OPS

        last.setdefault("primitives", list(NB101_OPS))
    last.setdefault("algo", search.get("algo"))
    return last, f"strengths.jsonl (epoch {int(last.get('epoch', 0)) + 1}, run unfinished)"


def _genotype_text(ctx: RunContext, strengths: dict | None) -> str | None:
    text = (ctx.results or {}).get("genotype")
    if text:
        return str(text)
    path = ctx.run_dir / "genotype.txt"
    if path.is_file():
        return path.read_text().strip()
    if strengths and strengths.get("genotype"):
        return str(strengths["genotype"])
    return None


def _search_sections(doc: Doc, ctx: RunContext, level: int) -> None:
    strengths, source = _search_strengths(ctx)
    genotype_text = _genotype_text(ctx, strengths)
    oneshot = strengths is not None and "ops" in strengths and "normal" not in strengths
    doc.heading(level, "Op strengths")
    genotype = None
    if strengths is None:
        doc.missing(f"op strengths: not available (no strengths.json or strengths.jsonl; "
                    f"{_status_line(ctx)})")
    elif oneshot:
        doc.para(f"NAS-Bench-1shot1 space: architecture weights per block (from {source}).")
        _oneshot_tables(doc, strengths)
    else:
        genotype = _parse_genotype(genotype_text, strengths)
        doc.para(f"From {source}; the derived genotype's ops are outlined.")
        doc.plot(f"{ctx.prefix}strengths.png", "op strengths heatmap",
                 lambda p: _strengths_plot(strengths, p, genotype))
    doc.heading(level, "Derived architecture")
    if genotype_text is None:
        doc.missing(f"genotype: not available ({_status_line(ctx)})")
        return
    doc.code(genotype_text)
    if genotype_text.startswith("#"):
        doc.missing("no cell to draw: the derivation left a cell without a live node")
    elif oneshot or " ops=" in genotype_text:
        _oneshot_arch(doc, genotype_text)
    else:
        _draw_cells(doc, ctx, genotype if genotype is not None
                    else _parse_genotype(genotype_text, strengths))


def _parse_genotype(text: str | None, strengths: dict | None):
    if not text or text.startswith("#") or " ops=" in text:
        return None
    from nasforge.spaces.darts.genotype import PRIMITIVES, parse_genotype

    primitives = (strengths or {}).get("primitives") or PRIMITIVES
    try:
        return parse_genotype(text, primitives=primitives)
    except NasforgeError:
        try:
            return parse_genotype(text)
        except NasforgeError:
            return None


def _strengths_plot(strengths: dict, png: Path, genotype) -> Path:
    from nasforge.analysis.strengths_plot import plot_strengths

    try:
        return plot_strengths(strengths, png, genotype=genotype)
    except NasforgeError:
        if genotype is None:
            raise
        return plot_strengths(strengths, png)  # the genotype does not fit: no outline


def _oneshot_tables(doc: Doc, strengths: dict) -> None:
    ops = list(strengths.get("primitives") or [])
    rows = strengths.get("ops") or []
    doc.table(["block", *(ops or [f"op {k}" for k in range(len(rows[0]) if rows else 0)])],
              [[f"{b + 1}", *[float(v) for v in row]] for b, row in enumerate(rows)])
    inputs = strengths.get("inputs") or []
    if inputs:
        doc.para("Input weights (row: block, column: vertex it reads; 0 = cell input):")
        doc.table(["block", *[str(v) for v in range(len(inputs[0]))]],
                  [[f"{b + 1}", *[float(v) for v in row]] for b, row in enumerate(inputs)])
    output = strengths.get("output") or []
    if output:
        flat = output[0] if output and isinstance(output[0], list) else output
        doc.para("Output weights (vertex → output):")
        doc.table([str(v) for v in range(len(flat))], [[float(v) for v in flat]])


def _oneshot_arch(doc: Doc, text: str) -> None:
    from nasforge.spaces.nb101.space import parse_arch

    try:
        space, arch = parse_arch(text)
    except NasforgeError as err:
        doc.missing(f"architecture table: not available ({err})")
        return
    rows = [(v, op, ", ".join(map(str, parents)) or "-")
            for v, (op, parents) in enumerate(zip(arch.ops, arch.parents, strict=True), 1)]
    rows.append(("output", "", ", ".join(map(str, arch.output))))
    doc.para(f"{space.name}: vertex 0 is the cell input; each block's op and the vertices it "
             "reads.")
    doc.table(["vertex", "op", "reads"], rows)


def _draw_cells(doc: Doc, ctx: RunContext, genotype) -> None:
    if genotype is None:
        doc.missing("cell drawings: not available (the genotype does not parse)")
        return
    from nasforge.analysis.cell_plot import draw_cell

    for cell in ("normal", "reduce"):
        doc.plot(f"{ctx.prefix}{cell}.png", f"{cell} cell",
                 lambda p, cell=cell: draw_cell(getattr(genotype, cell), p,
                                                title=f"{cell} cell"))


def _train_sections(doc: Doc, ctx: RunContext, level: int) -> None:
    doc.heading(level, "Trained cell")
    text = _genotype_text(ctx, None)
    if text is None:
        doc.missing(f"genotype: not available ({_status_line(ctx)})")
        return
    doc.code(text)
    _draw_cells(doc, ctx, _parse_genotype(text, None))


def _snn_train_sections(doc: Doc, ctx: RunContext, level: int) -> None:
    from nasforge.analysis.snn_plots import plot_layer_spikes, plot_snn_architecture

    snn = ctx.config.get("snn") or {}
    doc.heading(level, "Network")
    arch = snn.get("arch")
    if arch:
        doc.code(f"arch: {arch}")
        doc.plot(f"{ctx.prefix}arch.png", "SNN architecture",
                 lambda p: plot_snn_architecture(arch, p, variant=snn.get("variant"),
                                                 space=snn.get("space") or "default",
                                                 title=str(arch)))
    else:
        doc.para(f"hand-crafted baseline: {snn.get('model')}")
    profile = read_json(ctx.run_dir / "spikes.json")
    if profile is not None:
        doc.plot(f"{ctx.prefix}layers.png", "spikes and firing rate per layer",
                 lambda p: plot_layer_spikes({profile.get("label", "net"): profile}, p))
    elif ctx.results is None:
        doc.missing(f"spikes per layer: not available ({_status_line(ctx)})")


def _snn_search_sections(doc: Doc, ctx: RunContext, level: int) -> None:
    doc.heading(level, "Search history")
    searches = (ctx.results or {}).get("searches") or []
    if not searches:
        doc.missing(_not_available(ctx, "search history"))
        return
    for row in searches[:4]:
        result = read_json(ctx.run_dir / str(row.get("dir", "")) / "result.json")
        if result is None or not result.get("history"):
            doc.missing(f"lambda={fmt(row.get('lam'))}: history not available")
            continue
        title = f"evolutionary search, lambda={fmt(row.get('lam'))}"
        doc.plot(f"{ctx.prefix}search-{_slug(str(row.get('dir')))}.png", title,
                 partial(_history_plot, result, title))


def _history_plot(result: dict, title: str, png: Path) -> Path:
    from nasforge.analysis.snn_plots import plot_search_history

    return plot_search_history(result["history"], png, best=result.get("best"), title=title)


def _costs(doc: Doc, ctx: RunContext, level: int) -> None:
    doc.heading(level, "Costs")
    results = ctx.results or {}
    cost = results.get("cost") or {}
    rows: list[tuple[str, Any]] = []
    seconds = cost.get("seconds", results.get("seconds"))
    if isinstance(seconds, dict):
        rows += [(f"seconds ({k})", v) for k, v in seconds.items()]
    elif seconds is not None:
        rows.append(("seconds (training loop)", seconds))
    else:
        log_rows = read_csv(ctx.run_dir / LOGS[ctx.kind]) if ctx.kind in LOGS else []
        if log_rows and log_rows[-1].get("seconds"):
            rows.append(("seconds so far (from the log)", float(log_rows[-1]["seconds"])))
    rows.append(("epochs", ctx.info.progress))
    for key, label in (("examples_seen", "examples seen (weights + architecture)"),
                       ("train_examples", "training examples")):
        if key in cost:
            rows.append((label, cost[key]))
    selection = cost.get("selection") or {}
    if "seconds" in selection:
        rows.append(("proxy selection seconds", selection["seconds"]))
    for key in ("architectures_scored", "params_m"):
        if key in results:
            rows.append((key, results[key]))
    if ctx.kind == "snn-search":
        calls = sum(int(s.get("evaluate_calls") or 0) for s in results.get("searches") or [])
        rows.append(("evaluate calls", calls))
    if ctx.results is None:
        doc.missing(_not_available(ctx, "final costs"))
    doc.table(["field", "value"], rows)


def _config(doc: Doc, ctx: RunContext, level: int) -> None:
    doc.heading(level, "Config")
    path = ctx.run_dir / "config.yaml"
    if path.is_file():
        doc.para("The resolved config.yaml (a run with the same settings: --config on it):")
        doc.code(path.read_text(), summary="config.yaml")
    else:
        doc.missing("config.yaml: not available")


def _run_sections(doc: Doc, ctx: RunContext, level: int) -> None:
    _summary(doc, ctx, level)
    _final_metrics(doc, ctx, level)
    _data(doc, ctx, level)
    if ctx.kind in LOGS:
        _curves(doc, ctx, level)
    if ctx.kind == "search":
        _search_sections(doc, ctx, level)
    elif ctx.kind == "train":
        _train_sections(doc, ctx, level)
    elif ctx.kind == "snn-train":
        _snn_train_sections(doc, ctx, level)
    elif ctx.kind == "snn-search":
        _snn_search_sections(doc, ctx, level)
    _costs(doc, ctx, level)
    _config(doc, ctx, level)


# ---------------------------------------------------------------- collections


def _demo_summary(doc: Doc, results: dict, root: Path) -> None:
    doc.heading(2, "Demo summary", "demo")
    skip = {"genotype", "files", "snn"}
    doc.table(["result", "value"], flatten({k: v for k, v in results.items() if k not in skip}))
    if results.get("genotype"):
        doc.para("Derived genotype:")
        doc.code(str(results["genotype"]))
    snn = results.get("snn") or {}
    trained = snn.get("trained") or {}
    if trained:
        doc.para("AutoSNN networks retrained from scratch (test split):")
        doc.table(["network", "architecture", "test acc", "spikes per image", "params (M)"],
                  [(name, t.get("arch") or t.get("label"), t.get("test_acc"), t.get("spikes"),
                    t.get("params_m")) for name, t in trained.items()])
    search, train = root / "search" / "search_log.csv", root / "train" / "train_log.csv"
    if search.is_file() and train.is_file():
        from nasforge.analysis.curves import plot_curves

        doc.plot("demo-curves.png", "search and retrain curves",
                 lambda p: plot_curves({"search": search, "retrain": train}, p))


def _relative(path: Path, root: Path) -> str:
    """``path`` below ``root`` as text; ``root`` itself as ``.``."""
    return path.relative_to(root).as_posix()


def _checked_sections(doc: Doc, ctx: RunContext, level: int) -> None:
    """:func:`_run_sections`; a results.json that parses but does not hold what its stage
    writes (edited or damaged by hand) is one line naming it, not a traceback."""
    try:
        _run_sections(doc, ctx, level)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        if ctx.results is None:
            raise
        raise NasforgeError(
            f"{ctx.run_dir / 'results.json'} is corrupt: it does not hold what a {ctx.kind} "
            f"run writes ({type(exc).__name__}: {exc}); run the stage again, or report the "
            "other runs one by one") from exc


def build_report(run_dir: str | Path, out: str | Path | None = None, *,
                 force: bool = False) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` (+ PNGs) for a run or a folder of runs.

    ``out`` defaults to ``RUN_DIR/report``; a new or empty ``out`` becomes nasforge's and is
    rewritten freely on the next call, an existing report there not written by nasforge is
    replaced only with ``force``. Returns the two paths.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise NasforgeError(f"{run_dir} does not exist")
    if not run_dir.is_dir():
        raise NasforgeError(f"{run_dir} is not a directory; give a run directory")
    dirs = find_run_dirs(run_dir)
    if not dirs:
        raise NasforgeError(f"{run_dir} is not a nasforge run directory: no config.yaml or "
                            "results.json in it or in the folders below it")
    out = run_dir / REPORT_DIR if out is None else Path(out)
    if out.is_file():
        raise NasforgeError(f"report directory {out} is a file; give --out a folder")
    try:
        if out.is_dir() and any(out.iterdir()):
            if not is_run_dir(out) and not force:
                for name in ("report.md", "report.html"):
                    check_new_file(out / name, force=False, what="report")
        else:
            create_run_dir(out)
    except OSError as exc:
        raise NasforgeError(f"cannot create report directory {out}: {exc.strerror}") from exc
    doc = Doc(out)
    now = time.time()
    infos = {d: run_info(d, now=now) for d in dirs}
    root_results = read_json(run_dir / "results.json")
    title = f"nasforge report: {run_dir.resolve().name}"
    doc.heading(1, title)
    doc.para(f"{run_dir} - written {time.strftime('%Y-%m-%d %H:%M', time.localtime(now))}")
    demo = is_demo(root_results)
    sections = [d for d in dirs if not (demo and d == run_dir)]
    single = len(sections) == 1 and sections[0] == run_dir
    if single:
        ctx = RunContext(run_dir, infos[run_dir], root_results or None,
                         read_config_dict(run_dir), "")
        _checked_sections(doc, ctx, 2)
    else:
        if demo:
            _demo_summary(doc, root_results, run_dir)
        doc.heading(2, "Runs", "runs")
        doc.table(["run", "kind", "status", "epochs", "key metric", "last change"],
                  [(_relative(d, run_dir), infos[d].kind, infos[d].status, infos[d].progress,
                    "-" if infos[d].value is None
                    else f"{infos[d].metric} = {fmt(infos[d].value)}",
                    f"{format_age(infos[d].age)} ago") for d in dirs])
        for d in sections[:MAX_RUN_SECTIONS]:
            rel = _relative(d, run_dir)
            top = rel == "."  # a run holding another (a search and its entropy scoring)
            doc.heading(2, f"{infos[d].kind}: {run_dir.resolve().name if top else rel}",
                        "main-run" if top else _slug(rel))
            ctx = RunContext(d, infos[d], read_json(d / "results.json") or None,
                             read_config_dict(d), "" if top else _slug(rel) + "-")
            _checked_sections(doc, ctx, 3)
        if len(sections) > MAX_RUN_SECTIONS:
            doc.para(f"{len(sections) - MAX_RUN_SECTIONS} more runs are listed above without "
                     "sections; report them one by one with `nasforge report RUN_DIR`.")
    md_path = atomic_write_text(out / "report.md", doc.markdown())
    html_path = atomic_write_text(out / "report.html", doc.html(title))
    return html_path, md_path


__all__ = ["REPORT_DIR", "build_report"]
