"""The batched formulation of a search cell: all edges leaving one state computed together.

The plain formulation (:class:`~nasforge.spaces.darts.search_network.MixedOp`) runs every
candidate op of every edge on its own: about 100 small kernels per cell. Here the edges that
leave one state are computed at once, reading the very same parameters and BatchNorm
buffers of the per-edge ops (so the state dict, the optimiser and the checkpoints are those
of the plain network, and the two formulations can be switched at any time):

- one ReLU of the state, shared by every conv op and factorized skip of those edges;
- the first depthwise stage of every separable/dilated conv of those edges as one grouped
  convolution per primitive (the state repeated once per edge, ``groups = edges·C``);
- every pointwise stage that follows as one grouped 1×1 convolution, then one BatchNorm over
  the concatenated channels (the per-op running statistics are gathered, updated by the one
  call and written back);
- the second (ReLU, depthwise, pointwise, BN) unit of the separable convs likewise;
- max/avg pooling once per state (their BatchNorms batched as above);
- the op weights applied per primitive to all its edges in one multiplication, and the
  edges' sums formed by one ``index_add``.

Sparse weights (only ``active`` ops run), per-edge op sets (space S1), ``noise`` (drawn in
the plain formulation's order) and PC-DARTS's partial-channel mixed ops are handled; the
result equals the plain formulation's up to float rounding (tests/spaces/darts/
test_batched_ops.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.spaces.darts.ops import DilConv, FactorizedReduce, Noise, SepConv, Zero

__all__ = ["batched_cell_forward"]


def batched_cell_forward(cell: nn.Module, s0: Tensor, s1: Tensor, weights: Tensor,
                         active: list[list[int]] | None = None) -> Tensor:
    """The output of ``cell`` (a ``SearchCell``) computed state by state; see the module."""
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    noise = _draw_noise(cell, states[1], active)
    nodes: dict[int, Tensor] = {}
    for i in range(2 + cell.nodes - 1):  # the last node feeds no edge
        if i >= 2:
            states.append(nodes.pop(i, None) if i in nodes else cell._zeros(states[1]))
        leaving = [e for e, (a, _) in enumerate(cell.edges) if a == i]
        terms = _edges_from_state(cell, states[i], leaving, weights, active, noise)
        for e, term in zip(leaving, terms, strict=True):
            if term is not None:
                j = cell.edges[e][1]
                nodes[j] = term if j not in nodes else nodes[j] + term
    last = 2 + cell.nodes - 1
    states.append(nodes.pop(last) if last in nodes else cell._zeros(states[1]))
    return torch.cat(states[2:], dim=1)


def _draw_noise(cell: nn.Module, like: Tensor, active: list[list[int]] | None
                ) -> dict[int, Tensor]:
    """Noise terms of every running ``noise`` op, drawn in the plain formulation's order."""
    out = {}
    # the shape a node has (halved in reduction cells); a noise op only reads x's shape
    node_like = like[..., ::2, ::2] if cell.reduction else like
    for e, op in enumerate(cell.ops):
        for k in op.allowed if active is None else active[e]:
            slot = op._slot.get(k)
            if slot is not None and isinstance(op.ops[slot], Noise):
                x = like if cell.edges[e][0] < 2 else node_like
                out[e] = op.ops[slot](_partial_input(op, x))
    return out


