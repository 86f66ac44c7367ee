"""The optimizer (timm's factory) and the learning-rate schedules, chosen by name; plain values in (timm's
factories' way), so nothing here needs the run's config (``TrainConfig.optimizer_kwargs`` and
``scheduler_kwargs`` gather them).

Schedules other than ``plateau`` are per-step multipliers of the base learning rate (a ``LambdaLR``), so a
resumed run continues the curve exactly; ``plateau`` steps once per epoch on the validation metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from timm.optim import create_optimizer_v2
from torch import nn

from fer_synth.core.registry import Registry

OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd", "radam")

#: ``factor(step, steps_per_epoch, **settings) -> multiplier`` of the base learning rate after ``step`` steps; each
#: schedule takes the settings it uses by name and ignores the others.
LR_SCHEDULES: Registry[Callable[..., float]] = Registry("schedule")


def create_optimizer(
    module: nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9, nesterov: bool = True
) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``module``'s trainable parameters (the model and a loss with parameters, as one
    module). timm's factory leaves biases and norm parameters (1-d tensors) without weight decay."""
    if name == "sgd":
        opt, extra = ("sgd" if nesterov else "momentum"), {}
    elif name == "radam":
        opt, extra = "radam", {"decoupled_weight_decay": True}
    else:
        opt, extra = name, {}
    return create_optimizer_v2(module, opt=opt, lr=lr, weight_decay=weight_decay, momentum=momentum, **extra)


def _cosine(t: float, floor: float) -> float:
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))


@LR_SCHEDULES.register("constant")
@LR_SCHEDULES.register("plateau")  # a per-step factor of 1; ReduceLROnPlateau acts once per epoch
def _constant(step: int, steps_per_epoch: int, **_) -> float:
    return 1.0


@LR_SCHEDULES.register("cosine-warmup")
def _cosine_warmup(
    step: int, steps_per_epoch: int, *, epochs: float, warmup_epochs: float, min_lr_ratio: float, **_
) -> float:
    epoch = step / steps_per_epoch
    if epoch < warmup_epochs:
        return (step + 1) / (warmup_epochs * steps_per_epoch)
    span = max(epochs - warmup_epochs, 1e-9)
    return _cosine((epoch - warmup_epochs) / span, min_lr_ratio)


@LR_SCHEDULES.register("warm-restarts")
def _warm_restarts(
    step: int, steps_per_epoch: int, *, restart_epochs: float, restart_mult: float, min_lr_ratio: float, **_
) -> float:
    """SGDR (Loshchilov & Hutter 2017): cosine periods of ``restart_epochs``, each ``restart_mult`` longer."""
    epoch, period, start = step / steps_per_epoch, restart_epochs, 0.0
    while epoch >= start + period:
        start, period = start + period, period * restart_mult
    return _cosine((epoch - start) / period, min_lr_ratio)


@LR_SCHEDULES.register("one-cycle")
def _one_cycle(step: int, steps_per_epoch: int, *, epochs: float, **_) -> float:
    """Smith 2018: a 30% cosine rise from lr/25, then a cosine fall to lr/1e4."""
    t = step / steps_per_epoch / epochs
    if t < 0.3:
        return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * t / 0.3))
    return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * (t - 0.3) / 0.7))


@LR_SCHEDULES.register("cyclic-snapshots")
def _cyclic_snapshots(step: int, steps_per_epoch: int, *, cycle_epochs: float, min_lr_ratio: float, **_) -> float:
    """Huang et al. 2017 (snapshot ensembles): a cosine cycle of ``cycle_epochs`` per snapshot."""
    return _cosine((step / steps_per_epoch % cycle_epochs) / cycle_epochs, min_lr_ratio)


SCHEDULES: tuple[str, ...] = tuple(LR_SCHEDULES.names())


def lr_factor(schedule: str, step: int, steps_per_epoch: int, **settings) -> float:
    """The learning-rate multiplier of ``schedule`` after ``step`` optimizer steps (``settings``: ``epochs``,
    ``warmup_epochs``, ``min_lr_ratio``, ``restart_epochs``, ``restart_mult``, ``cycle_epochs``, as it uses them)."""
    return LR_SCHEDULES.get(schedule)(step, steps_per_epoch, **settings)


def create_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: str,
    steps_per_epoch: int,
    *,
    mode: str = "max",
    plateau_factor: float = 0.5,
    plateau_patience: int = 5,
    **settings,
):
    """``ReduceLROnPlateau`` for ``plateau`` (stepped per epoch with the val metric, which ``mode`` says is better
    high or low), else a per-step LambdaLR of :func:`lr_factor` with ``settings``."""
    if schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=plateau_factor, patience=plateau_patience
        )
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(schedule, step, steps_per_epoch, **settings)
    )


def cycle_ends(cycle_epochs: float, epoch: int, steps_per_epoch: int) -> bool:
    """Whether a ``cyclic-snapshots`` cycle of ``cycle_epochs`` ended during ``epoch`` (then a snapshot is saved)."""
    cycle_steps = cycle_epochs * steps_per_epoch
    return math.floor(epoch * steps_per_epoch / cycle_steps + 1e-9) > math.floor(
        (epoch - 1) * steps_per_epoch / cycle_steps + 1e-9
    )
