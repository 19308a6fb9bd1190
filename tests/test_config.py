import pytest

from nasforge.config import (
    Config,
    config_to_dict,
    load_config,
    parse_override,
    read_config,
    resolve_config_path,
    save_config,
)
from nasforge.errors import NasforgeError


def test_defaults_are_the_thesis_search_and_retrain_protocols():
    cfg = Config()
    s, t = cfg.search, cfg.train
    assert (s.layers, s.channels, s.epochs, s.batch_size, s.nodes) == (8, 16, 50, 64, 4)
    assert (s.w_lr, s.w_momentum, s.w_weight_decay) == (0.025, 0.9, 3e-4)
    # arch lr: the authors' code's 3e-4 (nabk89/NAS-with-Proxy-data), not §3.4.1's text 6e-4
    assert (s.arch_lr, s.arch_betas, s.arch_weight_decay) == (3e-4, (0.5, 0.999), 1e-3)
    assert (t.layers, t.channels, t.epochs, t.batch_size) == (20, 36, 600, 96)
    assert (t.lr, t.weight_decay, t.auxiliary_weight, t.drop_path, t.cutout, t.grad_clip) == (
        0.025, 3e-4, 0.4, 0.2, 16, 5.0)


def test_overrides_are_typed_and_applied_last(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("search:\n  epochs: 7\n  w_lr: 0.1\n")
    cfg = load_config(path, ["search.epochs=3", "search.arch_betas=[0.1, 0.2]",
                             "run.progress=false"])
    assert cfg.search.epochs == 3 and cfg.search.w_lr == 0.1
    assert cfg.search.arch_betas == (0.1, 0.2) and cfg.run.progress is False


def test_int_accepted_for_float_but_not_reverse():
    assert load_config(None, ["search.w_lr=1"]).search.w_lr == 1.0
    with pytest.raises(NasforgeError, match=r"search.epochs must be int, got 1.5"):
        load_config(None, ["search.epochs=1.5"])


@pytest.mark.parametrize("override, message", [
    ("search.epoch=3", "unknown config key 'search.epoch'; allowed: search.algo"),
    ("serch.epochs=3", "unknown config key 'serch'"),
    ("search.epochs=abc", "search.epochs must be int, got 'abc'"),
    ("search.epochs=0", "search.epochs must be >= 1; got 0"),
    ("search.w_momentum=1.5", "search.w_momentum must be <= 1.0"),
    ("search.order=third", "search.order must be one of first, second; got 'third'"),
    ("entropy.milestones=[5,0]", "entropy.milestones must be >= 1; got 0"),
    ("entropy.milestones=[]", "entropy.milestones must be a non-empty list"),
    ("train.flip=maybe", "train.flip must be bool"),
    ("search.arch_betas=[1]", "search.arch_betas must be a list of 2 numbers"),
    ("searchepochs=3", "must be dotted"),
    ("search.epochs", "must look like section.key=value"),
])
def test_bad_values_raise_one_clear_line(override, message):
    with pytest.raises(NasforgeError) as info:
        load_config(None, [override])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_yaml_and_unknown_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("search: [1, 2\n")
    with pytest.raises(NasforgeError, match="cannot parse YAML"):
        load_config(bad)
    with pytest.raises(NasforgeError, match="neither a file nor a shipped config"):
        load_config(tmp_path / "missing.yaml")


def test_shipped_configs_all_load_and_name_resolves():
    from nasforge.config import shipped_configs

    names = list(shipped_configs())
    assert "demo" in names and "darts-cifar10" in names
    for name in names:
        load_config(name)
    assert resolve_config_path("demo").name == "demo.yaml"
    assert load_config("darts-cifar10").data.dataset == "cifar10"


def test_saved_config_round_trips(tmp_path):
    cfg = load_config("demo", ["search.epochs=2", "data.root=/x/y"])
    save_config(cfg, tmp_path / "config.yaml")
    again = read_config(tmp_path / "config.yaml")
    assert config_to_dict(again) == config_to_dict(cfg)


def test_parse_override_types():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a.b=true") == (["a", "b"], True)
    assert parse_override("a.b=null") == (["a", "b"], None)
    assert parse_override("a.b=x=y") == (["a", "b"], "x=y")


@pytest.mark.parametrize("override, message", [
    ("search.w_lr=.inf", "search.w_lr must be a finite number, got inf"),
    ("train.lr=.nan", "train.lr must be a finite number, got nan"),
    ("snn.lr=1e400", "snn.lr must be a finite number, got inf"),
    ("entropy.lr=-.inf", "entropy.lr must be a finite number, got -inf"),
    ("search.arch_betas=[0.5, 1.0]", "search.arch_betas must be in [0, 1); got 1.0"),
    ("snn.betas=[-0.5, 0.9]", "snn.betas must be in [0, 1); got -0.5"),
    ("run.seed=4294967296", "run.seed must be <= 4294967295"),
    ("study.seeds=[1, -2]", "study.seeds must be >= 0; got -2"),
    ("search.nodes=17", "search.nodes must be <= 16"),
    ("search.layers=1000000", "search.layers must be <= 100"),  # built for hours before
    ("train.layers=101", "train.layers must be <= 100"),
])
def test_non_finite_values_betas_and_seeds_are_refused(override, message):
    with pytest.raises(NasforgeError) as err:
        load_config(None, [override])
    assert str(err.value).startswith(message)


def test_edge_values_that_are_allowed():
    cfg = load_config(None, ["snn.betas=[0.0, 0.999]", "run.seed=4294967295",
                             "search.nodes=16", "search.w_lr=1e30"])
    assert cfg.snn.betas == (0.0, 0.999) and cfg.run.seed == 2**32 - 1
    assert cfg.search.w_lr == 1e30


def test_yaml_duplicate_keys_binary_files_and_alias_bombs(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("search:\n  epochs: 3\n  epochs: 4\n")
    with pytest.raises(NasforgeError, match=r"duplicate key 'epochs' in .*dup.yaml line 3"):
        load_config(dup)
    with pytest.raises(NasforgeError, match="duplicate key 'a'"):
        parse_override("search.algo={a: 1, a: 2}")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(NasforgeError, match=r"b.yaml is not a UTF-8 text file"):
        load_config(binary)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
                    + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
                              for p, c in zip("abcdefg", "bcdefgh", strict=True))
                    + "search:\n  epochs: *h\n")
    with pytest.raises(NasforgeError, match="expands to more than 100,000 values"):
        load_config(bomb)
    with pytest.raises(NasforgeError, match="expands to more than 100,000 values"):
        read_config(bomb)  # a run directory's config.yaml goes through the same reader
    big = tmp_path / "big.yaml"
    big.write_text("# x\n" * 300_000)
    with pytest.raises(NasforgeError, match="at most 1,000,000 bytes"):
        load_config(big)


def test_a_huge_bad_value_is_quoted_short():
    with pytest.raises(NasforgeError) as err:
        load_config(None, ["search.algo=[" + ", ".join(["x" * 100] * 1000) + "]"])
    assert len(str(err.value)) < 150