def _partial_input(op: nn.Module, x: Tensor) -> Tensor:
    """The channels an edge's candidate ops see (PC-DARTS: the first C/K)."""
    return x[:, : op.C // op.k] if hasattr(op, "bypass_pool") else x


def _edges_from_state(cell: nn.Module, x: Tensor, leaving: Sequence[int], weights: Tensor,
                      active: list[list[int]] | None, noise: dict[int, Tensor]
                      ) -> list[Tensor | None]:
    """The terms of the edges ``leaving`` one state (None where no op of an edge runs)."""
    mixed = [cell.ops[e] for e in leaving]
    runs = [active is None or bool(active[e]) for e in leaving]
    xin = _partial_input(mixed[0], x)
    # primitive index → [(position in leaving, module)] of the ops that run
    groups: dict[int, list[tuple[int, nn.Module]]] = {}
    for p, (e, op) in enumerate(zip(leaving, mixed, strict=True)):
        if not runs[p]:
            continue
        for k in op.allowed if active is None else active[e]:
            slot = op._slot.get(k)
            if slot is None:
                continue
            module = op.ops[slot]
            if isinstance(module, Zero) and active is None:
                continue  # an exactly zero term with an exactly zero gradient
            groups.setdefault(k, []).append((p, module))

    outputs: dict[int, Tensor] = {}  # primitive → [N, m, C, H, W] over its edges
    relu_x: list[Tensor] = []

    def relu() -> Tensor:
        if not relu_x:
            relu_x.append(torch.relu(xin))
        return relu_x[0]

    convs = {k: g for k, g in groups.items() if isinstance(g[0][1], (SepConv, DilConv))}
    if convs:
        outputs.update(_conv_groups(relu(), convs))
    for k, group in groups.items():
        if k in convs:
            continue
        module = group[0][1]
        m = len(group)
        if isinstance(module, nn.Sequential) and isinstance(module[0], (nn.MaxPool2d,
                                                                        nn.AvgPool2d)):
            pooled = module[0](xin)  # the same pooling on every edge: run once
            y = _batch_norm(pooled.repeat(1, m, 1, 1), [mod[1] for _, mod in group])
            outputs[k] = y.unflatten(1, (m, -1))
        elif isinstance(module, nn.Identity):
            outputs[k] = xin.unsqueeze(1).expand(-1, m, -1, -1, -1)
        elif isinstance(module, Zero):
            outputs[k] = module(xin).unsqueeze(1).expand(-1, m, -1, -1, -1)
        elif isinstance(module, FactorizedReduce):
            r = relu()
            outputs[k] = torch.stack([mod(r, activated=True) for _, mod in group], dim=1)
        elif isinstance(module, Noise):
            outputs[k] = torch.stack([noise[leaving[p]] for p, _ in group], dim=1)
        else:  # an op this formulation does not know: run it per edge
            outputs[k] = torch.stack([mod(xin) for _, mod in group], dim=1)

    acc: Tensor | None = None
    has = [False] * len(leaving)
    n = len(leaving)
    for k, y in outputs.items():
        pos = [p for p, _ in groups[k]]
        w = weights[[leaving[p] for p in pos], k].to(y.dtype)
        term = y * w.view(1, -1, 1, 1, 1)
        if len(pos) == n:
            acc = term if acc is None else acc + term
        else:
            if acc is None:
                acc = y.new_zeros(y.shape[0], n, *y.shape[2:])
            acc = acc.index_add(1, torch.tensor(pos, device=y.device), term)
        for p in pos:
            has[p] = True

    out: list[Tensor | None] = []
    for p, (e, op) in enumerate(zip(leaving, mixed, strict=True)):
        term = acc[:, p] if has[p] and acc is not None else None
        if hasattr(op, "bypass_pool") and runs[p]:
            term = _partial_channels(op, x, term, weights[e])
        out.append(term)
    return out


def _partial_channels(op: nn.Module, x: Tensor, processed: Tensor | None, w: Tensor) -> Tensor:
    """PC-DARTS's edge: processed part, scaled bypass, concatenated and channel-shuffled."""
    part = op.C // op.k
    bypass = x[:, part:]
    if op.bypass_pool is not None:
        bypass = op.bypass_pool(bypass)
    if processed is None:
        processed = bypass.new_zeros(bypass.shape[0], part, *bypass.shape[2:])
    y = torch.cat([processed, w.sum() * bypass], dim=1)
    b, c, h, wd = y.shape
    return y.reshape(b, op.k, c // op.k, h, wd).transpose(1, 2).reshape(b, c, h, wd)


def _conv_groups(r: Tensor, convs: dict[int, list[tuple[int, nn.Module]]]
                 ) -> dict[int, Tensor]:
    """Separable and dilated convs of several edges: grouped depthwise and pointwise stages.

    ``r`` is the ReLU-ed state; returns primitive → [N, m, C, H', W'].
    """
    C = r.shape[1]
    # separable convs first, so their part of the pointwise output is one slice
    order = sorted(convs, key=lambda k: not isinstance(convs[k][0][1], SepConv))
    repeated: dict[int, Tensor] = {}
    stage1 = []
    for k in order:
        mods = [mod for _, mod in convs[k]]
        m = len(mods)
        if m not in repeated:
            repeated[m] = r.repeat(1, m, 1, 1) if m > 1 else r
        stage1.append(_depthwise(repeated[m], [mod[1] for mod in mods]))
    y = _pointwise(torch.cat(stage1, dim=1) if len(stage1) > 1 else stage1[0],
                   [mod[2] for k in order for _, mod in convs[k]])
    y = _batch_norm(y, [mod[3] for k in order for _, mod in convs[k]])

    seps = [k for k in order if isinstance(convs[k][0][1], SepConv)]
    out: dict[int, Tensor] = {}
    start = 0
    for k in order:
        if k in seps:
            start += len(convs[k]) * C
            continue
        m = len(convs[k])
        out[k] = y[:, start:start + m * C].unflatten(1, (m, C))
        start += m * C
    if seps:
        n_sep = sum(len(convs[k]) for k in seps)
        z = torch.relu(y[:, : n_sep * C])
        stage2, start = [], 0
        for k in seps:
            m = len(convs[k])
            stage2.append(_depthwise(z[:, start:start + m * C],
                                     [mod[5] for _, mod in convs[k]]))
            start += m * C
        z = _pointwise(torch.cat(stage2, dim=1) if len(stage2) > 1 else stage2[0],
                       [mod[6] for k in seps for _, mod in convs[k]])
        z = _batch_norm(z, [mod[7] for k in seps for _, mod in convs[k]])
        start = 0
        for k in seps:
            m = len(convs[k])
            out[k] = z[:, start:start + m * C].unflatten(1, (m, C))
            start += m * C
    return out


def _cat(tensors: list[Tensor]) -> Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _depthwise(x: Tensor, convs: list[nn.Conv2d]) -> Tensor:
    """Depthwise convs (same geometry) of several edges on their channel blocks of ``x``."""
    c = convs[0]
    return F.conv2d(x, _cat([conv.weight for conv in convs]), None, c.stride, c.padding,
                    c.dilation, x.shape[1])


def _pointwise(x: Tensor, convs: list[nn.Conv2d]) -> Tensor:
    """1×1 convs of several edges, each on its own channel block of ``x``: grouped."""
    return F.conv2d(x, _cat([conv.weight for conv in convs]), None, 1, 0, 1, len(convs))


def _batch_norm(x: Tensor, bns: list[nn.BatchNorm2d]) -> Tensor:
    """The BatchNorms ``bns``, each over its channel block of ``x``, as one call.

    In training mode the running statistics of every module are updated exactly as its own
    forward would (gathered, updated by the call, written back).
    """
    bn = bns[0]
    if len(bns) == 1:
        return bn(x)
    if any(b.momentum is None or b.momentum != bn.momentum or b.eps != bn.eps
           or b.track_running_stats != bn.track_running_stats for b in bns):
        return torch.cat([b(part) for b, part in zip(bns, x.chunk(len(bns), 1), strict=True)],
                         dim=1)
    weight = _cat([b.weight for b in bns]) if bn.affine else None
    bias = _cat([b.bias for b in bns]) if bn.affine else None
    use_batch = bn.training or not bn.track_running_stats
    if not bn.track_running_stats:
        return F.batch_norm(x, None, None, weight, bias, True, bn.momentum, bn.eps)
    mean = torch.cat([b.running_mean for b in bns])
    var = torch.cat([b.running_var for b in bns])
    y = F.batch_norm(x, mean, var, weight, bias, use_batch, bn.momentum, bn.eps)
    if bn.training:
        with torch.no_grad():
            C = bn.num_features
            torch._foreach_copy_([b.running_mean for b in bns], list(mean.split(C)))
            torch._foreach_copy_([b.running_var for b in bns], list(var.split(C)))
            torch._foreach_add_([b.num_batches_tracked for b in bns], 1)
    return y
