"""The optimizer (timm's factory) and the learning-rate schedules, chosen by name.

Schedules other than ``plateau`` are per-step multipliers of the base learning rate (a ``LambdaLR``), so a
resumed run continues the curve exactly; ``plateau`` steps once per epoch on the validation metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from timm.optim import create_optimizer_v2
from torch import nn

from fer_synth.core.registry import Registry

if TYPE_CHECKING:
    from fer_models.training.config import TrainConfig

OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd", "radam")

#: ``factor(config, step, steps_per_epoch) -> multiplier`` of the base learning rate after ``step`` steps.
LR_SCHEDULES: Registry[Callable[["TrainConfig", int, int], float]] = Registry("schedule")


def create_optimizer(config: TrainConfig, module: nn.Module) -> torch.optim.Optimizer:
    """The optimizer over ``module``'s trainable parameters (the model and a loss with parameters, as one
    module). timm's factory leaves biases and norm parameters (1-d tensors) without weight decay."""
    if config.optimizer == "sgd":
        opt, extra = ("sgd" if config.nesterov else "momentum"), {}
    elif config.optimizer == "radam":
        opt, extra = "radam", {"decoupled_weight_decay": True}
    else:
        opt, extra = config.optimizer, {}
    return create_optimizer_v2(module, opt=opt, lr=config.lr, weight_decay=config.weight_decay,
                               momentum=config.momentum, **extra)


def _cosine(t: float, floor: float) -> float:
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))


@LR_SCHEDULES.register("constant")
@LR_SCHEDULES.register("plateau")  # a per-step factor of 1; ReduceLROnPlateau acts once per epoch
def _constant(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    return 1.0


@LR_SCHEDULES.register("cosine-warmup")
def _cosine_warmup(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    epoch = step / steps_per_epoch
    if epoch < config.warmup_epochs:
        return (step + 1) / (config.warmup_epochs * steps_per_epoch)
    span = max(config.epochs - config.warmup_epochs, 1e-9)
    return _cosine((epoch - config.warmup_epochs) / span, config.min_lr_ratio)


@LR_SCHEDULES.register("warm-restarts")
def _warm_restarts(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """SGDR (Loshchilov & Hutter 2017): cosine periods of ``restart_epochs``, each ``restart_mult`` longer."""
    epoch, period, start = step / steps_per_epoch, config.restart_epochs, 0.0
    while epoch >= start + period:
        start, period = start + period, period * config.restart_mult
    return _cosine((epoch - start) / period, config.min_lr_ratio)


@LR_SCHEDULES.register("one-cycle")
def _one_cycle(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Smith 2018: a 30% cosine rise from lr/25, then a cosine fall to lr/1e4."""
    t = step / steps_per_epoch / config.epochs
    if t < 0.3:
        return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * t / 0.3))
    return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * (t - 0.3) / 0.7))


@LR_SCHEDULES.register("cyclic-snapshots")
def _cyclic_snapshots(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Huang et al. 2017 (snapshot ensembles): a cosine cycle of ``cycle_epochs`` per snapshot."""
    return _cosine((step / steps_per_epoch % config.cycle_epochs) / config.cycle_epochs, config.min_lr_ratio)


SCHEDULES: tuple[str, ...] = tuple(LR_SCHEDULES.names())


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning-rate multiplier after ``step`` optimizer steps."""
    return LR_SCHEDULES.get(config.schedule)(config, step, steps_per_epoch)


def create_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """``ReduceLROnPlateau`` for ``plateau`` (stepped per epoch with the val metric), else a per-step LambdaLR."""
    if config.schedule == "plateau":
        mode = "min" if config.monitor == "nll" else "max"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=config.plateau_factor, patience=config.plateau_patience)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, steps_per_epoch))


def cycle_ends(config: TrainConfig, epoch: int, steps_per_epoch: int) -> bool:
    """Whether a ``cyclic-snapshots`` cycle ended during ``epoch`` (then a snapshot is saved)."""
    cycle_steps = config.cycle_epochs * steps_per_epoch
    return (math.floor(epoch * steps_per_epoch / cycle_steps + 1e-9)
            > math.floor((epoch - 1) * steps_per_epoch / cycle_steps + 1e-9))
