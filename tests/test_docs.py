"""Every `nasforge ...` example in README.md and docs/ parses with the real CLI parser."""

import re
import shlex
from pathlib import Path

import pytest

from nasforge.cli import build_parser
from nasforge.errors import NasforgeError

ROOT = Path(__file__).resolve().parents[1]
KNOWN_NAMES = {"DARTS_V1", "DARTS_V2", "PDARTS", "PC_DARTS"}


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```(?:bash)?\n(.*?)```", md.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                if not line.startswith("nasforge ") or "[" in line:
                    continue  # synopsis lines with [optional] parts are not examples
                line = line.split(" #")[0].split(" | ")[0].split(" > ")[0]
                argv = shlex.split(line)[1:]
                if any(re.fullmatch(r"[A-Z_]{3,}", a) and a not in KNOWN_NAMES for a in argv):
                    continue  # placeholders like RUN_DIR
                found.append((md.name, line))
    return found


COMMANDS = documented_commands()


def test_the_docs_have_examples_for_every_command():
    used = {shlex.split(line)[1] for _, line in COMMANDS}
    assert {"search", "derive", "train", "evaluate", "describe", "entropy", "select", "plot",
            "bench", "study", "quality", "data", "config", "demo", "sweep", "report", "runs",
            "snn"} <= used


@pytest.mark.parametrize("doc, line", COMMANDS)
def test_documented_command_parses(doc, line):
    parser = build_parser()
    try:
        parser.parse_args(shlex.split(line)[1:])
    except (SystemExit, NasforgeError) as err:
        pytest.fail(f"{doc}: {line}: {err}")


def autosnn_examples() -> list[str]:
    """docs/autosnn.md's examples from its command sections on, minus GPU-scale runs.

    The opening digits walk-through (about two minutes) is what the demo test covers.
    """
    text = (ROOT / "docs" / "autosnn.md").read_text()
    start = text.index("## `nasforge snn supernet`")
    lines = [line for doc, line in COMMANDS
             if doc == "autosnn.md" and text.find(line, start) >= 0]
    return [line for line in lines if "~/data" not in line]


def test_autosnn_examples_run_in_order(tmp_path):
    """The tiny chapter-5 chain of docs/autosnn.md works as written, in a fresh directory."""
    import os
    import subprocess
    import sys

    lines = autosnn_examples()
    assert len(lines) >= 12
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    for line in lines:
        argv = shlex.split(line)[1:]
        if argv[0] == "snn" and argv[1] in {"supernet", "search", "train", "quality"}:
            argv.append("--no-progress")
        res = subprocess.run([sys.executable, "-m", "nasforge.cli", *argv], cwd=tmp_path,
                             capture_output=True, text=True, env=env, timeout=600)
        assert res.returncode == 0, f"{line}\n{res.stderr[-2000:]}"
