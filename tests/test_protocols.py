"""docs/protocols.md's "nasforge runs" column matches the configs it names.

Every table row of the page with a *config* column names one or more configs (a ``*``
matches several); every ``section.key=value`` in its *nasforge runs* column must be what
those configs load to. A config changed without the page (or the reverse) fails here.
"""

from __future__ import annotations

import fnmatch
import math
import re
from pathlib import Path

import pytest
import yaml

from nasforge.config import config_to_dict, load_config, shipped_configs

PAGE = Path(__file__).resolve().parents[1] / "docs" / "protocols.md"
TOKEN = re.compile(r"`([a-z0-9_]+\.[a-z0-9_]+)=([^`\s]+)`")


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def rows(text: str | None = None) -> list[tuple[str, list[str], list[tuple[str, str]]]]:
    """(row label, config names, [(key, value text)]) for every table row with settings."""
    out = []
    header: list[str] | None = None
    for line in (PAGE.read_text() if text is None else text).splitlines():
        if not line.startswith("|"):
            header = None
            continue
        parts = cells(line)
        if header is None:
            header = parts
            continue
        if set("".join(parts)) <= set("-: "):
            continue  # the separator row
        if "config" not in header or "nasforge runs" not in header:
            continue
        row = dict(zip(header, parts, strict=True))
        names = re.findall(r"`([^`]+)`", row["config"])
        tokens = TOKEN.findall(row["nasforge runs"])
        out.append((row[header[0]], names, tokens))
    return out


def expand(name: str) -> list[str]:
    available = list(shipped_configs())
    return fnmatch.filter(available, name) if "*" in name else [name]


def same(actual, expected) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual == expected
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(float(actual), float(expected), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(expected, list) and isinstance(actual, list | tuple):
        return len(actual) == len(expected) and all(
            same(a, e) for a, e in zip(actual, expected, strict=True))
    return actual == expected


def parse(text: str):
    """A value as YAML reads it, except that ``3e-05`` (YAML 1.1: a string) is a float."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, list):
        return [parse(str(v)) if isinstance(v, str) else v for v in value]
    return value


ROWS = rows()


def test_the_page_covers_every_thesis_table_and_zoo_algorithm():
    labels = " ".join(label for label, _, _ in ROWS)
    for table in ("3.1", "3.2", "3.3", "3.4", "4.1", "4.2", "4.3", "4.4", "4.5", "4.6",
                  "4.7", "5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "5.7", "5.8", "5.9"):
        assert f"Table {table}" in labels, table
    named = {n for _, names, _ in ROWS for n in names}
    zoo = sorted(name for name in shipped_configs("*-cifar10")
                 if not re.match(r"(t\d|f\d|1shot1|entropy)", name))
    assert zoo and set(zoo) <= named, sorted(set(zoo) - named)
    assert sum(len(tokens) for _, _, tokens in ROWS) > 150  # the column is really parsed


def mismatches(label: str, names: list[str], tokens: list[tuple[str, str]]) -> list[str]:
    """Every setting of the row that a named config does not have, as a sentence."""
    configs = [c for name in names for c in expand(name)]
    if not names or not tokens or not configs:
        return [f"{label}: no config ({names}) or no settings ({tokens})"]
    out = []
    for config in configs:
        loaded = config_to_dict(load_config(config))
        for key, text in tokens:
            section, field = key.split(".")
            if field not in loaded.get(section, {}):
                out.append(f"{label}: unknown setting {key}")
            elif not same(actual := loaded[section][field], parse(text)):
                out.append(f"docs/protocols.md row '{label}' says {key}={text} but {config} "
                           f"has {actual!r}")
    return out


@pytest.mark.parametrize("label, names, tokens", ROWS, ids=[f"{r[0]}:{r[1][0]}" for r in ROWS])
def test_nasforge_runs_column_matches_the_configs(label, names, tokens):
    assert mismatches(label, names, tokens) == []


def test_a_row_that_drifted_is_caught():
    page = ("| row | config | nasforge runs | reference | deviations |\n|---|---|---|---|---|\n"
            "| x | `darts-cifar10` | `search.epochs=51` `search.order=first` | - | - |\n"
            "| y | `t3.4-darts-*-s2-full` | `search.space=s3` `search.nope=1` | - | - |\n")
    (x, y) = rows(page)
    assert mismatches(*x) == ["docs/protocols.md row 'x' says search.epochs=51 but "
                              "darts-cifar10 has 50"]
    found = mismatches(*y)
    assert len(found) == 6  # 3 data sets × (wrong space + unknown key)
    assert sum("unknown setting search.nope" in m for m in found) == 3
