"""``nasforge zc score`` / ``zc eval``: the proxies from the command line."""

import csv
import json

from conftest import run_cli
from nasforge.zc import zc_score


def test_zc_score_prints_and_writes_the_library_rows(tmp_path):
    out = tmp_path / "scores.csv"
    res = run_cli("zc", "score", "--space", "tabular-digits", "--samples", "3",
                  "--proxies", "synflow,params", "--seed", "4", "--out", str(out))
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(out.open()))
    ref = zc_score("tabular-digits", 3, "synflow,params", "digits", 4)
    assert [r["arch"] for r in rows] == [r["arch"] for r in ref]
    for mine, theirs in zip(rows, ref, strict=True):
        assert float(mine["params"]) == theirs["params"]
        assert float(mine["synflow"]) == theirs["synflow"]
        assert mine["arch"] in res.stdout
    again = run_cli("zc", "score", "--space", "tabular-digits", "--samples", "3",
                    "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_zc_eval_json_holds_a_correlation_per_proxy(tmp_path):
    res = run_cli("zc", "eval", "--limit", "8", "--proxies", "params,naswot", "--json")
    assert res.returncode == 0, res.stderr
    corr = json.loads(res.stdout)
    assert set(corr) == {"params", "naswot"}
    assert all(c["n"] == 8 and -1.0 <= c["spearman"] <= 1.0 for c in corr.values())


def test_zc_bad_space_and_proxy_are_one_line_errors():
    res = run_cli("zc", "score", "--space", "nope", "--samples", "2")
    assert res.returncode == 2 and "unknown space 'nope'" in res.stderr
    assert "Traceback" not in res.stderr
    res = run_cli("zc", "eval", "--proxies", "magic", "--limit", "2")
    assert res.returncode == 2 and "magic" in res.stderr and "synflow" in res.stderr
    res = run_cli("zc", "eval", "--limit", "2", "--device", "nope")
    assert res.returncode == 2 and "unknown device 'nope'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
