"""configs/ sorted by purpose (issue 15 item 6): every file is still found by its bare name,
names are unique across folders, and the wheel ships every folder."""

import tomllib
from pathlib import Path

import pytest

import nasforge
from nasforge import config as config_module
from nasforge.config import (
    CONFIG_DIR,
    CONFIG_FOLDERS,
    load_config,
    resolve_config_path,
    shipped_config_lines,
    shipped_config_paths,
    shipped_configs,
)
from nasforge.errors import NasforgeError

ROOT = Path(__file__).resolve().parents[1]


def test_names_are_unique_across_folders():
    paths = shipped_config_paths()
    assert len({p.stem for p in paths}) == len(paths) == len(shipped_configs())
    assert len(paths) > 250


def test_every_config_sits_in_a_documented_folder():
    folders = {p.parent.relative_to(CONFIG_DIR).as_posix() for p in shipped_config_paths()}
    assert folders == set(CONFIG_FOLDERS)
    assert not list(CONFIG_DIR.glob("*.yaml"))  # nothing left at the top
    documented = (ROOT / "docs" / "config.md").read_text()
    for folder in [*CONFIG_FOLDERS, "sweeps"]:
        assert f"configs/{folder}/" in documented, folder


@pytest.mark.parametrize(("name", "folder"), [
    ("darts-digits", "algos"), ("1shot1-ss2-enas-cifar10", "algos"), ("demo", "demo"),
    ("autosnn-digits", "demo"), ("study-proxy-digits", "studies"),
    ("t3.1-darts-cifar10-p1-5k", "thesis/ch3"), ("entropy-cifar10", "thesis/ch3"),
    ("train-imagenet", "thesis/ch3"), ("t4.7-btnas-svhn-s4", "thesis/ch4"),
    ("t5.9-autosnn-cifar10-v2-8tbd", "thesis/ch5"), ("f5.8-snn-quality-cifar10", "thesis/ch5"),
])
def test_a_bare_name_finds_the_file_in_its_folder(name, folder):
    path = resolve_config_path(name)
    assert path == CONFIG_DIR / folder / f"{name}.yaml"
    assert resolve_config_path(f"{name}.yaml") == path
    assert resolve_config_path(f"{folder}/{name}") == path


def test_every_chapter_file_is_in_its_chapter():
    for name, path in shipped_configs().items():
        if name[:1] in "tf" and name[1:2].isdigit():
            assert path.parent == CONFIG_DIR / "thesis" / f"ch{name[1]}", name


def test_sweep_configs_are_not_run_configs():
    assert not set(shipped_configs()) & {p.stem for p in (CONFIG_DIR / "sweeps").glob("*.yaml")}
    with pytest.raises(NasforgeError, match="neither a file nor a shipped config"):
        resolve_config_path("t4.2-topk")


def test_an_unknown_name_is_one_line_with_close_matches():
    with pytest.raises(NasforgeError) as info:
        load_config("darts-digit")
    message = str(info.value)
    assert "\n" not in message
    assert "config 'darts-digit' is neither a file nor a shipped config" in message
    assert "close matches: darts-digits" in message
    with pytest.raises(NasforgeError, match="no shipped name is close"):
        resolve_config_path("qqqqqqqq")


def test_two_files_with_one_name_are_refused(tmp_path, monkeypatch):
    for folder in ("algos", "demo"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.yaml").write_text("search:\n  epochs: 2\n")
    (tmp_path / "algos" / "other.yaml").write_text("search:\n  epochs: 3\n")
    monkeypatch.setattr(config_module, "CONFIG_DIR", tmp_path)
    with pytest.raises(NasforgeError) as info:
        resolve_config_path("same")
    assert str(info.value) == ("config 'same' is ambiguous: configs/ ships algos/same.yaml "
                               "and demo/same.yaml; give the file's path")
    with pytest.raises(NasforgeError, match="two shipped configs are named 'same'"):
        shipped_configs()
    assert load_config("other").search.epochs == 3
    assert load_config("algos/same").search.epochs == 2


def test_the_listing_groups_every_config_by_folder():
    lines = shipped_config_lines()
    headings = [line for line in lines if not line.startswith("  ")]
    assert [h.split("/:")[0] for h in headings] == sorted(CONFIG_FOLDERS)
    entries = [line.split()[0] for line in lines if line.startswith("  ")]
    assert sorted(entries) == list(shipped_configs())
    demo = next(line for line in lines if line.startswith("  demo "))
    assert "End-to-end demo on digits" in demo


def test_the_wheel_ships_every_config_folder():
    """setuptools expands package-data globs like pathlib (``**``: any depth), so every
    shipped YAML, sweeps included, must match one of pyproject.toml's patterns."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["nasforge"]
    package = Path(nasforge.__file__).parent
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    files = set(CONFIG_DIR.rglob("*.yaml"))
    assert len(files) > 250 and files <= shipped
