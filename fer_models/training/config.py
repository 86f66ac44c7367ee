"""A training run's settings: :class:`TrainConfig`, built from defaults, a recipe and overrides.

Recipes (``fer_models/recipes/*.yaml``) and command-line flags set the same fields by name; the command line
takes its choices and defaults from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from fer_models.data import TTA_MODES, Augment, check_tta
from fer_models.losses import CLASS_WEIGHTINGS, LOSSES
from fer_models.models import get_spec
from fer_models.recipes import INFO_KEYS, load_recipe
from fer_models.training.optim import OPTIMIZERS, SCHEDULES
from fer_models.training.precision import AMP_MODES
from fer_synth.core.errors import FerError, InvalidOptionError

DEFAULT_DATA = "fer2013_balanced.h5"
DEFAULT_MODEL = "small-cnn"
MONITORS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1", "nll")
#: What ``time_budget`` counts: wall-clock seconds, or this process's CPU seconds (all its threads), which other
#: work on a shared machine does not eat into (with one thread, what the run would take on an idle core).
BUDGET_CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass
class TrainConfig:
    """Every setting of a run; recipes and command-line flags set these fields by name."""

    data: str = DEFAULT_DATA
    model: str = DEFAULT_MODEL
    out: str | None = None  # runs/<model>
    weights: str | None = None  # local .safetensors to start from (ImageNet weights)
    model_options: dict = field(default_factory=dict)
    input_size: int | None = None  # side the data path renders; default: the model's (e.g. 48 for timm:resnet18 on CPU)
    epochs: int = 30
    time_budget: float | None = None  # seconds of training; stops cleanly after the batch that crosses it
    budget_clock: str = "wall"  # what time_budget counts: wall | cpu (see BUDGET_CLOCKS)
    batch_size: int = 64
    eval_batch_size: int = 512
    optimizer: str = "adamw"
    lr: float = 0.003
    weight_decay: float = 0.05
    momentum: float = 0.9  # SGD
    nesterov: bool = True  # SGD
    schedule: str = "cosine-warmup"
    warmup_epochs: float = 1.0  # cosine-warmup
    min_lr_ratio: float = 0.0  # cosine schedules end at lr * min_lr_ratio
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    restart_epochs: float = 10.0  # warm-restarts: first period (T0) ...
    restart_mult: float = 2.0  # ... and its growth (T_mult)
    cycle_epochs: float = 10.0  # cyclic-snapshots: one snapshot per cycle
    loss: str = "ce"
    loss_options: dict = field(default_factory=dict)
    label_smoothing: float = 0.0
    class_weighting: str = "none"  # none | balanced | sqrt
    balanced_sampler: bool = False
    augment: dict = field(
        default_factory=lambda: {"scale": [0.85, 1.0], "translate": 0.05, "hflip": True, "rotate": 10}
    )
    tta: str = "flip"  # what `evaluate` uses by default; validation during training uses no TTA
    amp: str = "auto"
    clip_grad: float | None = None
    ema: float | None = None  # EMA decay, e.g. 0.999; evaluation and checkpoints then use the EMA weights
    early_stop: int | None = None  # epochs without improvement of `monitor` before stopping
    monitor: str = "accuracy"
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # torch CPU threads; 1 is often fastest on a loaded machine
    progress: bool = True
    recipe: str | None = None

    def check(self) -> None:
        """Raise a :class:`FerError` naming the first setting that cannot work."""
        for name, value, allowed in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("schedule", self.schedule, SCHEDULES),
            ("amp", self.amp, AMP_MODES),
            ("monitor", self.monitor, MONITORS),
            ("budget_clock", self.budget_clock, tuple(BUDGET_CLOCKS)),
            ("class_weighting", self.class_weighting, CLASS_WEIGHTINGS),
        ):
            if value not in allowed:
                raise InvalidOptionError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        check_tta(self.tta)
        LOSSES.get(self.loss)
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise InvalidOptionError(f"{name} must be at least 1, got {getattr(self, name)}")
        unknown = set(self.augment) - {f.name for f in fields(Augment)}
        if unknown:
            raise InvalidOptionError(
                f"unknown augmentation(s) {sorted(unknown)}; known: {', '.join(f.name for f in fields(Augment))}"
            )
        get_spec(self.model)

    def optimizer_kwargs(self) -> dict:
        """The optimizer's settings, as :func:`~fer_models.training.optim.create_optimizer` takes them."""
        return {
            "name": self.optimizer,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
        }

    def scheduler_kwargs(self) -> dict:
        """The LR schedule's settings, as :func:`~fer_models.training.optim.create_scheduler` takes them."""
        return {
            "schedule": self.schedule,
            "mode": "min" if self.monitor == "nll" else "max",
            "plateau_factor": self.plateau_factor,
            "plateau_patience": self.plateau_patience,
            "epochs": self.epochs,
            "warmup_epochs": self.warmup_epochs,
            "min_lr_ratio": self.min_lr_ratio,
            "restart_epochs": self.restart_epochs,
            "restart_mult": self.restart_mult,
            "cycle_epochs": self.cycle_epochs,
        }


def make_config(recipe: str | None = None, augment_overrides: dict | None = None, **overrides) -> TrainConfig:
    """Defaults, then the recipe's values, then every override that is not None.

    ``augment`` replaces the augmentation mapping; ``augment_overrides`` changes single entries of it (what
    the command line's --rotate, --erasing, ... do)."""
    known = {f.name for f in fields(TrainConfig)}
    values: dict = {}
    if recipe is not None:
        values = {k: v for k, v in load_recipe(recipe).items() if k not in INFO_KEYS + ("name",)}
        values["recipe"] = recipe
        unknown = set(values) - known
        if unknown:
            raise FerError(f"recipe {recipe!r} sets unknown field(s) {sorted(unknown)}; see docs/training.md")
    for key, value in overrides.items():
        if key not in known:
            raise FerError(f"unknown training setting {key!r}")
        if value is None:
            continue
        values[key] = value
    if augment_overrides:
        values["augment"] = {**values.get("augment", TrainConfig().augment), **augment_overrides}
    config = TrainConfig(**values)
    if config.out is None:
        config.out = str(Path("runs") / config.model.replace(":", "-"))
    config.check()
    return config


__all__ = [
    "AMP_MODES",
    "BUDGET_CLOCKS",
    "CLASS_WEIGHTINGS",
    "DEFAULT_DATA",
    "DEFAULT_MODEL",
    "MONITORS",
    "TTA_MODES",
    "TrainConfig",
    "make_config",
]
