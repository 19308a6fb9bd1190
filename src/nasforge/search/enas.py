"""ENAS (Pham et al., 2018), micro search, adapted to the DARTS cell space.

The original (docs/zoo.md, ENAS) samples 5-node cells in its own 5-op space; here an LSTM
controller samples DARTS cells of the search network (``search.nodes`` intermediate nodes,
the space's ops without ``none``) and the one-shot model is the DARTS super-network run
sparsely: a sampled architecture is a 0/1 weight tensor [E, K] per cell type, and with
``sparse = True`` only the one chosen op of each chosen edge is computed and trained.

**Controller** (as ``micro_controller.py``): a 1-layer LSTM of ``controller_hidden`` units,
every parameter initialised U(−0.1, 0.1). Per cell type, two LSTM steps from the learned
start embedding give the keys of the two cell inputs (whose anchors, the next inputs after
picking them, are zeros). Then for each intermediate node, in order:

- two input steps: attention over the previous nodes, logits = c·tanh(v·tanh(W₁h_j + W₂h)/T),
  c = ``tanh_constant``, T = ``controller_temperature`` (1); the chosen node's anchor is the
  next LSTM input;
- two op steps, one per chosen input (in the same order): logits = (c / r)·tanh((W h + b)/T)
  over the non-``none`` ops, r = ``op_tanh_reduce`` (2.5); the chosen op's embedding is the
  next input;
- one more step on that embedding gives the node's anchor h_j and key W₁h_j.

The reduce cell continues the LSTM state of the normal cell. As in ENAS the op bias b starts
at 10 for the two separable convolutions (ENAS's first two ops, sep3 and sep5; here
``sep_conv_3x3`` and ``sep_conv_5x5`` where the space has them, else 0), and the normal cell
adds the fixed bias +0.25 to those ops and −0.25 to the others.

**Adaptations.** (1) The two inputs of a node are distinct: the second pick is over the
remaining previous nodes (ENAS may pick one node twice); for the first node only one remains,
so that pick is forced. (2) One op per chosen edge, and the cell output concatenates every
intermediate node (the DARTS cell) instead of ENAS's unused nodes. (3) The shared-weight child
is the DARTS super-network with its search settings (no auxiliary head, no drop-path), and
its weight step is the loop's: one freshly sampled architecture per minibatch, as in ENAS.

**REINFORCE.** R = accuracy (a fraction) of the sampled child on the architecture batch +
``entropy_weight``·(entropy of all the sampling distributions, no gradient); the baseline
b ← b − (1 − ``baseline_decay``)(b − R) is updated first, then loss = −log π·(R − b). The
optimiser is Adam(``controller_lr``) with ENAS's β₁ = 0 and ε = 1e-3 (its ``get_train_ops``).
Deviation: ENAS alternates a whole epoch of shared-weight training with 30 controller steps of
10 aggregated samples; here every minibatch makes one controller update from one sample (the
loop's architecture step) before its weight step.

**Determinism.** Samples come from a private CPU generator seeded with (seed + draws); the base
seed and the draw counter are saved in the state dict (like BtNAS's), the baseline is a
buffer, so a resumed run samples what an uninterrupted one does.

**Outputs.** ``op_weights()`` is the most recently sampled architecture (the greedy one
before any sample). The validation accuracy the loop logs is the greedy architecture's (every
choice the most probable one), and ``strengths()`` are deterministic too: on the two chosen
edges of each node of the greedy architecture, p(edge)·p(op) with p(edge) the attention
probability of the greedy pick and p(op) its op distribution; every other entry 0. The
``argmax`` rule therefore derives exactly the greedy architecture. ENAS itself picks its final
cell as the best of several samples on a validation minibatch; greedy decoding is the
deterministic stand-in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.config import ENASOptions, SearchConfig
from nasforge.distributed import current
from nasforge.errors import NasforgeError
from nasforge.search.base import CELL_TYPES, STRATEGIES, SearchStrategy, StepContext
from nasforge.search.sampling import DrawStream
from nasforge.spaces.darts.genotype import cell_edges
from nasforge.spaces.darts.search_network import SearchNetwork

OP_BIAS_INIT = 10.0
"""ENAS's initial op bias for its first two ops (the separable convolutions)."""
NORMAL_OP_BIAS = 0.25
"""ENAS's fixed extra normal-cell op bias: +0.25 for those ops, −0.25 for the rest."""
FAVOURED_OPS = ("sep_conv_3x3", "sep_conv_5x5")
INIT_RANGE = 0.1

Choice = tuple[int, int, int, int]
"""One node: (first input, its op, second input, its op); ops index the primitives."""


