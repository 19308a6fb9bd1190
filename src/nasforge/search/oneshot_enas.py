"""ENAS in the NAS-Bench-1shot1 spaces: an LSTM controller that samples NAS-Bench-101 cells.

The controller (as NAS-Bench-1shot1's port of ENAS's micro controller) walks the vertices
in order. One LSTM step on the start embedding gives the cell input's key (anchor zeros).
Then per block vertex v:

- when v's parents are searched, one step and attention over the vertices 0..v−1,
  logits = c·tanh(v·tanh(W₁h_j + W₂h)/T); the parents are drawn one after another without
  replacement (a drawn vertex's logit becomes −inf) and the last one's anchor is the next
  input; fixed parents (SS1's vertex 2, vertex 1 everywhere) cost no step;
- one op step: logits = (c/r)·tanh((W h + b)/T) over the three ops; the op's embedding is
  the next input, and one more step gives the vertex's anchor and key;

and finally one step and attention over 0..B for the output's parents. c, r and T are
``tanh_constant``, ``op_tanh_reduce`` and ``controller_temperature`` (NAS-Bench-1shot1's
port: 2.5, 5 and 5). log π sums the log-probabilities of every draw; the one-shot model
runs sparsely (only the drawn ops, parents and reachable blocks are computed), one freshly
sampled cell per weight minibatch.

**What NAS-Bench-1shot1 runs** (automl/nasbench-1shot1, optimizers/enas; the values are
set in code, not by the argparse defaults of enas.py, which the child never reads):

- REINFORCE reward = the sampled child's top-1 accuracy *in percent* on one batch
  (``utils.accuracy``, enas_child.py line 105) + ``entropy_weight`` 1e-4 × entropy
  (line 14 sets it, line 108 adds it); baseline b ← 0.99·b + 0.01·R from b = 0 (lines 16,
  23, 113), loss = −log π·(R − b);
- controller Adam lr 3.5e-4, betas (0.1, 0.999), eps 1e-3, no weight decay (lines 15,
  34–39); the shared weights' SGD has weight decay 1e-4 (line 17, before the optimiser of
  lines 24–29 reads it), gradient clip 0.25 and batch 64 (enas.py lines 172–173), 100
  epochs (cluster_scripts/search_space_*/baseline_script.sh);
- schedule (enas.py lines 41–49): per epoch a full pass of weight training, then
  ``controller_steps`` = 300 controller updates (enas_child.py line 85), each on one
  architecture batch with the one-shot model in eval mode (BN uses its running statistics,
  line 87), then the cell of the epoch is chosen: ``candidates`` = 1000 samples, each
  scored on one held-out batch, the ``rescore`` = 5 best re-scored on the whole held-out
  set, the best of those wins (enas.py lines 54–96).

With ``search.controller_steps`` = 0 the controller instead takes one update per minibatch
before the weight step (the loop's architecture step), and with ``search.candidates`` = 0
the cell is the greedy one; both keep the reward in percent.

Deviations (docs/zoo.md, NAS-Bench-1shot1): the reward batches come from the architecture
half of the training split and candidates are scored on it (the reference trains on 45K
images, rewards on the last 5K and picks candidates on the CIFAR-10 *test* set); the weight
lr follows the per-epoch cosine (the reference steps its ``epochs``-long cosine every
minibatch, so its lr falls to the minimum and back every 200 steps); a searched vertex's
parents add the exact log-probability of drawing them one after another without
replacement (the reference averages each parent's probability under the unmasked
distribution); and NAS-Bench-1shot1's
port kept ENAS's fixed op biases (+10 and ±0.25 on its first two ops, which in ENAS were the
separable convolutions); they favour max-pooling and the 3×3 convolution for no reason in
this space, so the op bias here starts at 0. Strengths and the logged validation accuracy
are those of the chosen cell (the greedy one without candidates: per searched vertex the
first draw's attention probabilities, per block the op probabilities).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nasforge.config import SearchConfig
from nasforge.distributed import current
from nasforge.search.base import EpochEnd, SearchStrategy, StepContext
from nasforge.search.enas import ENAS, Picker, Sample
from nasforge.search.oneshot import ONESHOT_STRATEGIES
from nasforge.spaces.nb101.network import OneShotNetwork
from nasforge.spaces.nb101.space import NB101_OPS, OneShotArch

CONTROLLER_BETAS = (0.1, 0.999)
"""NAS-Bench-1shot1's controller Adam betas (enas_child.py line 37; ENAS itself: β₁ = 0)."""
CONTROLLER_EPS = 1e-3


