"""robustdarts-l2 and ecodarts: DARTS with another search setup."""

from conftest import TINY_SEARCH
from nasforge.checkpoint import load_checkpoint
from nasforge.config import SearchConfig, load_config
from nasforge.search.ecodarts import EcoDARTS
from nasforge.search.loop import run_search
from nasforge.search.robustdarts import RobustDARTSL2


def test_robustdarts_l2_uses_weight_decay_0_0243(proxy_file, tmp_path, one_thread):
    assert RobustDARTSL2.prepare(SearchConfig(), 32).w_weight_decay == 0.0243
    cfg = load_config(None, [*TINY_SEARCH, f"data.proxy={proxy_file}", "search.epochs=1",
                             "search.algo=robustdarts-l2"])
    run_search(cfg, tmp_path / "r")
    groups = load_checkpoint(tmp_path / "r" / "checkpoint.pt")["w_opt"]["param_groups"]
    assert groups[0]["weight_decay"] == 0.0243


def test_ecodarts_is_c4r2():
    cfg = EcoDARTS.prepare(SearchConfig(channels=16), 32)
    assert (cfg.channels, cfg.resolution) == (4, 16)
    assert EcoDARTS.prepare(SearchConfig(channels=16, resolution=24), 32).resolution == 24


def test_ecodarts_searches_at_half_resolution(proxy_file, tmp_path, one_thread):
    cfg = load_config(None, [*TINY_SEARCH, f"data.proxy={proxy_file}", "search.epochs=1",
                             "search.algo=ecodarts", "search.channels=8",
                             "data.upscale=16"])
    run_search(cfg, tmp_path / "e")
    state = load_checkpoint(tmp_path / "e" / "checkpoint.pt")
    assert state["network"]["stem.0.weight"].shape[0] == 3 * 2  # C = 8 / 4, stem x3
