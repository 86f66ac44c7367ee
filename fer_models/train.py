"""The training loop: a split held on the device, batched augmentation, AMP, EMA, schedules, checkpoints.

``train(config)`` runs one training run into ``config.out``:

* ``best.safetensors``/``best.json``: the weights with the best validation metric (never test),
* ``last.*`` and ``last-state.safetensors``: the latest epoch with optimizer, scheduler, EMA and loss state
  (a loss's own parameters, e.g. EmoNeXt's attention) for ``resume``; epochs draw their randomness from
  (seed, epoch), so a resumed run ends where an uninterrupted one would,
* ``snapshot-NN.*`` per cycle of the ``cyclic-snapshots`` schedule (snapshot ensembles),
* ``metrics.csv``/``metrics.json`` per epoch, ``curves.png``, ``config.json``.

Under ``torchrun``/``accelerate launch`` (``WORLD_SIZE`` > 1) it trains with torch.distributed DDP: each rank
takes its share of every batch order; rank 0 evaluates and writes.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fer_models import checkpoint as ckpt
from fer_models.data import TTA_MODES, Augment, augment_batch, batches, data_identity, epoch_order, load_split, mix_batch
from fer_models.losses import build_loss, class_weights
from fer_models.metrics import classification_metrics
from fer_models.models import create_model, get_spec
from fer_models.predict import predict_probs
from fer_models.recipes import INFO_KEYS, load_recipe
from fer_synth.core.atomic import atomic_file, write_bytes
from fer_synth.core.classes import CLASSES
from fer_synth.core.console import console, warn
from fer_synth.core.errors import FerError

DEFAULT_DATA = "fer2013_balanced.h5"
DEFAULT_MODEL = "small-cnn"
OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd", "radam")
SCHEDULES: tuple[str, ...] = ("constant", "plateau", "cosine-warmup", "warm-restarts", "one-cycle", "cyclic-snapshots")
AMP_MODES: tuple[str, ...] = ("auto", "none", "bf16", "fp16")
MONITORS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1", "nll")


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
    augment: dict = field(default_factory=lambda: {"scale": [0.85, 1.0], "translate": 0.05, "hflip": True, "rotate": 10})
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
        for name, value, allowed in (("optimizer", self.optimizer, OPTIMIZERS), ("schedule", self.schedule, SCHEDULES),
                                     ("amp", self.amp, AMP_MODES), ("monitor", self.monitor, MONITORS),
                                     ("tta", self.tta, TTA_MODES)):
            if value not in allowed:
                raise FerError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise FerError(f"{name} must be at least 1, got {getattr(self, name)}")
        unknown = set(self.augment) - {f.name for f in fields(Augment)}
        if unknown:
            raise FerError(f"unknown augmentation(s) {sorted(unknown)}; known: {', '.join(f.name for f in fields(Augment))}")
        get_spec(self.model)


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


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owned: bool = False  # this run started the process group, so it ends it

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: str) -> Dist:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Dist()
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owned)


def _device(config: TrainConfig, d: Dist) -> torch.device:
    if config.device != "auto":
        return torch.device(config.device)
    if torch.cuda.is_available():
        return torch.device("cuda", d.local_rank)
    return torch.device("cpu")


def _amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or config.amp == "none":
        if config.amp in ("bf16", "fp16") and device.type != "cuda":
            warn(f"--amp {config.amp} is for GPUs; training in float32 on {device}")
        return None
    if config.amp == "fp16":
        return torch.float16
    return torch.bfloat16


def make_optimizer(config: TrainConfig, *modules: nn.Module) -> torch.optim.Optimizer:
    """The optimizer over the trainable parameters of ``modules`` (the model, and a loss that has parameters)."""
    params = [p for module in modules for p in module.parameters() if p.requires_grad]
    # No weight decay on biases and norm parameters (1-d tensors), as timm does.
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.optimizer == "radam":
        return torch.optim.RAdam(groups, lr=config.lr, decoupled_weight_decay=True)
    return torch.optim.AdamW(groups, lr=config.lr)


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning-rate multiplier after ``step`` optimizer steps, for the per-step schedules."""
    epoch = step / steps_per_epoch
    floor = config.min_lr_ratio

    def cosine(t: float) -> float:
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))

    if config.schedule == "cosine-warmup":
        if epoch < config.warmup_epochs:
            return (step + 1) / (config.warmup_epochs * steps_per_epoch)
        return cosine((epoch - config.warmup_epochs) / max(config.epochs - config.warmup_epochs, 1e-9))
    if config.schedule == "warm-restarts":  # SGDR, Loshchilov & Hutter 2017
        period, start = config.restart_epochs, 0.0
        while epoch >= start + period:
            start, period = start + period, period * config.restart_mult
        return cosine((epoch - start) / period)
    if config.schedule == "one-cycle":  # Smith 2018: 30% rise from lr/25, cosine down to lr/1e4
        t = epoch / config.epochs
        if t < 0.3:
            return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * t / 0.3))
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * (t - 0.3) / 0.7))
    if config.schedule == "cyclic-snapshots":  # Huang et al. 2017: a cosine cycle per snapshot
        return cosine((epoch % config.cycle_epochs) / config.cycle_epochs)
    return 1.0


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    if config.schedule == "plateau":
        mode = "min" if config.monitor == "nll" else "max"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=config.plateau_factor, patience=config.plateau_patience)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, steps_per_epoch))


