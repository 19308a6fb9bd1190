"""`nasforge bench step`, the bench/ baselines it is compared against, and the fast paths of
the DARTS super-network (shared ReLU, skipped `none`) that must not change what it computes."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import run_cli
from nasforge.benchmarks.step import SearchStep, time_search_step
from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import PRIMITIVES
from nasforge.spaces.darts.search_network import MixedOp, SearchNetwork

BENCH = Path(__file__).resolve().parents[2] / "bench"
TINY = dict(channels=4, layers=3, nodes=2, batch=4, resolution=8)


def bench_module(name: str):
    """A script of bench/ imported by path (bench/ is not a package)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the scripts import their siblings
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_search_step_returns_consistent_numbers(one_thread):
    r = time_search_step(**TINY, steps=2, warmup=1, threads=1, device="cpu")
    assert r["step_s"] > 0 and math.isfinite(r["step_s"])
    assert r["imgs_per_s"] == pytest.approx(TINY["batch"] / r["step_s"])
    assert (r["algo"], r["device"], r["amp"], r["threads"], r["steps"]) == (
        "darts", "cpu", "fp32", 1, 2)
    assert r["channels_last"] is True and r["compile"] is False  # the search's CPU layout
    forced = time_search_step(**TINY, steps=1, warmup=0, threads=1, device="cpu",
                              channels_last=False)
    assert forced["channels_last"] is False and forced["step_s"] > 0


@pytest.mark.parametrize("algo", ["gdas", "pcdarts", "ecodarts"])
def test_other_strategies_step(algo, one_thread):
    """Sparse (GDAS), partial-channel (PC-DARTS) and reduced-resolution (EcoDARTS) steps."""
    r = time_search_step(algo, 8, 3, 4, 16, steps=1, warmup=1, nodes=2, device="cpu")
    assert r["step_s"] > 0


def test_threads_are_restored(one_thread):
    before = torch.get_num_threads()
    time_search_step(**TINY, steps=1, warmup=0, threads=2, device="cpu")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch=0), "batch"), (dict(steps=0), "steps"), (dict(threads=0), "threads"),
    (dict(threads=100_000), "threads must be at most"),
    (dict(layers=2), "layers"), (dict(amp="fp8"), "amp"), (dict(compile="fast"), "compile"),
    (dict(algo="nope"), "search algorithm"), (dict(resolution=1.5), "resolution"),
])
def test_bad_arguments_are_user_errors(kwargs, message):
    with pytest.raises(NasforgeError, match=message):
        time_search_step(**{**TINY, "steps": 1, "warmup": 0, "device": "cpu", **kwargs})


def test_cli_json_has_exactly_the_documented_keys():
    res = run_cli("bench", "step", "--channels", "4", "--layers", "3", "--nodes", "2",
                  "--batch", "4", "--resolution", "8", "--steps", "2", "--warmup", "1",
                  "--threads", "1", "--device", "cpu", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"imgs_per_s", "step_s"}
    assert out["step_s"] > 0 and out["imgs_per_s"] == pytest.approx(4 / out["step_s"])


def test_cli_readable_line():
    res = run_cli("bench", "step", "--channels", "4", "--layers", "3", "--nodes", "2",
                  "--batch", "4", "--resolution", "8", "--steps", "1", "--warmup", "0",
                  "--threads", "1", "--device", "cpu", "--no-channels-last")
    assert res.returncode == 0, res.stderr
    assert "darts search step on cpu (fp32, NCHW, plain mixed ops, 1 thread)" in res.stdout
    assert "images/s" in res.stdout


def test_cli_times_the_batched_formulation_when_asked(one_thread):
    res = run_cli("bench", "step", "--channels", "4", "--layers", "3", "--nodes", "2",
                  "--batch", "4", "--resolution", "8", "--steps", "1", "--warmup", "0",
                  "--threads", "1", "--device", "cpu", "--mixed-op", "batched")
    assert res.returncode == 0, res.stderr
    assert "(fp32, channels_last, batched mixed ops, 1 thread)" in res.stdout
    r = time_search_step(**TINY, steps=1, warmup=0, threads=1, device="cpu",
                         mixed_op="batched")
    assert r["mixed_op"] == "batched"
    assert time_search_step(**TINY, steps=1, warmup=0, threads=1,
                            device="cpu")["mixed_op"] == "plain"  # the search's default


@pytest.mark.parametrize("args", [["--batch", "0"], ["--algo", "nope"], ["--amp", "fp8"],
                                  ["--compile", "fast"], ["--device", "tpu"],
                                  ["--steps", "x"], ["--mixed-op", "fused"],
                                  ["--threads", "100000"]])
def test_cli_bad_input_exits_2_with_one_line(args):
    res = run_cli("bench", "step", "--channels", "4", "--layers", "3", "--steps", "1", *args)
    assert res.returncode == 2
    assert res.stderr.startswith("nasforge: error:") and res.stderr.count("\n") == 1


# --- the straightforward reference formulation (bench/darts_reference.py) ---