@dataclass
class Sample:
    """A walk of the controller through both cells."""

    arch: dict[str, list[Choice]]
    log_prob: Tensor
    entropy: Tensor
    strengths: dict[str, Tensor] = field(default_factory=dict)


# pick(logits) -> chosen index into logits
Picker = Callable[[Tensor], int]


@STRATEGIES.register("enas")
class ENAS(DrawStream, SearchStrategy):
    """An LSTM controller over DARTS cells, trained by REINFORCE on shared weights."""

    options = (ENASOptions,)

    sparse = True

    def __init__(self, network: SearchNetwork, cfg: SearchConfig) -> None:
        super().__init__(network, cfg)
        self.op_ids = [k for k, p in enumerate(self.primitives) if p != "none"]
        if not self.op_ids:
            raise NasforgeError("enas needs an op other than 'none'")
        self.edge_index = {edge: e for e, edge in enumerate(cell_edges(self.nodes))}
        self._build_controller(len(self.op_ids))
        favoured = torch.tensor([self.primitives[k] in FAVOURED_OPS for k in self.op_ids])
        with torch.no_grad():
            self.w_soft.bias.copy_(OP_BIAS_INIT * favoured.float())
        self.register_buffer("normal_bias", NORMAL_OP_BIAS * (2 * favoured.float() - 1))

    def _build_controller(self, n_ops: int) -> None:
        """The LSTM, embeddings and attention of ENAS's micro controller over ``n_ops`` ops
        (uniform ±0.1 init, op bias 0), the REINFORCE baseline and the sampling seed."""
        H = self.cfg.controller_hidden
        self.lstm = nn.LSTMCell(H, H)
        self.g_emb = nn.Parameter(torch.empty(1, H))
        self.w_emb = nn.Parameter(torch.empty(n_ops, H))
        self.w_attn_1 = nn.Linear(H, H, bias=False)
        self.w_attn_2 = nn.Linear(H, H, bias=False)
        self.v_attn = nn.Linear(H, 1, bias=False)
        self.w_soft = nn.Linear(H, n_ops)
        for p in self.parameters():
            nn.init.uniform_(p, -INIT_RANGE, INIT_RANGE)
        with torch.no_grad():
            self.w_soft.bias.zero_()
        self.register_buffer("baseline", torch.zeros(()))
        self.start_stream()
        self._last: dict[str, Tensor] | None = None

    # ----------------------------------------------------------------------- the controller

    def walk(self, pick: Picker) -> Sample:
        """Run the controller through both cells, choosing with ``pick``.

        Always in float32, even inside the loop's autocast (the evaluation calls
        ``eval_weights()`` there), so greedy choices do not depend on the precision.
        """
        with torch.autocast(self.g_emb.device.type, enabled=False):
            return self._walk(pick)

    def _walk(self, pick: Picker) -> Sample:
        H = self.cfg.controller_hidden
        c_const = self.cfg.tanh_constant
        op_const = c_const / self.cfg.op_tanh_reduce
        temp = self.cfg.controller_temperature
        dev = self.g_emb.device
        h = torch.zeros(1, H, device=dev)
        c = torch.zeros(1, H, device=dev)
        log_prob = torch.zeros((), device=dev)
        entropy = torch.zeros((), device=dev)
        arch: dict[str, list[Choice]] = {}
        strengths: dict[str, Tensor] = {}

        def choose(logits: Tensor) -> tuple[int, Tensor]:
            nonlocal log_prob, entropy
            logp = F.log_softmax(logits.float(), dim=-1)
            k = pick(logits)
            log_prob = log_prob + logp[k]
            entropy = entropy - (logp.exp() * logp).sum().detach()
            return k, logp.detach().exp()

        for cell in CELL_TYPES:
            x = self.g_emb
            anchors, keys = [], []
            for _ in range(2):  # the two cell inputs
                h, c = self.lstm(x, (h, c))
                anchors.append(torch.zeros_like(h))
                keys.append(self.w_attn_1(h))
            rows = torch.zeros(self.num_edges, len(self.primitives), device=dev)
            choices: list[Choice] = []
            for node in range(2, 2 + self.nodes):
                inputs, p_inputs = [], []
                for _ in range(2):
                    h, c = self.lstm(x, (h, c))
                    rest = [i for i in range(node) if i not in inputs]
                    query = torch.tanh(torch.cat([keys[i] for i in rest]) + self.w_attn_2(h))
                    logits = c_const * torch.tanh(self.v_attn(query).view(-1) / temp)
                    k, probs = choose(logits)
                    inputs.append(rest[k])
                    p_inputs.append(probs[k])
                    x = anchors[rest[k]]
                ops = []
                for slot in range(2):
                    h, c = self.lstm(x, (h, c))
                    logits = op_const * torch.tanh(self.w_soft(h).view(-1) / temp)
                    if cell == "normal":
                        logits = logits + self.normal_bias
                    k, probs = choose(logits)
                    ops.append(self.op_ids[k])
                    rows[self.edge_index[(inputs[slot], node)], self.op_ids] = (
                        p_inputs[slot] * probs)
                    x = self.w_emb[k][None]
                h, c = self.lstm(x, (h, c))
                anchors.append(h)
                keys.append(self.w_attn_1(h))
                x = self.g_emb
                choices.append((inputs[0], ops[0], inputs[1], ops[1]))
            arch[cell] = choices
            strengths[cell] = rows
        return Sample(arch, log_prob, entropy, strengths)

    def sample(self) -> Sample:
        """Draw an architecture (with the log-prob's graph); advances the draw counter."""
        gen = self.generator()

        def pick(logits: Tensor) -> int:
            probs = F.softmax(logits.detach().float(), dim=-1).cpu()
            return int(torch.multinomial(probs, 1, generator=gen))

        return self.walk(pick)

    def greedy(self) -> Sample:
        """The most probable choice at every step (no randomness)."""
        return self.walk(lambda logits: int(logits.detach().argmax()))

    def log_prob_of(self, arch: dict[str, list[Choice]]) -> Tensor:
        """log π(arch), by running the controller on the given choices (teacher forcing)."""
        forced = iter([v for cell in CELL_TYPES for node, ch in enumerate(arch[cell], 2)
                       for v in self._step_indices(node, ch)])
        return self.walk(lambda logits: next(forced)).log_prob

    def _step_indices(self, node: int, choice: Choice) -> list[int]:
        """The indices ``pick`` returns for one node's four steps."""
        i1, o1, i2, o2 = choice
        rest = [i for i in range(node) if i != i1]
        return [i1, rest.index(i2), self.op_ids.index(o1), self.op_ids.index(o2)]

    def arch_weights(self, arch: dict[str, list[Choice]]) -> dict[str, Tensor]:
        """The 0/1 [E, K] weights of an architecture: one op on each chosen edge."""
        out = {}
        for cell, choices in arch.items():
            w = torch.zeros(self.num_edges, len(self.primitives))
            for node, (i1, o1, i2, o2) in enumerate(choices, 2):
                w[self.edge_index[(i1, node)], o1] = 1.0
                w[self.edge_index[(i2, node)], o2] = 1.0
            out[cell] = w.to(self.g_emb.device)
        return out

    # ----------------------------------------------------------------- strategy interface

    def op_weights(self) -> dict[str, Tensor]:
        if self._last is None:
            with torch.no_grad():
                return self.arch_weights(self.greedy().arch)
        return self._last

    def weight_step_weights(self, network: SearchNetwork, batch_w: tuple,
                            ctx: StepContext) -> dict[str, Tensor]:
        """One freshly sampled architecture per minibatch."""
        with torch.no_grad():
            self._last = self.arch_weights(self.sample().arch)
        return self._last

    def eval_weights(self) -> dict[str, Tensor]:
        with torch.no_grad():
            return self.arch_weights(self.greedy().arch)

    def strengths(self) -> dict[str, Tensor]:
        with torch.no_grad():
            return {c: s.float().cpu() for c, s in self.greedy().strengths.items()}

    def make_arch_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.arch_parameters(), lr=self.cfg.controller_lr,
                                betas=(0.0, 0.999), eps=1e-3)

    def reinforce(self, sample: Sample, accuracy: Tensor | float,
                  optimizer: torch.optim.Optimizer) -> Tensor:
        """One REINFORCE update for ``sample`` with reward ``accuracy`` + entropy bonus."""
        reward = torch.as_tensor(accuracy, dtype=torch.float32, device=self.baseline.device)
        reward = reward + self.cfg.entropy_weight * sample.entropy
        with torch.no_grad():
            self.baseline.sub_((1 - self.cfg.baseline_decay) * (self.baseline - reward))
        loss = -sample.log_prob * (reward - self.baseline).detach()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def arch_step(self, network: SearchNetwork, batch_w: tuple, batch_a: tuple,
                  optimizer: torch.optim.Optimizer, ctx: StepContext) -> None:
        """Sample a child, reward it with its accuracy on the architecture batch (over all
        ranks' parts of it when data-parallel, so every rank's controller takes one step)."""
        sample = self.sample()
        self._last = {k: v.detach() for k, v in self.arch_weights(sample.arch).items()}
        x, y = batch_a
        with torch.no_grad(), ctx.autocast():
            logits = network(x, self._last)
        accuracy = current().average_([(logits.argmax(1) == y).float().mean()], len(y))[0]
        self.reinforce(sample, accuracy, optimizer)
