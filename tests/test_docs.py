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
            "bench", "study", "quality", "data", "config", "demo"} <= used


@pytest.mark.parametrize("doc, line", COMMANDS)
def test_documented_command_parses(doc, line):
    parser = build_parser()
    try:
        parser.parse_args(shlex.split(line)[1:])
    except (SystemExit, NasforgeError) as err:
        pytest.fail(f"{doc}: {line}: {err}")
