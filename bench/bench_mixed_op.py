"""DARTS search step: the plain and the batched mixed-op formulation, timed in the same run.

One step = one first-order architecture step + one weight step (SGD, clip 5) on random data,
as ``nasforge bench step`` times it (``nasforge.benchmarks.step``). Rows, interleaved round by
round so a busy machine hurts every row alike: ``plain`` and ``batched`` DARTS in NCHW and
(``--channels-last``) channels_last, and the same two formulations for PC-DARTS and GDAS
(``--algos``). Prints the median wall time and the median process CPU time (user + system
of this process, less sensitive to other jobs on a shared machine) per step, and the ratios
plain / batched measured in the same run; makes no assertions.

    .venv/bin/python bench/bench_mixed_op.py [--resolution 16] [--rounds 3] [--threads 2]
        [--algos darts,pcdarts,gdas] [--channels-last] [--device cuda] [--amp bf16]

On CUDA each row also prints its peak memory per step (MiB above what was allocated before
the step), for issue 16's "memory no worse" check. On a Linux CPU ``--memory`` measures the
same in a fresh process per row: the resident set's peak during the row's first step above
the resident set before it (``/proc/self/status``; the peak is reset first).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from nasforge.benchmarks.step import SearchStep


def time_steps(run: SearchStep, steps: int, start: int) -> tuple[float, float, float]:
    """Wall and process-CPU seconds per step, and (CUDA) the step's peak memory in MiB
    above what was allocated before it (its activations and temporaries)."""
    run.synchronize()
    cuda = run.device.type == "cuda"
    if cuda:
        before = torch.cuda.memory_allocated(run.device)
        torch.cuda.reset_peak_memory_stats(run.device)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        run.step(start + i)
    run.synchronize()
    peak = (torch.cuda.max_memory_allocated(run.device) - before) / 2**20 if cuda else 0.0
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps, peak


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def row_peak_mib(args: argparse.Namespace, algo: str, mode: str, channels_last: bool) -> float:
    """Peak resident MiB of one first step above the resident set before it (this process
    builds only this row's network)."""
    run = SearchStep(algo, args.channels, args.layers, args.batch, args.resolution, "cpu",
                     channels_last=channels_last, mixed_op=mode, amp=args.amp)
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so the baseline is real
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    run.step(0)
    return (_status_kib("VmHWM") - before) / 1024


def cpu_peaks(args: argparse.Namespace, names: list[str]) -> dict[str, float]:
    """``row_peak_mib`` of every row, each in a fresh interpreter."""
    peaks = {}
    for name in names:
        cmd = [sys.executable, __file__, "--peak-of", name, "--channels", str(args.channels),
               "--layers", str(args.layers), "--batch", str(args.batch), "--resolution",
               str(args.resolution), "--threads", str(args.threads), "--amp", args.amp]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        peaks[name] = json.loads(res.stdout.strip().splitlines()[-1])["peak_mib"]
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="auto",
                        help="autocast precision of every row (auto: bf16 on CUDA, off on CPU)")
    parser.add_argument("--algos", default="darts")
    parser.add_argument("--channels-last", action="store_true",
                        help="also time both formulations in channels_last")
    parser.add_argument("--memory", action="store_true",
                        help="CPU (Linux): each row's peak resident memory of one step, "
                             "measured in a fresh process")
    parser.add_argument("--peak-of", metavar="ROW", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.peak_of:  # a child of --memory: one row's peak, as JSON
        algo, mode, layout = args.peak_of.split(", ")
        print(json.dumps({"peak_mib": row_peak_mib(args, algo, mode,
                                                   layout == "channels_last")}))
        return
    layouts = [False, True] if args.channels_last else [False]
    runs: dict[str, SearchStep] = {}
    for algo in args.algos.split(","):
        for cl in layouts:
            for mode in ("plain", "batched"):
                name = f"{algo}, {mode}, {'channels_last' if cl else 'NCHW'}"
                runs[name] = SearchStep(algo, args.channels, args.layers, args.batch,
                                        args.resolution, args.device, channels_last=cl,
                                        mixed_op=mode, amp=args.amp)
                runs[name].step(0)  # warm-up
    walls: dict[str, list[float]] = {n: [] for n in runs}
    cpus: dict[str, list[float]] = {n: [] for n in runs}
    peaks: dict[str, float] = {n: 0.0 for n in runs}
    for r in range(args.rounds):
        for name, run in runs.items():
            wall, cpu, peak = time_steps(run, args.steps, 1 + r * args.steps)
            walls[name].append(wall)
            cpus[name].append(cpu)
            peaks[name] = max(peaks[name], peak)
    first = next(iter(runs.values()))
    cuda = first.device.type == "cuda"
    if args.memory and not cuda:
        peaks = cpu_peaks(args, list(runs))
    print(f"search step (first order), C={args.channels}, {args.layers} cells, batch "
          f"{args.batch}, {args.resolution}x{args.resolution}, {args.device}, "
          f"{first.dtype or 'fp32'}, torch {torch.__version__}, {args.threads} threads, "
          f"{args.rounds} round(s) of {args.steps} step(s); wall and CPU s/step: median (min)")
    show_peak = cuda or args.memory
    print(f"{'row':<34}{'wall s':>9}{'(min)':>8}{'cpu s':>9}{'(min)':>8}{'img/s':>9}"
          f"{'x plain wall':>13}{'x plain cpu':>12}" + (f"{'peak MiB':>10}" if show_peak else ""))
    for name in runs:
        algo, mode, layout = name.split(", ")
        base = f"{algo}, plain, NCHW"
        w, c = statistics.median(walls[name]), statistics.median(cpus[name])
        wb, cb = statistics.median(walls[base]), statistics.median(cpus[base])
        print(f"{name:<34}{w:>9.3f}{min(walls[name]):>8.3f}{c:>9.3f}{min(cpus[name]):>8.3f}"
              f"{args.batch / w:>9.0f}{wb / w:>13.2f}{cb / c:>12.2f}"
              + (f"{peaks[name]:>10.0f}" if show_peak else ""))
    # the same-round ratios, so a slow round does not favour one row
    for algo in args.algos.split(","):
        for layout in ("NCHW", "channels_last") if args.channels_last else ("NCHW",):
            p, b = f"{algo}, plain, {layout}", f"{algo}, batched, {layout}"
            ratios = [x / y for x, y in zip(walls[p], walls[b], strict=True)]
            print(f"{algo} {layout}: plain/batched wall per round "
                  f"{', '.join(f'{x:.2f}' for x in ratios)} (min {min(ratios):.2f}, median "
                  f"{statistics.median(ratios):.2f})")


if __name__ == "__main__":
    main()
