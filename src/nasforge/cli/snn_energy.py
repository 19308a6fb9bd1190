"""The energy options and printouts of ``nasforge snn describe|search|train``
(docs/autosnn.md §Energy), added to the parsers of :mod:`nasforge.cli.snn`."""

from __future__ import annotations

import argparse

from nasforge.errors import NasforgeError

PROFILE_HELP = ("per-operation energy costs: 45nm (default, 32-bit float), 45nm-fp16, "
                "45nm-int32, 45nm-int8 (Horowitz 2014)")
SEARCH_OPTIONS = {"--energy-profile": "snn.energy_profile", "--energy-lam": "snn.energy_lam",
                  "--max-energy": "snn.max_energy", "--warm-start": "snn.warm_start",
                  "--warm-proxy": "snn.warm_proxy"}


def positive_float(text: str) -> float:
    """argparse type of an energy budget: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0 (µJ per image); got {text}")
    return value


def add_profile_arg(q: argparse.ArgumentParser) -> None:
    q.add_argument("--energy-profile", metavar="NAME", help=PROFILE_HELP)


def add_search_args(q: argparse.ArgumentParser) -> None:
    add_profile_arg(q)
    q.add_argument("--energy-lam", type=float, metavar="L",
                   help="fitness also x (E/E_avg)^L (default 0: spikes only; < 0 favours "
                        "less energy)")
    q.add_argument("--max-energy", type=positive_float, metavar="UJ",
                   help="energy budget in µJ per image: paths above it never enter the "
                        "population")
    q.add_argument("--warm-start", type=int, metavar="M",
                   help="evolution: draw M > pool paths for round 1, keep the pool best by "
                        "a zero-cost proxy (default 0: off)")
    q.add_argument("--warm-proxy", metavar="NAME", help="the warm start's proxy (naswot)")


def search_sets(args: argparse.Namespace) -> dict[str, object]:
    """The config keys the search's energy options set (None: not given)."""
    return {key: getattr(args, option[2:].replace("-", "_"))
            for option, key in SEARCH_OPTIONS.items()}


def given_search_options(args: argparse.Namespace) -> list[str]:
    return [option for option in SEARCH_OPTIONS
            if getattr(args, option[2:].replace("-", "_")) is not None]


def check_profile(name: str | None) -> str:
    from nasforge.snn.energy import DEFAULT_PROFILE, PROFILES

    return PROFILES.get(name or DEFAULT_PROFILE).name


def describe_text(info: dict) -> str:
    """What ``snn describe`` prints: size, and with ``--measure`` spikes, per-layer SOPs
    and MACs and the total energy."""
    line = (f"params: {info['params_m']:.2f}M  neurons: {info['neurons']:,}  "
            f"({info['dataset']}, C={info['channels']}, T={info['timesteps']}, {info['arch']})")
    if "energy" not in info:
        return line
    line += (f"\nspikes per image: {info['spikes_per_image']:,.0f} "
             f"({info['convention']} convention, {info['data']} batch of {info['batch']})")
    return f"{line}\n{energy_text(info['energy'])}"


def energy_text(energy: dict) -> str:
    """Per-layer SOPs, MACs and energy, and the total (``measure_energy``'s result)."""
    layers = energy["per_layer"]
    width = max([len("layer"), *(len(n) for n in layers)])
    lines = [f"{'layer':<{width}}  {'SOPs':>14}  {'MACs':>14}  {'energy (pJ)':>14}"]
    for name, row in layers.items():
        lines.append(f"{name:<{width}}  {row['sops']:>14,.0f}  {row['macs']:>14,.0f}  "
                     f"{row['energy_pj']:>14,.1f}")
    lines.append(f"energy per image: {energy['energy_uj']:.4g} uJ ({energy['sops']:,.0f} SOPs x "
                 f"{energy['e_ac_pj']:g} pJ + {energy['macs']:,.0f} MACs x "
                 f"{energy['e_mac_pj']:g} pJ, profile {energy['profile']})")
    return "\n".join(lines)


def train_text(results: dict) -> str:
    if results.get("energy_uj") is None:
        return ""
    return f", {results['energy_uj']:.4g} uJ per image ({results['energy_profile']})"


def print_searches(results: dict) -> None:
    """One line per λ of an ``snn search``: the top-1 and its scores."""
    for row in results["searches"]:
        energy = f", {row['energy']:.4g} uJ" if row.get("energy") is not None else ""
        over = (f"; {row['over_budget']} over the budget"
                if row.get("over_budget") else "")
        print(f"lam={row['lam']:+g}: {row['arch']}  (val acc {row['acc']:.2f}%, "
              f"{row['spikes']:,.0f} spikes{energy}, fitness {row['fitness']:.3f}{over})")


def refuse_profile_without_measure(args: argparse.Namespace) -> None:
    if args.energy_profile is not None and not args.measure:
        raise NasforgeError("snn describe: --energy-profile needs --measure (energy is "
                            "measured on a batch)")