@ONESHOT_STRATEGIES.register("enas")
class OneShotENAS(ENAS):
    """An LSTM controller over NAS-Bench-1shot1 cells, trained by REINFORCE."""

    def __init__(self, network: OneShotNetwork, cfg: SearchConfig) -> None:
        SearchStrategy.__init__(self, network, cfg)
        self.space = network.space
        self._build_controller(len(NB101_OPS))
        self.best: OneShotArch | None = None  # the chosen cell (search.candidates > 0)

    def make_arch_optimizer(self) -> torch.optim.Optimizer:
        """NAS-Bench-1shot1's controller optimiser (enas_child.py lines 34–39)."""
        return torch.optim.Adam(self.arch_parameters(), lr=self.cfg.controller_lr,
                                betas=CONTROLLER_BETAS, eps=CONTROLLER_EPS)

    # ------------------------------------------------------------- the reference schedule

    def controller_update(self, network: OneShotNetwork, batch: tuple,
                          optimizer: torch.optim.Optimizer, ctx: StepContext) -> Tensor:
        """One REINFORCE update: a sampled child's accuracy in percent on ``batch`` (over
        every rank's part of it) + the entropy bonus. Returns the reward's accuracy part."""
        sample = self.sample()
        self._last = {k: v.detach() for k, v in self.arch_weights(sample.arch).items()}
        x, y = batch
        with torch.no_grad(), ctx.autocast():
            logits = network(x, self._last)
        accuracy = 100.0 * current().average_([(logits.argmax(1) == y).float().mean()],
                                              len(y))[0]
        self.reinforce(sample, accuracy, optimizer)
        return accuracy

    def arch_step(self, network: OneShotNetwork, batch_w: tuple, batch_a: tuple,
                  optimizer: torch.optim.Optimizer, ctx: StepContext) -> None:
        """Per minibatch only with ``search.controller_steps`` = 0; otherwise the controller
        trains after the epoch (:meth:`end_epoch`)."""
        if self.cfg.controller_steps == 0:
            self.controller_update(network, batch_a, optimizer, ctx)

    def end_epoch(self, end: EpochEnd) -> None:
        """The controller phase (BN in eval mode), then the epoch's cell by candidates."""
        network = end.network
        training = network.training
        if self.cfg.controller_steps:
            network.eval()  # enas_child.py line 87: BN uses its running statistics
            for _, batch in zip(range(self.cfg.controller_steps), end.arch_batches,
                                strict=False):
                self.controller_update(network, batch, end.optimizer, end.ctx)
        if self.cfg.candidates:
            network.eval()
            self.best = self.pick_best(end)
        network.train(training)

    @torch.no_grad()
    def pick_best(self, end: EpochEnd) -> OneShotArch:
        """enas.py's ``get_eval_arch``: ``candidates`` samples, each scored on the next
        held-out batch; the ``rescore`` best (ties: the earlier sample) re-scored on the
        whole held-out split; the best of those (ties: the better first score)."""
        stream = end.score_batches()
        archs, correct, counts = [], [], []
        for _ in range(self.cfg.candidates):
            arch = self.sample().arch
            x, y = next(stream)
            with end.ctx.autocast():
                logits = end.network(x, self.arch_weights(arch))
            archs.append(arch)
            correct.append((logits.argmax(1) == y).sum().double())
            counts.append(float(len(y)))
        dist = current()
        correct_t, counts_t = dist.sum_([torch.stack(correct),
                                         torch.tensor(counts, dtype=torch.float64,
                                                      device=correct[0].device)])
        scores = (correct_t / counts_t.clamp(min=1)).tolist()  # one host read
        order = sorted(range(len(archs)), key=lambda i: (-scores[i], i))
        finalists = order[:self.cfg.rescore]
        full = [end.evaluate(self.arch_weights(archs[i])) for i in finalists]
        best = max(range(len(finalists)), key=lambda j: (full[j], -j))
        return archs[finalists[best]]

    def _walk(self, pick: Picker) -> Sample:
        cfg, space = self.cfg, self.space
        B, H = space.blocks, cfg.controller_hidden
        c_attn, temp = cfg.tanh_constant, cfg.controller_temperature
        c_op = c_attn / cfg.op_tanh_reduce
        dev = self.g_emb.device
        h = torch.zeros(1, H, device=dev)
        c = torch.zeros(1, H, device=dev)
        log_prob = torch.zeros((), device=dev)
        entropy = torch.zeros((), device=dev)
        strengths = {"ops": torch.zeros(B, len(NB101_OPS), device=dev),
                     "inputs": torch.zeros(B, B, device=dev),
                     "output": torch.zeros(1, B + 1, device=dev)}

        def choose(logits: Tensor) -> int:
            nonlocal log_prob, entropy
            logp = F.log_softmax(logits.float(), dim=-1)
            k = pick(logits)
            log_prob = log_prob + logp[k]
            p = logp.exp()
            entropy = entropy - (p * logp.masked_fill(p == 0, 0.0)).sum().detach()
            return k

        def draw_parents(count: int) -> tuple[list[int], Tensor]:
            logits = c_attn * torch.tanh(
                self.v_attn(torch.tanh(torch.cat(keys) + self.w_attn_2(h))).view(-1) / temp)
            first = F.softmax(logits.detach().float(), dim=-1)
            chosen: list[int] = []
            for _ in range(count):
                masked = logits.clone()
                masked[chosen] = float("-inf")
                chosen.append(choose(masked))
            return chosen, first

        x = self.g_emb
        h, c = self.lstm(x, (h, c))
        anchors, keys = [torch.zeros_like(h)], [self.w_attn_1(h)]
        ops, parents = [], []
        for v in range(1, B + 1):
            if space.searched(v):
                h, c = self.lstm(x, (h, c))
                chosen, first = draw_parents(space.parents[v - 1])
                strengths["inputs"][v - 1, :v] = first
                x = anchors[chosen[-1]]
            else:
                chosen = list(space.fixed_parents(v))
                strengths["inputs"][v - 1, chosen] = 1.0
            parents.append(tuple(sorted(chosen)))
            h, c = self.lstm(x, (h, c))
            logits = c_op * torch.tanh(self.w_soft(h).view(-1) / temp)
            k = choose(logits)
            strengths["ops"][v - 1] = F.softmax(logits.detach().float(), dim=-1)
            ops.append(NB101_OPS[k])
            h, c = self.lstm(self.w_emb[k][None], (h, c))
            anchors.append(h)
            keys.append(self.w_attn_1(h))
            x = self.g_emb
        h, c = self.lstm(x, (h, c))
        out, first = draw_parents(space.output_parents)
        strengths["output"][0] = first
        arch = OneShotArch(tuple(ops), tuple(parents), tuple(sorted(out)))
        return Sample(arch, log_prob, entropy, strengths)

    def log_prob_of(self, arch: OneShotArch) -> Tensor:
        """log π(arch) with every parent set drawn in ascending order (teacher forcing)."""
        forced: list[int] = []
        for v, (op, parents) in enumerate(zip(arch.ops, arch.parents, strict=True), 1):
            if self.space.searched(v):
                forced.extend(parents)
            forced.append(NB101_OPS.index(op))
        forced.extend(arch.output)
        it = iter(forced)
        return self.walk(lambda logits: next(it)).log_prob

    def eval_weights(self) -> dict[str, Tensor]:
        if self.best is not None:
            return self.arch_weights(self.best)
        return super().eval_weights()

    def strengths(self) -> dict[str, Tensor]:
        """The chosen cell's 0/1 weights (the discretisation returns it), else the greedy
        cell's probabilities."""
        if self.best is not None:
            return {k: v.float().cpu() for k, v in self.arch_weights(self.best).items()}
        return super().strengths()

    def get_extra_state(self) -> dict:
        state: dict = super().get_extra_state()
        if self.best is not None:
            state["best"] = {"ops": list(self.best.ops),
                             "parents": [list(p) for p in self.best.parents],
                             "output": list(self.best.output)}
        return state

    def set_extra_state(self, state: dict) -> None:
        super().set_extra_state(state)
        best = state.get("best")
        self.best = None if best is None else OneShotArch(
            tuple(best["ops"]), tuple(tuple(p) for p in best["parents"]), tuple(best["output"]))

    def arch_weights(self, arch: OneShotArch) -> dict[str, Tensor]:
        """The 0/1 weights of one cell: its ops, its parents and the output's parents."""
        B = self.space.blocks
        w = {"ops": torch.zeros(B, len(NB101_OPS)), "inputs": torch.zeros(B, B),
             "output": torch.zeros(1, B + 1)}  # filled on the host, moved in one copy each
        for b, (op, parents) in enumerate(zip(arch.ops, arch.parents, strict=True)):
            w["ops"][b, NB101_OPS.index(op)] = 1.0
            w["inputs"][b, list(parents)] = 1.0
        w["output"][0, list(arch.output)] = 1.0
        return {k: v.to(self.g_emb.device) for k, v in w.items()}
