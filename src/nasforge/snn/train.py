"""Training a spiking network from scratch and measuring it (thesis §5.4.1; ``snn train``).

The network is a searched architecture (``snn.arch``: block names on the backbone) or a
hand-crafted baseline (``snn.model``); both train under one protocol: Adam 1e-3 without a
schedule, batch 96, 600 epochs, pad-crop + flip + cutout 16 on static data, MSE between the
voting layer's firing rates and one-hot labels. The result reports test accuracy, spikes
per image (both conventions), parameters, synaptic operations, MACs and the energy estimate
per image (``snn.energy_profile``, :mod:`nasforge.snn.energy`), and a per-layer spike
profile for the figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasforge.checkpoint import (
    atomic_write_json,
    load_checkpoint,
    save_checkpoint,
)
from nasforge.config import Config
from nasforge.distributed import Dist
from nasforge.errors import NasforgeError
from nasforge.runtime import (
    LossWatch,
    amp_dtype,
    lower_lr_hint,
    pick_device,
    prepare_run_dir,
    resume_config,
    seed_everything,
    write_results,
)
from nasforge.skeleton import CHECKPOINT, Epoch, EpochRun, Stage, run_stage
from nasforge.snn.backbone import SNNBackbone
from nasforge.snn.blocks import bn_mode
from nasforge.snn.data import SNNData, load_snn_data, snn_batches, static_augment
from nasforge.snn.energy import DEFAULT_PROFILE, PROFILES, energy_summary
from nasforge.snn.epoch import adam, evaluate_rates, restore_training, train_epoch
from nasforge.snn.neuron import neuron_kind

MODEL = "model.pt"


def network_spec(cfg: Config, data: SNNData) -> dict[str, Any]:
    """What the trained network is, stored with it so it can be rebuilt without the config."""
    s = cfg.snn
    if (s.arch is None) == (s.model is None):
        raise NasforgeError("snn train needs exactly one of --arch BLOCKS (a searched "
                            "architecture) or --model NAME (a hand-crafted baseline)")
    return {"arch": s.arch, "model": s.model, "channels": s.channels,
            "timesteps": s.timesteps, "num_classes": data.num_classes,
            "in_size": data.in_size, "in_channels": data.in_channels, "variant": s.variant,
            "space": s.space, "neuron": s.neuron, "dataset": data.name, "bn": s.bn}


def build_network(spec: dict[str, Any]) -> nn.Module:
    """A backbone architecture or a baseline from a :func:`network_spec` dict."""
    with neuron_kind(spec["neuron"]), bn_mode(spec.get("bn", "per-step")):
        if spec["model"] is not None:
            from nasforge.snn.baselines import build_snn_model

            return build_snn_model(spec["model"], spec["channels"], spec["timesteps"],
                                   spec["num_classes"], spec["in_size"], spec["in_channels"])
        return SNNBackbone(spec["arch"], spec["channels"], spec["timesteps"],
                           spec["num_classes"], spec["in_size"], spec["in_channels"],
                           spec["variant"], spec["space"])


def network_label(spec: dict[str, Any]) -> str:
    return spec["model"] if spec["model"] is not None else spec["arch"]


def measure(model: nn.Module, batches, *, loss_kind: str, dtype: torch.dtype | None,
            timesteps: int, spiking: bool = True, profile: str = DEFAULT_PROFILE
            ) -> dict[str, Any]:
    """Test accuracy, spikes per image under both conventions (with per-layer profiles)
    and SOPs, MACs and energy per image under ``profile``.

    A ReLU network (``spiking=False``) has no spikes: those fields are None (its energy is
    all MACs).
    """
    forward = lambda x, _step: model(x)  # noqa: E731
    thesis = evaluate_rates(model, batches, forward=forward, loss_kind=loss_kind, dtype=dtype,
                            count="thesis" if spiking else None, timesteps=timesteps,
                            energy=True)
    energy = energy_summary(thesis.energy or {}, profile)
    out = {"test_acc": thesis.acc, "test_loss": thesis.loss, "spikes": thesis.spikes,
           "spikes_neurons": None, "per_layer": thesis.per_layer, "rates": None,
           "examples": thesis.examples, "sops": energy["sops"], "macs": energy["macs"],
           "energy_uj": energy["energy_uj"], "energy_profile": energy["profile"]}
    if spiking:
        neurons = evaluate_rates(model, batches, forward=forward, loss_kind=loss_kind,
                                 dtype=dtype, count="neurons", timesteps=timesteps)
        out.update(spikes_neurons=neurons.spikes, rates=neurons.rates)
    return out


def run_snn_train(cfg: Config, out: str | Path, *, resume: bool = False,
                  force: bool = False) -> dict:
    """Train the network of ``cfg.snn`` into ``out``; returns its ``results.json``."""
    out = Path(out)
    stage = SNNTrainStage(cfg, out, resume=resume, force=force)
    # one process: `snn train` does not run data-parallel
    return run_stage(stage, dist=Dist(device=stage.device), run_dir=out, epochs=cfg.snn.epochs,
                     steps=len(stage.train_batches), resume=resume,
                     progress=cfg.run.progress, resume_hint=lower_lr_hint(
                         f"nasforge snn train --resume {out}", "snn.lr", cfg.snn.lr))


class SNNTrainStage(Stage):
    """``snn train`` as a :class:`~nasforge.skeleton.Stage`: the constructor prepares the
    network and batches, :meth:`epoch` trains and validates one epoch, :meth:`finish` saves
    the model and measures accuracy and spikes on the test split."""

    kind = "snn-train"
    log_name = "train_log.csv"

    def __init__(self, cfg: Config, out: Path, *, resume: bool, force: bool) -> None:
        s = cfg.snn
        self.cfg, self.out = cfg, out
        PROFILES.get(s.energy_profile)  # a typo fails before anything runs
        device = self.device = pick_device(cfg.run.device)
        self.dtype = dtype = amp_dtype(device, cfg.run.amp)
        data = load_snn_data(cfg.data.dataset, cfg.data.root, timesteps=s.timesteps,
                             upscale=cfg.data.upscale)
        spec = self.spec = network_spec(cfg, data)
        seed_everything(cfg.run.seed, cfg.run.deterministic)
        self.model = build_network(spec).to(device)  # a bad arch fails before the run dir
        if not resume:
            prepare_run_dir(out, cfg, force=force)
        augment = static_augment(data, s.crop_pad, s.flip, s.cutout)
        self.train_batches = snn_batches(data, data.train, s.batch_size, device=device,
                                         seed=cfg.run.seed, augment=augment)
        eval_split = data.val if data.val is not None else data.test
        self.eval_batches = snn_batches(data, eval_split, s.eval_batch_size, device=device,
                                        shuffle=False)
        self.test_batches = snn_batches(data, data.test, s.eval_batch_size, device=device,
                                        shuffle=False)
        self.optimizer = adam(self.model.parameters(), s.lr, s.betas)
        self.scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        self.desc = f"snn train {network_label(spec)}"

    def restore(self, state: dict, path: Path) -> None:
        if state.get("kind") != "snn-train" or state.get("spec") != self.spec:
            raise NasforgeError(f"{path} is not a checkpoint of this training run")
        restore_training(self.model, self.optimizer, self.scaler, state, path, self.cfg.snn.lr)

    def forward(self, x: torch.Tensor, _step: int) -> torch.Tensor:
        return self.model(x)

    def epoch(self, epoch: int, run: EpochRun) -> Epoch:
        s, model = self.cfg.snn, self.model
        watch = LossWatch(self.device)
        train = train_epoch(model, self.train_batches, self.optimizer, epoch,
                            forward=self.forward, loss_kind=s.loss, dtype=self.dtype,
                            scaler=self.scaler, on_step=run.tick, watch=watch)
        run.check(train.loss, watch=watch, module=model)  # nothing of this epoch is saved
        val = evaluate_rates(model, self.eval_batches, forward=self.forward, loss_kind=s.loss,
                             dtype=self.dtype)
        run.check(val.loss, what="validation loss")
        return Epoch(row={"epoch": epoch, "train_loss": train.loss, "train_acc": train.acc,
                          "val_loss": val.loss, "val_acc": val.acc},
                     postfix=dict(epoch=epoch, loss=f"{train.loss:.4f}",
                                  val_acc=f"{val.acc:.1f}"))

    def checkpoint(self, epoch: int) -> dict:
        return {"spec": self.spec, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": None if self.scaler is None else self.scaler.state_dict()}

    def finish(self, elapsed: float) -> dict:
        s, out, spec, model = self.cfg.snn, self.out, self.spec, self.model
        state = load_checkpoint(out / CHECKPOINT)
        model.load_state_dict(state["model"])
        save_checkpoint({"kind": "snn-model", "spec": spec,
                         "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}},
                        out / MODEL)
        metrics = measure(model, self.test_batches, loss_kind=s.loss, dtype=self.dtype,
                          timesteps=s.timesteps, spiking=s.neuron == "plif",
                          profile=s.energy_profile)
        per_layer, rates = metrics.pop("per_layer"), metrics.pop("rates")
        if per_layer is not None:
            atomic_write_json(out / "spikes.json", {"label": network_label(spec),
                                                    "per_layer": per_layer, "rates": rates})
        results = {"stage": "snn-train", **{k: spec[k] for k in (
            "arch", "model", "channels", "timesteps", "variant", "space", "neuron", "dataset")},
            "label": network_label(spec),
            "kind": "hand-crafted" if spec["model"] else "searched",
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "epochs": s.epochs, **metrics, "convention": "thesis",
            "seconds": state["elapsed"]}
        write_results(out, results)
        return results


def resume_snn_train(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Continue a killed ``snn train`` run from its last checkpoint; ``overrides`` may lower
    the learning rate (:func:`nasforge.runtime.resume_config`)."""
    run_dir = Path(run_dir)
    cfg = resume_config(run_dir, overrides)
    if not (cfg.snn.arch or cfg.snn.model):
        raise NasforgeError(f"{run_dir} is not an `snn train` run (its config names neither "
                            "snn.arch nor snn.model); resume a directory `snn train` created")
    return run_snn_train(cfg, run_dir, resume=True)


def load_snn_model(run_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The trained network of an ``snn train`` run directory, in eval mode."""
    path = Path(run_dir) / MODEL
    if not path.exists():
        raise NasforgeError(f"no trained SNN in {run_dir} (expected {path})")
    state = load_checkpoint(path)
    model = build_network(state["spec"])
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval()
