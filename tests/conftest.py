import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

TINY_SEARCH = [
    "search.epochs=2", "search.channels=4", "search.layers=3", "search.nodes=2",
    "search.batch_size=32", "search.crop_pad=1", "search.flip=false", "run.progress=false",
]
TINY_TRAIN = [
    "train.epochs=2", "train.channels=4", "train.layers=3", "train.batch_size=64",
    "train.crop_pad=1", "train.flip=false", "train.cutout=2", "run.progress=false",
]


@pytest.fixture
def proxy_file(tmp_path) -> Path:
    """A 160-example proxy subset of digits, so search tests take seconds."""
    path = tmp_path / "proxy.txt"
    path.write_text("".join(f"{i}\n" for i in range(0, 1200, 7)[:160]))
    return path


def assert_refused(capsys, argv: list[str], *needles: str) -> str:
    """``nasforge ARGV`` in this process exits 2 with one ``nasforge: error:`` line holding
    every needle; returns that line."""
    from nasforge.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nasforge: error: ") and \
        "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def run_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    """Run the real ``nasforge`` console entry point in a subprocess."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "nasforge.cli", *args], capture_output=True,
                          text=True, env=env, check=check, timeout=600)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks run faster on one thread, the more so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def search_runs(tmp_path_factory):
    """1-epoch BtNAS and DARTS searches on 160 digits (3 steps each), shared by the plots."""
    from nasforge.config import load_config
    from nasforge.search.loop import run_search

    root = tmp_path_factory.mktemp("analysis-runs")
    proxy = root / "proxy.txt"
    proxy.write_text("".join(f"{i}\n" for i in range(0, 1200, 7)[:160]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    for algo in ("btnas", "darts"):
        cfg = load_config(None, [*TINY_SEARCH, f"data.proxy={proxy}", "search.epochs=1",
                                 f"search.algo={algo}"])
        run_search(cfg, root / algo)
        out[algo] = root / algo
    torch.set_num_threads(threads)
    return out


@pytest.fixture
def small_proxy(tmp_path) -> Path:
    """64 digits: 32 per half, one step of batch 32 per epoch, so whole searches stay quick."""
    path = tmp_path / "proxy64.txt"
    path.write_text("".join(f"{i}\n" for i in range(0, 1152, 18)))
    return path


def assert_resume_matches(tmp_path: Path, sets: list[str], epochs: int = 2) -> None:
    """A search stopped after one epoch and resumed ends exactly like an uninterrupted one:
    same final strengths, genotype and per-epoch log (wall-clock column aside)."""
    from nasforge.config import load_config, save_config
    from nasforge.runtime import load_run_config
    from nasforge.search.loop import resume_search, run_search

    full, part = tmp_path / "full", tmp_path / "part"
    run_search(load_config(None, [*sets, f"search.epochs={epochs}"]), full)
    run_search(load_config(None, [*sets, "search.epochs=1"]), part)
    cfg = load_run_config(part)
    cfg.search.epochs = epochs
    save_config(cfg, part / "config.yaml")
    resume_search(part)
    for name in ("strengths.json", "genotype.txt"):
        assert (part / name).read_text() == (full / name).read_text()

    def rows(run: Path) -> list[str]:
        return [r.rsplit(",", 1)[0] for r in (run / "search_log.csv").read_text().splitlines()]

    assert rows(part) == rows(full)


def assert_same_state(x, y, where: str = "", skip=lambda key: False) -> None:
    """Nested checkpoint contents equal bit for bit; dict keys for which ``skip(key)`` is
    true (wall-clock fields) are not compared."""
    import numpy as np

    if isinstance(x, dict):
        assert x.keys() == y.keys(), where
        for key in x:
            if not skip(str(key)):
                assert_same_state(x[key], y[key], f"{where}.{key}", skip)
    elif isinstance(x, list | tuple):
        assert len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            assert_same_state(u, v, f"{where}[{i}]", skip)
    elif isinstance(x, torch.Tensor):
        assert x.dtype == y.dtype and torch.equal(x, y), where
    elif isinstance(x, np.ndarray):
        assert np.array_equal(x, y), where
    else:
        assert x == y, where


@pytest.fixture(scope="module")
def work(tmp_path_factory, one_thread) -> Path:
    """One thread, proxy files of 64 and 256 digits, and the tests' ResNet-8 registered as
    an auxiliary model (as tests/proxy do), for the kill and determinism tests."""
    from nasforge.proxy.models import AUX_MODELS, cifar_resnet

    root = tmp_path_factory.mktemp("work")
    (root / "proxy64.txt").write_text("".join(f"{i}\n" for i in range(0, 1152, 18)))
    (root / "proxy256.txt").write_text("".join(f"{i}\n" for i in range(0, 1258, 4)[:256]))
    added = "resnet8" not in AUX_MODELS
    AUX_MODELS._entries.setdefault("resnet8", lambda k, c: cifar_resnet(8, k, c))
    yield root
    if added:
        AUX_MODELS._entries.pop("resnet8", None)