def _pair(C=4, layers=5, nodes=4, seed=0):
    ref_mod = bench_module("darts_reference")
    torch.manual_seed(seed)
    ours = SearchNetwork(C, 10, layers, nodes)
    ref = ref_mod.ReferenceSearchNetwork(C, 10, layers, nodes)
    ref_mod.copy_state(ours, ref)
    return ours, ref


def _softmax_weights(edges, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {k: F.softmax(torch.randn(edges, len(PRIMITIVES), generator=gen), -1)
            .requires_grad_() for k in ("normal", "reduce")}


def test_reference_network_has_the_same_layout():
    ours, ref = _pair()
    assert [v.shape for v in ours.state_dict().values()] == \
        [v.shape for v in ref.state_dict().values()]
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("train", [True, False])
def test_reference_and_ours_compute_the_same_function(train, one_thread):
    """Same weights, same op weights → same logits, gradients and BN statistics."""
    ours, ref = _pair()
    ours.train(train)
    ref.train(train)
    w = _softmax_weights(ours.num_edges)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    a, b = ours(x, w), ref(x, w)
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    params_a = [w["normal"], w["reduce"], *ours.parameters()]
    params_b = [w["normal"], w["reduce"], *ref.parameters()]
    ga = torch.autograd.grad(a.square().sum(), params_a)
    gb = torch.autograd.grad(b.square().sum(), params_b)
    for g1, g2 in zip(ga, gb, strict=True):
        # float32 sums in another order: compare the whole gradient, not element-wise
        assert (g1 - g2).norm() <= 1e-4 * g2.norm() + 1e-7
    for (name, v1), v2 in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.allclose(v1.float(), v2.float(), rtol=1e-5, atol=1e-6), name


def test_reference_runs_under_the_same_step():
    """The benchmark's baseline: the same strategy and optimisers drive the reference."""
    ref_mod = bench_module("darts_reference")
    run = SearchStep(**TINY, device="cpu", make_network=lambda C, n, L, nodes, c_in:
                     ref_mod.ReferenceSearchNetwork(C, n, L, nodes, c_in))
    assert isinstance(run.network, ref_mod.ReferenceSearchNetwork)
    before = [p.detach().clone() for p in run.strategy.parameters()]
    run.step(0)
    after = list(run.strategy.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(after, before, strict=True))


# --- the fast paths of MixedOp ---

@pytest.mark.parametrize("stride", [1, 2])
def test_mixed_op_equals_the_plain_weighted_sum(stride):
    """Shared ReLU and the skipped `none` leave the output bit-for-bit unchanged."""
    torch.manual_seed(0)
    mixed = MixedOp(4, stride, PRIMITIVES)
    x = torch.randn(2, 4, 8, 8)
    w = F.softmax(torch.randn(len(PRIMITIVES)), -1)
    plain = sum(wk * op(x) for wk, op in zip(w, mixed.ops, strict=True))
    assert torch.equal(mixed(x, w), plain)


def test_sparse_none_keeps_the_weights_in_the_graph():
    """With `active` ops, a sampled `none` is computed: its weight still gets a gradient."""
    mixed = MixedOp(4, 1, PRIMITIVES)
    w = torch.zeros(len(PRIMITIVES), requires_grad=True)
    out = mixed(torch.randn(2, 4, 8, 8), w, active=[0])
    assert out is not None and not out.any()
    (grad,) = torch.autograd.grad(out.sum(), w)
    assert torch.equal(grad, torch.zeros_like(w))
    assert MixedOp(4, 1, PRIMITIVES, allowed=[0])(torch.randn(1, 4, 4, 4), w) is None


# --- host synchronisations and the SNN baseline ---

def test_a_darts_step_reads_nothing_on_the_host(one_thread):
    sync_count = bench_module("sync_count")
    run = SearchStep(**TINY, device="cpu")
    run.step(0)
    assert sync_count.count_cpu(run, 1) == {}


def test_sync_counter_sees_host_reads(one_thread):
    """GDAS is sparse: the network reads which ops to run (one read per forward)."""
    sync_count = bench_module("sync_count")
    run = SearchStep("gdas", **TINY, device="cpu")
    run.step(0)
    hits = sync_count.count_cpu(run, 1)
    assert any("search_network.py" in where for where in hits)


def test_single_step_snn_baseline_matches_multi_step():
    from nasforge.snn.backbone import SNNSuperNet
    from nasforge.snn.neuron import is_neuron, neuron_implementation, reset_net

    single = bench_module("snn_single_step")
    torch.manual_seed(0)
    model = SNNSuperNet(4, 3, 10, 16, 3).eval()
    for m in model.modules():
        if is_neuron(m):
            m.v_threshold = 0.05  # make the small random network spike
    path = ["SRB_k3", "SCB_k5", "skip", "SRB_k5", "SCB_k3"]
    x = torch.randn(2, 3, 16, 16) * 3
    with torch.no_grad():
        multi = model(x, path)
        reset_net(model)
        looped = single.single_step_forward(model, x, path)
    assert multi.sum() > 0
    assert torch.equal(multi, looped)
    assert neuron_implementation("cpu") == "torch-reference"
