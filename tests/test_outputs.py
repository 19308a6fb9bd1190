"""nasforge never deletes or overwrites a file it did not write (issue 14, items 1, 2, 8).

Every case runs the real command line in a subprocess and checks the user's files byte for
byte afterwards, the exit code and the one-line message.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_SEARCH, run_cli
from nasforge import outputs

SEARCH = ["search", "--algo", "darts", *[a for s in TINY_SEARCH for a in ("--set", s)],
          "--set", "search.epochs=1"]


def _search(out: Path, proxy: Path, *extra: str, cwd: Path | None = None):
    args = [*SEARCH, "--proxy", str(proxy), "--out", str(out), *extra]
    if cwd is None:
        return run_cli(*args)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "nasforge.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)


def _one_line_refusal(res, *needles: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nasforge: error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 1-epoch search (made once; tests copy it)."""
    root = tmp_path_factory.mktemp("finished")
    proxy = root / "proxy.txt"
    proxy.write_text("".join(f"{i}\n" for i in range(0, 1152, 18)))
    res = _search(root / "run", proxy)
    assert res.returncode == 0, res.stderr
    return root / "run", proxy


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_a_run_directory_lists_what_nasforge_wrote(finished_run):
    run, _ = finished_run
    listed = set((run / outputs.MARKER).read_text().splitlines()[1:])
    assert {"config.yaml", "checkpoint.pt", "results.json", "search_log.csv",
            "genotype.txt"} <= listed
    owned, foreign = outputs._split(run)
    assert foreign == []
    assert {p.name for p in owned} >= {"config.yaml", "checkpoint.pt", "results.json"}


def test_force_on_a_finished_run_replaces_it(finished_run, tmp_path):
    run, proxy = finished_run
    run = _copy_run(run, tmp_path / "run")
    (run / "results.json").write_text("{}")  # a stale result the new run must replace
    res = _search(run, proxy, "--force")
    assert res.returncode == 0, res.stderr
    assert '"genotype"' in (run / "results.json").read_text()


