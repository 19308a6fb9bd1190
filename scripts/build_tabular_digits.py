"""Build a tabular benchmark: train every normal cell of the space once per seed.

Each finished (cell, seed) is appended as one JSON line to a work file, so a killed build
resumes where it stopped; at the end the compact gzip table is written. Examples:

    .venv/bin/python scripts/build_tabular_digits.py --workers 2 --seeds 0 1
    .venv/bin/python scripts/build_tabular_digits.py --bench tabular-noisy-digits

The work file of ``tabular-noisy-digits`` is committed (benchmarks/data/) as it grows, so a
build split over several sessions continues where the last one stopped.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src/nasforge/benchmarks/data"
SEEDS = {"tabular-digits": [0, 1], "tabular-noisy-digits": [0, 1, 2, 3, 4, 5]}
"""The seeds of each shipped table, so ``--table-only`` without ``--seeds`` rewrites it whole."""
WORK = {"tabular-digits": Path("build/tabular_digits.work.jsonl"),
        "tabular-noisy-digits": DATA / "tabular_noisy_digits.work.jsonl"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="tabular-digits",
                    choices=["tabular-digits", "tabular-noisy-digits"],
                    help="which table (its protocol, work file and output)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (1 = in-process)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="training seeds (default: the shipped table's, SEEDS)")
    ap.add_argument("--work", type=Path, default=None,
                    help="JSON-lines file of finished trainings (resume log; default per bench)")
    ap.add_argument("--out", type=Path, default=None,
                    help="gzip JSON table to write (default: the packaged table of --bench)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N cells (tests)")
    ap.add_argument("--epochs", type=int, default=None, help="override the protocol (tests)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--table-only", action="store_true",
                    help="train nothing: write the table of the cells finished for every seed")
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def read_work(path: Path, protocol: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """Finished results of an earlier (killed) build; a torn last line is ignored."""
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.exists():
        return done
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # killed mid-write
            raise SystemExit(f"error: {path} line {i + 1} is not JSON") from None
        if "protocol" in row:
            if row["protocol"] != protocol:
                raise SystemExit(f"error: {path} was built with another protocol; "
                                 "use a new --work file")
            continue
        done[(row["key"], int(row["seed"]))] = row
    return done


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _train(task: tuple[str, int, dict[str, Any]]) -> dict[str, Any]:
    from nasforge.benchmarks.tabular import cell_from_key, train_protocol

    key, seed, bench, overrides = task
    return train_protocol(cell_from_key(key), seed, bench=bench, **overrides)


def write_table(out: Path, protocol: dict[str, Any], seeds: list[int], keys: list[str],
                done: dict[tuple[str, int], dict[str, Any]], build: dict[str, Any]) -> int:
    """Write the gzip table of every key finished for all seeds; returns the record count."""
    records = {}
    for key in keys:
        rows = [done.get((key, s)) for s in seeds]
        if any(r is None for r in rows):
            continue
        records[key] = {
            "val_acc": [r["val_acc"] for r in rows],
            "test_acc": [r["test_acc"] for r in rows],
            "params": rows[0]["params"],
            "seconds": [r["seconds"] for r in rows],
        }
    from nasforge.benchmarks.tabular import SPACE_NAME

    table = {"space": SPACE_NAME, "protocol": protocol, "seeds": seeds, "build": build,
             "records": records}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write(json.dumps(table, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    os.replace(tmp, out)
    return len(records)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from tqdm.auto import tqdm

    from nasforge.benchmarks.tabular import BENCHMARKS, PROTOCOLS, cell_key, enumerate_cells

    work = args.work if args.work is not None else WORK[args.bench]
    out = args.out if args.out is not None else DATA / BENCHMARKS[args.bench]
    overrides = {"threads": args.threads}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    protocol = {**PROTOCOLS[args.bench], **overrides}
    keys = [cell_key(c) for c in enumerate_cells()][: args.limit]
    seeds = sorted(set(args.seeds if args.seeds is not None else SEEDS[args.bench]))
    done = read_work(work, protocol)
    # cells in a fixed shuffled order, both seeds together: a partial build is a uniform
    # sample of the space, so its statistics mean something already
    order = random.Random(0).sample(keys, len(keys))
    tasks = [(k, s, args.bench, overrides) for k in order for s in seeds if (k, s) not in done]
    print(f"{len(keys)} cells x {len(seeds)} seeds: {len(keys) * len(seeds) - len(tasks)} "
          f"done, {len(tasks)} to train with {args.workers} worker(s)", flush=True)
    if args.table_only:
        tasks = []

    work.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(work, "a", encoding="utf-8") as log:
        if work.stat().st_size == 0:
            log.write(json.dumps({"protocol": protocol}) + "\n")
        bar = tqdm(total=len(tasks), desc=args.bench, unit="run", disable=args.no_progress)
        if args.workers <= 1 or not tasks:
            _init_worker(args.threads)
            results = map(_train, tasks)
            pool = None
        else:
            pool = mp.get_context("spawn").Pool(args.workers, _init_worker, (args.threads,))
            results = pool.imap_unordered(_train, tasks)
        try:
            for row in results:
                log.write(json.dumps(row) + "\n")
                log.flush()
                os.fsync(log.fileno())
                done[(row["key"], row["seed"])] = row
                bar.update(1)
        finally:
            bar.close()
            if pool is not None:
                pool.terminate()
    wall = time.perf_counter() - start

    import torch

    build = {
        "workers": args.workers,
        "torch": torch.__version__,
        "machine": f"{platform.system()} {platform.machine()} {os.cpu_count()} cpu",
        "train_seconds": round(sum(r["seconds"] for r in done.values()), 1),
    }
    count = write_table(out, protocol, seeds, keys, done, build)
    print(f"trained {len(tasks)} in {wall:.0f} s; wrote {count} records to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
