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
port: 2.5, 5 and 5). log π sums the log-probabilities of every draw; training is
:class:`~nasforge.search.enas.ENAS`'s REINFORCE step with the sampled child's accuracy on
the architecture batch as reward, one sample per minibatch, and the one-shot model runs
sparsely (only the drawn ops, parents and reachable blocks are computed).

Deviation: NAS-Bench-1shot1's port kept ENAS's fixed op biases (+10 and ±0.25 on its
first two ops, which in ENAS were the separable convolutions); they favour max-pooling and
the 3×3 convolution for no reason in this space, so the op bias here starts at 0. Strengths
and the logged validation accuracy are those of the greedy architecture: per searched
vertex the first draw's attention probabilities (their top-k is the greedy parent set), per
block the op probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nasforge.config import SearchConfig
from nasforge.search.base import SearchStrategy
from nasforge.search.enas import ENAS, Picker, Sample
from nasforge.search.oneshot import ONESHOT_STRATEGIES
from nasforge.spaces.nb101.network import OneShotNetwork
from nasforge.spaces.nb101.space import NB101_OPS, OneShotArch


@ONESHOT_STRATEGIES.register("enas")
class OneShotENAS(ENAS):
    """An LSTM controller over NAS-Bench-1shot1 cells, trained by REINFORCE."""

    def __init__(self, network: OneShotNetwork, cfg: SearchConfig) -> None:
        SearchStrategy.__init__(self, network, cfg)
        self.space = network.space
        self._build_controller(len(NB101_OPS))

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
