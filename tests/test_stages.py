"""The stage registry (``nasforge.stages``): its facts match what each stage writes and what
the command line accepts, and the command line, sweep, runs and runtime read them."""

import argparse
import json
import shlex
from pathlib import Path

import pytest

from conftest import TINY_SEARCH, TINY_TRAIN
from nasforge.cli import build_parser, main
from nasforge.config import config_to_dict, load_config
from nasforge.run_status import run_info
from nasforge.stages import (
    Stage,
    all_stages,
    data_parallel_commands,
    get_stage,
    register_stage,
    resume_learning_rates,
    stage_logs,
    stage_of_command,
    sweepable_stages,
)

SNN = ["snn.channels=4", "snn.timesteps=2", "snn.epochs=1", "snn.batch_size=64",
       "snn.crop_pad=0", "snn.flip=false", "snn.cutout=0", "run.progress=false"]
NOT_STAGES = {("report",), ("sweep",)}
"""Commands with a run-like --out that are no stage: a report, and sweep (it runs stages)."""


def _sets(*values: str) -> list[str]:
    return [a for v in values for a in ("--set", v)]


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
              ) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every leaf command of the CLI with its parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix: parser}
    out = {}
    for name, sub in subs[0].choices.items():
        out.update(_commands(sub, (*prefix, name)))
    return out


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def test_every_long_running_command_has_a_stage():
    """A command that makes a run directory or study folder (--out, replaced only with
    --force or continued by re-running it, not a single output file) has a stage, and every
    stage's command exists."""
    commands = _commands(build_parser())
    long_running = {c for c, p in commands.items()
                    if {"--out", "--force"} <= _options(p) and not p.get_default("new_files")}
    assert long_running - NOT_STAGES == {s.command for s in all_stages()}
    for stage in all_stages():
        assert stage_of_command(stage.command) is stage
        resume = "--resume" in _options(commands[stage.command])
        assert resume == (stage.resume_option or stage.name == "snn-search"), stage.name


def test_resume_hints_are_commands_the_cli_accepts():
    parser = build_parser()
    for stage in all_stages():
        hint = stage.resume_command("RUN")
        assert (hint is not None) == stage.resumable, stage.name
        if stage.resume_option:
            argv = shlex.split(hint.split(" (")[0])
            assert argv[0] == "nasforge" and tuple(argv[1:len(stage.command) + 1]) == \
                stage.command
            args = parser.parse_args(argv[1:])
            assert args.resume, stage.name
        elif hint is not None:
            assert f"`nasforge {stage.command_text} " in hint and "--out RUN`" in hint


def test_config_sections_and_keys_exist():
    default = config_to_dict(load_config())
    for stage in all_stages():
        assert stage.section is None or stage.section in default, stage.name
        if stage.epochs:
            section, key = stage.epochs.split(".")
            assert isinstance(default[section][key], int), stage.name
        assert (stage.log is None) == (stage.epochs is None), stage.name
        for key in stage.resume_lrs:
            section, name = key.split(".")
            assert isinstance(default[section][name], float), key
            load_config(None, [f"{key}=0.5"])  # a real, settable key


def test_libraries_read_the_registry():
    from nasforge import run_status, runtime, sweep

    assert run_status.LOGS == stage_logs() == {
        "search": "search_log.csv", "train": "train_log.csv", "entropy": "train_log.csv",
        "snn-supernet": "supernet_log.csv", "snn-train": "train_log.csv"}
    assert runtime.RESUME_OVERRIDES[:6] == resume_learning_rates() == (
        "search.w_lr", "search.w_lr_min", "train.lr", "train.lr_min", "entropy.lr", "snn.lr")
    assert list(sweep.SWEEPABLE) == [s.command for s in sweepable_stages()] == [
        ("search",), ("train",), ("quality",), ("snn", "supernet"), ("snn", "search"),
        ("snn", "train"), ("snn", "quality")]
    assert sweep.SWEEPABLE[("quality",)] == "summary.json"
    needs_force = {("search",), ("train",), ("snn", "supernet"), ("snn", "train")}
    assert needs_force == sweep.NEEDS_FORCE
    assert data_parallel_commands() == ("search", "train", "entropy", "snn supernet")