def _better(config: TrainConfig, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best if config.monitor == "nll" else value > best


class Objective(nn.Module):
    """The model and its loss as one module: ``(images, targets) -> (logits, loss)``.

    DDP wraps this, so the gradients of a loss's own parameters are averaged across ranks like the model's.
    """

    def __init__(self, model: nn.Module, loss: nn.Module):
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return logits, self.loss(logits, targets)


@dataclass
class RunResult:
    out: Path
    epochs_done: int
    best_epoch: int | None
    best_metric: float | None
    history: list[dict]
    stopped_by: str
    model: nn.Module  # the evaluated weights (EMA when on) at the end of the run
    loss: nn.Module  # the training loss, with the parameters it learned if it has any


def _missing_data_error(path: str) -> FerError:
    return FerError(
        f"{path}: no such data file. Make it with `fer-synth balance fer2013/` (writes {DEFAULT_DATA}) or "
        "`fer-synth pack fer2013.csv.gz --out data.h5`, or give one with --data"
    )


def train(config: TrainConfig, resume: bool = False) -> RunResult:
    """Run (or with ``resume``, continue) the training run that ``config`` describes."""
    config.check()
    if not Path(config.data).exists():
        raise _missing_data_error(config.data)
    if config.threads:
        torch.set_num_threads(config.threads)
    data_id = data_identity(config.data)
    device_name = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    d = _init_distributed(device_name)
    device = _device(config, d)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out = Path(config.out)
    spec = get_spec(config.model)
    input_size = config.input_size or int(config.model_options.get("input_size", spec.input_size))

    train_split = load_split(config.data, "train", device)
    val_split = load_split(config.data, "val", device)
    if not len(train_split) or not len(val_split):
        raise FerError(f"{config.data}: training needs non-empty train and val splits "
                       f"(train {len(train_split)}, val {len(val_split)} rows)")
    if val_split.n_synthetic:
        warn(f"the val split holds {val_split.n_synthetic} SYNTHETIC rows: model selection is not on real data only")

    torch.manual_seed(config.seed)
    model = create_model(config.model, num_classes=len(CLASSES), weights=config.weights, **config.model_options)
    model.to(device)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True) if config.ema else None
    # The loss comes after the EMA copy (a feature regulariser hooks the model; the copy needs no hook) and before
    # the optimizer, which trains the loss's own parameters (EmoNeXt's attention) with the model's.
    weights = class_weights(train_split.counts(), config.class_weighting)
    loss_fn = build_loss(config.loss, class_weights=None if weights is None else weights.to(device),
                         label_smoothing=config.label_smoothing, model=model, **config.loss_options).to(device)
    optimizer = make_optimizer(config, model, loss_fn)
    steps_per_epoch = len(batches(torch.arange(len(train_split)), config.batch_size, d.rank, d.world_size))
    if steps_per_epoch == 0:
        raise FerError(f"batch size {config.batch_size} x {d.world_size} process(es) exceeds the "
                       f"{len(train_split)} training rows; lower --batch-size")
    scheduler = make_scheduler(config, optimizer, steps_per_epoch)
    amp_dtype = _amp_dtype(config, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    aug = Augment(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.augment.items()})

    start_epoch, history, best, best_epoch, stale = 0, [], None, None, 0
    if resume:
        last = out / "last.json"
        if not last.exists():
            raise FerError(f"{out}: nothing to resume (no last.json); run without --resume to start")
        meta = ckpt.read_meta(last)
        _check_resumable(meta["config"], config)
        state = ckpt.load_state(meta)
        model.load_state_dict(state["model"])
        loss_fn.load_state_dict(state.get("loss", {}))  # runs saved before losses had state have none
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start_epoch, history = meta["epoch"], meta["history"]
        best, best_epoch, stale = state["best"], state["best_epoch"], state["stale"]

    objective = Objective(model, loss_fn)
    net: nn.Module = objective
    if d.world_size > 1:
        net = nn.parallel.DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
    eval_model = ema.module if ema is not None else model

    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(out / "config.json", asdict(config))
        loss_params = sum(p.numel() for p in loss_fn.parameters())
        console.print(f"[bold]training[/] {config.model} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M "
                      f"params{f', loss {config.loss} {loss_params / 1e6:.2f}M' if loss_params else ''}, "
                      f"{spec.in_chans}x{input_size}x{input_size}) on {len(train_split)} train / "
                      f"{len(val_split)} val rows ({train_split.n_synthetic} synthetic in train), {device}"
                      f"{f' x{d.world_size}' if d.world_size > 1 else ''} -> {out}")

    meta_base = {"model": config.model, "model_options": config.model_options, "input_size": input_size,
                 "in_chans": spec.in_chans, "classes": list(CLASSES), "num_classes": len(CLASSES),
                 "tta": config.tta, "config": asdict(config), "data": data_id}
    started = time.perf_counter()
    stopped_by = "epochs"
    epoch = start_epoch
    for epoch in range(start_epoch + 1, config.epochs + 1):
        # Every random draw of an epoch comes from (seed, epoch): resuming replays exactly.
        torch.manual_seed(config.seed * 1_000_003 + epoch)
        g = torch.Generator(device=device).manual_seed(config.seed * 1_000_003 + epoch)
        order = epoch_order(train_split.labels, g, config.balanced_sampler)
        net.train()
        epoch_start = time.perf_counter()
        seen, loss_sum, correct = 0, torch.zeros((), device=device), torch.zeros((), device=device)
        progress = _Progress(d.main and config.progress, epoch, config.epochs, steps_per_epoch)
        out_of_time = False
        for step, index in enumerate(batches(order, config.batch_size, d.rank, d.world_size)):
            x = augment_batch(train_split.images[index], aug, input_size, spec.in_chans, g)
            y = train_split.labels[index]
            x, targets = (mix_batch(x, y, aug, g) if aug.mixup or aug.cutmix else (x, y))
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits, loss = net(x, targets)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if config.clip_grad:
                nn.utils.clip_grad_norm_(objective.parameters(), config.clip_grad)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if config.schedule != "plateau":
                scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            hard = targets if targets.ndim == 1 else targets.argmax(1)
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == hard).sum()
            seen += len(y)
            progress.update(step + 1, loss_sum, correct, seen, time.perf_counter() - epoch_start)
            if config.time_budget is not None:
                out_of_time = _agree(time.perf_counter() - started >= config.time_budget, d, device)
                if out_of_time:
                    break
        progress.close()
        seconds = time.perf_counter() - epoch_start
        train_loss, train_acc, images = _reduce(loss_sum, correct, seen, d, device)
        if d.world_size > 1:  # BN statistics drift apart per rank; evaluate rank 0's on every rank
            for buffer in (*model.buffers(), *(ema.buffers() if ema is not None else ())):
                dist.broadcast(buffer, 0)

        val = classification_metrics(
            predict_probs(eval_model, val_split.images, input_size, spec.in_chans, "none", config.eval_batch_size,
                          amp_dtype), val_split.labels.cpu().numpy())
        value = val[config.monitor]
        if config.schedule == "plateau":
            scheduler.step(value)
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
               "train_accuracy": train_acc, "val_nll": val["nll"], "val_accuracy": val["accuracy"],
               "val_balanced_accuracy": val["balanced_accuracy"], "val_macro_f1": val["macro_f1"],
               "train_images": images, "images_per_s": images / seconds, "seconds": seconds, "partial_epoch": out_of_time}
        history.append(row)
        improved = _better(config, value, best)
        if improved:
            best, best_epoch, stale = value, epoch, 0
        else:
            stale += 1
        if d.main:
            _epoch_line(row, improved, config.monitor)
            meta = {**meta_base, "epoch": epoch, "metrics": {"val": _brief(val)}, "history": history,
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            if improved:
                ckpt.save_checkpoint(out / "best", eval_model, {**meta, "best_epoch": epoch})
            if config.schedule == "cyclic-snapshots" and _cycle_ends(config, epoch, steps_per_epoch):
                k = round(epoch * steps_per_epoch / (config.cycle_epochs * steps_per_epoch))
                ckpt.save_checkpoint(out / f"snapshot-{k:02d}", eval_model, meta)
            state = {"model": model.state_dict(), "loss": loss_fn.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "best": best, "best_epoch": best_epoch, "stale": stale}
            if ema is not None:
                state["ema"] = ema.state_dict()
            if scaler is not None:
                state["scaler"] = scaler.state_dict()
            ckpt.save_checkpoint(out / "last", eval_model, {**meta, "best_epoch": best_epoch}, state=state)
            write_history(out, history)
        if out_of_time:
            stopped_by = "time-budget"
            break
        if config.early_stop is not None and stale >= config.early_stop:
            stopped_by = "early-stop"
            break
    if d.main:
        if history:
            plot_curves(out / "curves.png", history)
        console.print(f"[bold]done[/] ({stopped_by}): best val {config.monitor} "
                      f"{best if best is None else round(best, 4)} at epoch {best_epoch}; {out / 'best.safetensors'}")
    if d.owned:
        dist.destroy_process_group()
    return RunResult(out, epoch if history else start_epoch, best_epoch, best, history, stopped_by, eval_model, loss_fn)


def _check_resumable(saved: dict, config: TrainConfig) -> None:
    # Only the run's length may change on resume; anything else would not continue the same run.
    free = {"epochs", "time_budget", "progress", "device", "threads", "out", "data", "eval_batch_size"}
    changed = sorted(k for k, v in asdict(config).items() if k not in free and saved.get(k) != v)
    if changed:
        raise FerError(f"--resume with settings that differ from the saved run: {', '.join(changed)}; "
                       "resume with the same settings or start a new --out")


def _cycle_ends(config: TrainConfig, epoch: int, steps_per_epoch: int) -> bool:
    cycle_steps = config.cycle_epochs * steps_per_epoch
    return math.floor(epoch * steps_per_epoch / cycle_steps + 1e-9) > math.floor((epoch - 1) * steps_per_epoch / cycle_steps + 1e-9)


def _agree(flag: bool, d: Dist, device: torch.device) -> bool:
    """Every rank stops when any rank's clock says so (rank clocks differ slightly)."""
    if d.world_size == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _reduce(loss_sum: torch.Tensor, correct: torch.Tensor, seen: int, d: Dist, device) -> tuple[float, float, int]:
    t = torch.stack([loss_sum.float(), correct.float(), torch.tensor(float(seen), device=device)])
    if d.world_size > 1:
        dist.all_reduce(t)
    loss_sum, correct, seen = t.tolist()
    return loss_sum / max(seen, 1), correct / max(seen, 1), int(seen)


def _brief(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("per_class", "confusion")}


def _epoch_line(row: dict, improved: bool, monitor: str) -> None:
    mark = " [green]*best*[/]" if improved else ""
    console.print(f"epoch {row['epoch']:>3}  lr {row['lr']:.2e}  loss {row['train_loss']:.4f}  "
                  f"train acc {row['train_accuracy']:.4f}  val acc {row['val_accuracy']:.4f}  "
                  f"val bal acc {row['val_balanced_accuracy']:.4f}  {row['images_per_s']:.0f} img/s{mark}")


class _Progress:
    """A live rich bar for one epoch (loss, accuracy, images/s); silent when off."""

    def __init__(self, on: bool, epoch: int, epochs: int, total: int):
        self.bar = None
        if on:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn(f"epoch {epoch}/{epochs}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console,
                                transient=True)
            self.task = self.bar.add_task("train", total=total, info="")
            self.bar.start()
            self.last = 0.0

    def update(self, step: int, loss_sum, correct, seen: int, elapsed: float) -> None:
        # Reading the loss syncs a GPU; do it a few times a second only.
        if self.bar is None or (elapsed - self.last < 0.5 and step != self.bar.tasks[0].total):
            return
        self.last = elapsed
        info = f"loss {loss_sum.item() / seen:.4f} acc {correct.item() / seen:.3f} {seen / elapsed:.0f} img/s"
        self.bar.update(self.task, completed=step, info=info)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def write_history(out: Path, history: list[dict]) -> None:
    """metrics.csv and metrics.json, one row per epoch."""
    ckpt.write_json(out / "metrics.json", history)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    write_bytes(out / "metrics.csv", buffer.getvalue().encode())


def plot_curves(path: Path, history: list[dict]) -> None:
    """Loss and accuracy per epoch, train and val, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.array([r["epoch"] for r in history])
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train loss")
    ax_loss.plot(epochs, [r["val_nll"] for r in history], label="val NLL")
    ax_acc.plot(epochs, [r["train_accuracy"] for r in history], label="train")
    ax_acc.plot(epochs, [r["val_accuracy"] for r in history], label="val")
    ax_acc.plot(epochs, [r["val_balanced_accuracy"] for r in history], label="val balanced")
    for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
