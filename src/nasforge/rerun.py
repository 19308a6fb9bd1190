"""Re-running a command into a folder that already holds its results (docs/resume.md).

The studies (``study proxy``, ``study algorithms``, ``quality``, ``snn quality``), ``snn
search`` and ``sweep`` keep what an earlier call into the same ``--out`` finished and only
compute what is missing, so a killed call continues by running it again. That is only
right when the earlier rows were computed with the same settings: a re-run whose settings
differ is refused with one line naming them (or, with ``--force``, recomputes the rows).

"Same settings" means every config key except how the run executes
(:data:`RUN_OPTIONS`) and the keys each command lists as its *plan* (which rows to make,
e.g. ``study.seeds``: adding a seed keeps the finished ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nasforge.errors import NasforgeError

RUN_OPTIONS = ("data.root", "run.device", "run.progress", "run.amp", "run.channels_last",
               "run.compile", "run.deterministic")
"""Config keys that change how a run executes, not the rows it makes (they may differ)."""


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"search": {"epochs": 1}}`` → ``{"search.epochs": 1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _ignored(key: str, ignore: Iterable[str]) -> bool:
    return any(key == i or key.startswith(f"{i}.") for i in ignore)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def setting_differences(old: Mapping[str, Any], new: Mapping[str, Any],
                        ignore: Iterable[str] = (), *,
                        run_options: Iterable[str] = RUN_OPTIONS) -> list[str]:
    """``key old -> new`` for every setting that differs, except ``run_options`` and
    ``ignore`` (dotted keys or whole sections)."""
    skip = (*run_options, *ignore)
    a, b = flatten(old), flatten(new)
    return [f"{key} {_short(a.get(key))} -> {_short(b.get(key))}"
            for key in sorted(set(a) | set(b))
            if not _ignored(key, skip) and a.get(key) != b.get(key)]


def describe(diffs: list[str], limit: int = 3) -> str:
    text = "; ".join(diffs[:limit])
    return text + (f"; and {len(diffs) - limit} more" if len(diffs) > limit else "")


def other_settings_error(out: str | Path, what: str, diffs: list[str], *,
                         force: bool = True) -> NasforgeError:
    """The one-line refusal of a re-run whose settings differ from the saved ones."""
    how = "use a new --out, or --force to recompute them" if force else "use a new --out"
    return NasforgeError(f"{out} holds {what} made with other settings ({describe(diffs)}); "
                         f"its results would be reused under the new values: {how}")