def test_sweep_parses_stage_commands_as_the_cli_does():
    """sweep checks a trial's command line with the stage commands' grammar, not the whole
    command line (which imports sweep): both accept the same options."""
    from nasforge.cli.stage_commands import command_options, stage_parser

    full = _commands(build_parser())
    staged = _commands(stage_parser())
    for stage in all_stages():
        assert command_options(stage.command) == _options(full[stage.command]), stage.name
        assert staged[stage.command].format_help() == full[stage.command].format_help()


def test_torchrun_refusal_lists_the_data_parallel_stages(monkeypatch, capsys, tmp_path):
    import nasforge.distributed

    monkeypatch.setattr(nasforge.distributed, "launched", lambda: True)
    assert main(["runs", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "nasforge: error: 'runs' does not run under torchrun; data-parallel commands: "
        "search, train, entropy, snn supernet\n")


def test_a_stage_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        register_stage(Stage("search", ("x",), None, "results.json"))
    with pytest.raises(ValueError, match="has a stage already"):
        register_stage(Stage("other", ("search",), None, "results.json"))
    with pytest.raises(Exception, match="unknown stage 'nope'"):
        get_stage("nope")


def _check_run(run_dir: Path, name: str, epochs: int) -> None:
    """``run_dir`` holds what stage ``name`` says it writes, and ``runs`` reads it so."""
    stage = get_stage(name)
    results = json.loads((run_dir / stage.results).read_text())
    assert results["stage"] == name
    info = run_info(run_dir)
    assert (info.kind, info.status) == (name, "done")
    if stage.log:
        assert (run_dir / stage.log).is_file()
        assert (info.epoch, info.epochs) == (epochs, epochs)
    assert stage.progress_file is None or (run_dir / stage.progress_file).is_file()


@pytest.mark.usefixtures("one_thread")
def test_stages_write_the_files_the_registry_names(tmp_path, proxy_file, capsys,
                                                   monkeypatch):
    """Tiny runs of every stage with a per-epoch log (and snn search): their log, results
    file and stage name are the registry's."""
    from nasforge.proxy.models import AUX_MODELS, cifar_resnet

    monkeypatch.setitem(AUX_MODELS._entries, "resnet8", lambda k, c: cifar_resnet(8, k, c))
    proxy = f"data.proxy={proxy_file}"
    assert main(["search", "--algo", "darts", "--dataset", "digits", "--out",
                 str(tmp_path / "search"), *_sets(*TINY_SEARCH, proxy)]) == 0
    _check_run(tmp_path / "search", "search", 2)
    assert main(["train", "--genotype", str(tmp_path / "search"), "--out",
                 str(tmp_path / "train"), *_sets(*TINY_TRAIN, "train.epochs=1", proxy)]) == 0
    _check_run(tmp_path / "train", "train", 1)
    assert main(["entropy", "--out", str(tmp_path / "entropy.tsv"), *_sets(
        "entropy.model=resnet8", "entropy.epochs=1", "entropy.milestones=[1]",
        "entropy.crop_pad=1", "entropy.batch_size=256", "run.progress=false")]) == 0
    _check_run(tmp_path / "entropy.tsv.run", "entropy", 1)
    assert main(["snn", "supernet", "--out", str(tmp_path / "sn"), *_sets(*SNN, proxy)]) == 0
    _check_run(tmp_path / "sn", "snn-supernet", 1)
    assert main(["snn", "search", "--supernet", str(tmp_path / "sn"), "--out",
                 str(tmp_path / "ss"), "--lam", "-0.08", *_sets(
                     "snn.rounds=2", "snn.pool=4", "snn.top_k=2", "snn.mutations=2",
                     "snn.crossovers=1", "snn.blocks=[SCB_k3,SRB_k3,skip]",
                     "run.progress=false")]) == 0
    _check_run(tmp_path / "ss", "snn-search", 0)
    assert main(["snn", "train", "--arch", str(tmp_path / "ss"), "--out",
                 str(tmp_path / "st"), *_sets(*SNN, proxy)]) == 0
    _check_run(tmp_path / "st", "snn-train", 1)
    capsys.readouterr()
