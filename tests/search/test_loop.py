import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import TINY_SEARCH
from nasforge.checkpoint import load_checkpoint
from nasforge.config import load_config
from nasforge.errors import NasforgeError
from nasforge.search.loop import cosine_lr, derive_from_run, read_strengths, run_search
from nasforge.spaces.darts.genotype import parse_genotype


def _cfg(proxy, *extra):
    return load_config(None, [*TINY_SEARCH, f"data.proxy={proxy}", *extra])


def test_cosine_schedule_matches_darts():
    assert cosine_lr(0, 50, 0.025, 0.001) == pytest.approx(0.025)
    assert cosine_lr(25, 50, 0.025, 0.001) == pytest.approx(0.013)
    assert cosine_lr(49, 50, 0.025, 0.001) == pytest.approx(
        0.001 + 0.5 * 0.024 * (1 + torch.cos(torch.tensor(torch.pi * 49 / 50)).item()))


def test_search_run_directory_contents_and_moving_strengths(tmp_path, proxy_file):
    out = tmp_path / "run"
    results = run_search(_cfg(proxy_file), out)
    for name in ("config.yaml", "search_log.csv", "strengths.json", "strengths.jsonl",
                 "checkpoint.pt", "genotype.txt", "results.json"):
        assert (out / name).is_file(), name
    history = [json.loads(ln) for ln in (out / "strengths.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [0, 1]
    final = torch.tensor(history[-1]["normal"])
    assert final.shape == (5, 8)  # 2 nodes → 2 + 3 edges
    assert torch.allclose(final.sum(-1), torch.ones(5), atol=1e-5)
    # the same seed with a zero architecture lr keeps α at its initial value: the search
    # moved every α by about (Adam steps × lr), 2 epochs × 3 steps here
    run_search(_cfg(proxy_file, "search.arch_lr=0"), tmp_path / "frozen")
    moved = load_checkpoint(out / "checkpoint.pt")["strategy"]["alphas.normal"]
    frozen = load_checkpoint(tmp_path / "frozen" / "checkpoint.pt")["strategy"]["alphas.normal"]
    delta = (moved - frozen).abs()
    lr = 3e-4  # search.arch_lr's default
    assert 0.5 * lr < delta.max() <= 6 * lr * 1.01
    assert (delta > 0).float().mean() > 0.9
    # results: the genotype is the argmax derivation of the saved strengths
    assert parse_genotype(results["genotype"]) == derive_from_run(out, "argmax")
    assert (out / "genotype.txt").read_text().strip() == results["genotype"]
    assert results["cost"]["epochs"] == 2
    assert results["cost"]["examples_seen"] == 2 * 160  # weight half + arch half, 2 epochs
    assert read_strengths(out)["primitives"][0] == "none"


def test_existing_run_directory_needs_force(tmp_path, proxy_file):
    out = tmp_path / "run"
    out.mkdir()
    (out / "x").write_text("keep")
    with pytest.raises(NasforgeError, match="already exists; pass --resume"):
        run_search(_cfg(proxy_file), out)
    assert (out / "x").read_text() == "keep"


def test_second_order_search_runs_and_differs_from_first(tmp_path, proxy_file):
    first = run_search(_cfg(proxy_file, "search.epochs=1"), tmp_path / "a")
    second = run_search(_cfg(proxy_file, "search.epochs=1", "search.order=second"),
                        tmp_path / "b")
    a = read_strengths(tmp_path / "a")["normal"]
    b = read_strengths(tmp_path / "b")["normal"]
    assert not torch.equal(a, b)
    assert first["cost"]["examples_seen"] == second["cost"]["examples_seen"]


def test_same_seed_same_result(tmp_path, proxy_file):
    run_search(_cfg(proxy_file, "search.epochs=1"), tmp_path / "a")
    run_search(_cfg(proxy_file, "search.epochs=1"), tmp_path / "b")
    assert torch.equal(read_strengths(tmp_path / "a")["reduce"],
                       read_strengths(tmp_path / "b")["reduce"])


def test_killed_search_resumes_to_the_uninterrupted_result(tmp_path, proxy_file):
    sets = [a for s in [*TINY_SEARCH, "search.epochs=3"] for a in ("--set", s)]
    base = [sys.executable, "-m", "nasforge.cli", "search", "--algo", "darts",
            "--dataset", "digits", "--proxy", str(proxy_file), *sets]
    subprocess.run([*base, "--out", str(tmp_path / "full")], check=True, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*base, "--out", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = killed / "search_log.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 2:  # header + epoch 0
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists()
    # killed anywhere in epochs 0-1: after the log row but before the first checkpoint, too
    ckpt = killed / "checkpoint.pt"
    assert not ckpt.exists() or load_checkpoint(ckpt)["epoch"] < 2

    done = subprocess.run([sys.executable, "-m", "nasforge.cli", "search", "--resume",
                           str(killed)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in ("genotype.txt", "strengths.json"):
        assert (killed / name).read_text() == (tmp_path / "full" / name).read_text()
    full_log = (tmp_path / "full" / "search_log.csv").read_text().splitlines()
    resumed_log = log.read_text().splitlines()
    def strip(rows):  # drop the wall-clock column
        return [r.rsplit(",", 1)[0] for r in rows]

    assert strip(resumed_log) == strip(full_log)


def test_search_with_proxy_trains_on_exactly_the_listed_examples(tmp_path, proxy_file,
                                                                  monkeypatch):
    import nasforge.search.loop as loop

    seen: list[torch.Tensor] = []
    real = loop.make_batches

    def spy(split, batch_size, **kwargs):
        batches = real(split, batch_size, **kwargs)
        if kwargs.get("shuffle", True):  # the weight and architecture training batches
            seen.append(kwargs["indices"].clone())
        return batches

    monkeypatch.setattr(loop, "make_batches", spy)
    run_search(_cfg(proxy_file, "search.epochs=1"), tmp_path / "run")
    listed = {int(x) for x in proxy_file.read_text().split()}
    weight, arch = ({int(i) for i in s} for s in seen)
    assert weight | arch == listed and not weight & arch
    assert abs(len(weight) - len(arch)) <= 1
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["cost"]["train_examples"] == len(listed) == 160


def test_imagenet_search_reads_jpeg_folders_with_the_three_conv_stem(tmp_path):
    """The ImageNet configs' path: class folders of JPEGs, decoded per batch, 3-conv stem."""
    import numpy as np
    from PIL import Image

    base = tmp_path / "imagenet"
    for k, wnid in enumerate(["n01000001", "n02000002"]):
        for i in range(4):
            for split in ("train", "val"):
                path = base / split / wnid / f"{wnid}_{split}_{i}.JPEG"
                path.parent.mkdir(parents=True, exist_ok=True)
                pixels = np.random.default_rng(10 * k + i).integers(0, 256, (40, 50, 3))
                Image.fromarray(pixels.astype(np.uint8), "RGB").save(path)
    cfg = load_config("t3.1-darts-imagenet-random-128k", [
        *TINY_SEARCH, "search.epochs=1", "search.batch_size=2", "proxy.size=6",
        f"data.root={tmp_path}", "run.device=cpu"])
    results = run_search(cfg, tmp_path / "run")
    assert results["cost"]["train_examples"] == 6
    assert results["cost"]["examples_seen"] == 6
    net = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["network"]
    convs = [k for k, v in net.items() if k.startswith("stem") and v.dim() == 4]
    assert convs == ["stem.0.weight", "stem.3.weight", "stem1.1.weight"]  # 3 stride-2 convs


def test_run_compile_compiles_the_network_in_place(tmp_path, small_proxy, monkeypatch):
    """run.compile hands the super-network to torch.compile in place (nn.Module.compile), so
    checkpoints keep plain keys; 'off' compiles nothing. (Compiling for real takes minutes on
    a CPU; the call is what is checked here.)"""
    from torch import nn

    from nasforge.spaces.darts.search_network import SearchNetwork

    calls = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: calls.append((self, kw)))
    sets = [*TINY_SEARCH, f"data.proxy={small_proxy}", "search.epochs=1"]
    run_search(load_config(None, [*sets, "run.compile=reduce-overhead"]), tmp_path / "c")
    assert [(type(m), kw) for m, kw in calls] == [(SearchNetwork, {"mode": "reduce-overhead"})]
    keys = load_checkpoint(tmp_path / "c" / "checkpoint.pt")["network"].keys()
    assert not any("_orig_mod" in k for k in keys)
    calls.clear()
    run_search(load_config(None, sets), tmp_path / "off")
    assert calls == []
