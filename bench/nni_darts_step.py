"""Time one DARTS search step on NNI's DARTS super-network (run by bench_step.py).

Runs under a Python that has NNI 3.x (it does not import nasforge, so NNI may live in a
venv of its own), builds NNI's DARTS model space (``nni.nas.hub.pytorch.DARTS``) at the
given width and cell count, turns it into the DARTS super-network with
``nni.nas.strategy.DARTS().mutate_model`` and times the step of NNI's
``DartsLightningModule.training_step`` without the Lightning trainer around it:
architecture step (``loss.backward()``, Adam 3e-4, betas (0.5, 0.999), wd 1e-3 as NNI
sets it), then weight step (SGD 0.025, momentum 0.9, wd 3e-4, gradient-norm clip 5).
Prints one JSON line: ``{"step_s": ..., "weights": ..., "arch": ...}``.

    python bench/nni_darts_step.py --channels 16 --layers 8 --batch 64 --resolution 32
"""

from __future__ import annotations

import argparse
import json
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("channels", 16), ("layers", 8), ("batch", 64), ("resolution", 32),
                          ("steps", 3), ("warmup", 1), ("threads", 0)):
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch
    import torch.nn.functional as F
    from nni.nas.hub.pytorch import DARTS as DartsSpace
    from nni.nas.strategy import DARTS

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    network = DARTS().mutate_model(DartsSpace(width=args.channels, num_cells=args.layers,
                                              dataset="cifar"))
    arch = {id(p): p for m in network.modules() if hasattr(m, "arch_parameters")
            for p in m.arch_parameters()}
    weights = [p for p in network.parameters() if id(p) not in arch]
    a_opt = torch.optim.Adam(list(arch.values()), 3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    w_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    data = [(torch.randn(args.batch, 3, args.resolution, args.resolution),
             torch.randint(0, 10, (args.batch,))) for _ in range(4)]
    network.train()

    def step(i: int) -> None:
        (xw, yw), (xa, ya) = data[(2 * i) % 4], data[(2 * i + 1) % 4]
        a_opt.zero_grad()
        F.cross_entropy(network(xa), ya).backward()
        a_opt.step()
        w_opt.zero_grad()
        F.cross_entropy(network(xw), yw).backward()
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        w_opt.step()

    for i in range(args.warmup):
        step(i)
    start = time.perf_counter()
    for i in range(args.steps):
        step(args.warmup + i)
    step_s = (time.perf_counter() - start) / args.steps
    print(json.dumps({"step_s": step_s, "weights": sum(p.numel() for p in weights),
                      "arch": sum(p.numel() for p in arch.values()),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