def test_force_refuses_a_folder_of_user_files(small_proxy, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    res = _search(out, small_proxy, "--force")
    _one_line_refusal(res, str(out), "thesis.tex", "not made by nasforge")
    assert (out / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_force_refuses_a_run_holding_a_user_file(finished_run, tmp_path):
    run, proxy = finished_run
    run = _copy_run(run, tmp_path / "run")
    (run / "notes.md").write_text("my notes")
    (run / "plots").mkdir()
    (run / "plots" / "fig.png").write_bytes(b"png")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    res = _search(run, proxy, "--force")
    _one_line_refusal(res, "notes.md", "plots/", "did not write")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_force_out_dot_never_clears_the_working_directory(finished_run, tmp_path):
    run, proxy = finished_run
    run = _copy_run(run, tmp_path / "run")  # even a nasforge run: `.` is never cleared
    before = sorted(p.name for p in run.iterdir())
    res = _search(Path("."), proxy, "--force", cwd=run)
    _one_line_refusal(res, "working directory")
    assert sorted(p.name for p in run.iterdir()) == before
    sub = run / "deeper"
    sub.mkdir()
    res = _search(Path(".."), proxy, "--force", cwd=sub)
    _one_line_refusal(res, "working directory")
    assert sorted(p.name for p in run.iterdir()) == sorted([*before, "deeper"])


def test_force_never_clears_through_a_symlink(finished_run, tmp_path):
    run, proxy = finished_run
    run = _copy_run(run, tmp_path / "run")
    link = tmp_path / "link"
    link.symlink_to(run, target_is_directory=True)
    before = sorted(p.name for p in run.iterdir())
    res = _search(link, proxy, "--force")
    _one_line_refusal(res, "symbolic link")
    assert sorted(p.name for p in run.iterdir()) == before


def test_an_input_inside_the_run_directory_is_read_not_removed(finished_run, tmp_path):
    run, proxy = finished_run
    run = _copy_run(run, tmp_path / "run")
    inside = run / "proxy.txt"
    inside.write_text(proxy.read_text())
    res = _search(run, inside, "--force")
    _one_line_refusal(res, "proxy.txt", "inside")
    assert inside.read_text() == proxy.read_text()
    # also when nasforge itself wrote the input there (an index file from `select`)
    (run / "proxy.txt").unlink()
    outputs.forget_fresh()
    from nasforge.data.subset import write_index_file

    write_index_file(run / "mine.txt", list(range(0, 1152, 18)))
    assert "mine.txt" in (run / outputs.MARKER).read_text()
    res = _search(run, run / "mine.txt", "--force")
    _one_line_refusal(res, "mine.txt", "inside")
    assert (run / "mine.txt").is_file()


def test_interrupting_a_forced_run_keeps_every_user_file(finished_run, tmp_path):
    run, proxy = finished_run
    parent = tmp_path / "work"
    parent.mkdir()
    (parent / "data.csv").write_text("a,b\n1,2\n")
    run = _copy_run(run, parent / "run")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [*SEARCH, "--set", "search.epochs=50", "--proxy", str(proxy), "--out", str(run),
            "--force"]
    proc = subprocess.Popen([sys.executable, "-m", "nasforge.cli", *args], env=env,
                            stderr=subprocess.PIPE, text=True)
    started, deadline = time.time(), time.time() + 120
    log = run / "search_log.csv"
    while time.time() < deadline and not (log.exists() and log.stat().st_mtime > started):
        time.sleep(0.1)  # the forced run has cleared the old run and logged an epoch
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert (parent / "data.csv").read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in parent.iterdir()) == ["data.csv", "run"]


@pytest.mark.parametrize("make_args", [
    lambda t, e, p: ["select", "--entropy", str(e), "--method", "random", "--size", "10",
                     "--dataset", "digits", "--out", str(t)],
    lambda t, e, p: ["plot", "entropy", "--entropy", str(e), "--out", str(t)],
    lambda t, e, p: ["plot", "classes", "--entropy", str(e), "--out", str(t)],
    lambda t, e, p: ["derive", str(p), "--out", str(t)],
    lambda t, e, p: ["plot", "strengths", str(p), "--out", str(t)],
], ids=["select", "plot-entropy", "plot-classes", "derive", "plot-strengths"])
def test_file_outputs_never_overwrite_a_user_file_without_force(make_args, finished_run,
                                                                 tmp_path):
    run, _ = finished_run
    entropy = tmp_path / "ent.tsv"
    entropy.write_text("".join(f"{i}\t{0.01 * (i % 97) + 0.001:.6f}\t{i % 10}\n"
                               for i in range(1437)))
    target = tmp_path / "precious.out"
    target.write_text("user data")
    res = run_cli(*make_args(target, entropy, run))
    _one_line_refusal(res, str(target), "--force")
    assert target.read_text() == "user data"
    res = run_cli(*make_args(target, entropy, run), "--force")
    assert res.returncode == 0, res.stderr
    assert target.read_bytes() != b"user data"
    assert not list(tmp_path.glob(".precious.out.*"))  # no temp file left behind


def test_report_never_replaces_a_user_report(finished_run, tmp_path):
    run, _ = finished_run
    run = _copy_run(run, tmp_path / "run")
    mine = tmp_path / "site"
    mine.mkdir()
    (mine / "report.html").write_text("<p>my page</p>")
    res = run_cli("report", str(run), "--out", str(mine))
    _one_line_refusal(res, "report.html", "--force")
    assert (mine / "report.html").read_text() == "<p>my page</p>"
    # the default folder is nasforge's: a second report replaces the first without --force
    for _ in range(2):
        res = run_cli("report", str(run))
        assert res.returncode == 0, res.stderr
    assert "report/" in (run / outputs.MARKER).read_text()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(small_proxy, tmp_path):
    """A proxy index beyond the data set is found only once the search reads it; the refused
    run must not leave a config.yaml that blocks the next correct command."""
    out = tmp_path / "run"
    res = _search(out, small_proxy, "--set", "data.dataset=digits",
                  "--set", "search.w_lr=1e30", "--set", "search.grad_clip=0")
    assert res.returncode == 2, res.stderr
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    res = _search(out, small_proxy)
    assert res.returncode == 0, res.stderr


def test_a_failed_run_in_an_existing_folder_removes_only_its_own_files(small_proxy, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    res = _search(out, small_proxy, "--set", "search.w_lr=1e30",
                  "--set", "search.grad_clip=0")
    assert res.returncode == 2, res.stderr
    assert out.is_dir() and list(out.iterdir()) == []


def test_a_failing_command_never_discards_what_an_earlier_command_made(finished_run,
                                                                      tmp_path, capsys):
    """Notebooks and tests run several commands in one process: a failure discards only the
    failing command's own unstarted run directories, never an earlier command's report."""
    from nasforge.cli import main

    run, _ = finished_run
    run = _copy_run(run, tmp_path / "run")
    assert main(["report", str(run)]) == 0
    assert (run / "report" / "report.html").is_file()
    assert main(["search", "--algo", "darts", "--out", str(tmp_path / "new"),
                 "--proxy", str(tmp_path / "missing.txt")]) == 2
    assert (run / "report" / "report.html").is_file()
    capsys.readouterr()
