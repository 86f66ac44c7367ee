"""The training loop: a split held on the device, batched augmentation, AMP, EMA, schedules, checkpoints.

``train(config)`` runs one training run into ``config.out``:

* ``best.safetensors``/``best.json``: the weights with the best validation metric (never test),
* ``last-state.safetensors``: the whole training state after the latest epoch (model, optimizer, scheduler,
  EMA, a loss's own parameters such as EmoNeXt's attention, the history), in ONE file written atomically: it is
  the run's commit point. Epochs draw their randomness from (seed, epoch), so a run continued from it, after a
  kill at any instant, ends exactly where an uninterrupted one would,
* ``last.safetensors``/``last.json``: the latest epoch's weights, derived from the state (rewritten on resume),
* ``snapshot-NN.*`` per cycle of the ``cyclic-snapshots`` schedule (snapshot ensembles),
* ``metrics.csv``/``metrics.json`` per epoch, ``curves.png``, ``config.json``.

Under ``torchrun``/``accelerate launch`` (``WORLD_SIZE`` > 1) it trains with DDP
(:mod:`fer_models.training.distributed`).
The pieces: :func:`train_one_epoch`, :func:`validate`, and the checkpoint helpers :func:`save_epoch` and
:func:`restore`; :func:`train` wires them together.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fer_models import checkpoint as ckpt
from fer_models.data import (
    TTA_MODES,
    Augment,
    TensorSplit,
    augment_batch,
    batches,
    data_identity,
    epoch_order,
    load_split,
    mix_batch,
)
from fer_models.evaluation.metrics import classification_metrics
from fer_models.inference.calibration import calibration_record
from fer_models.inference.probabilities import predict_proba, predict_view_logits
from fer_models.losses import build_loss, class_weights
from fer_models.models import create_model, get_spec
from fer_models.recipes import recipe_path
from fer_models.training.config import BUDGET_CLOCKS, DEFAULT_DATA, TrainConfig
from fer_models.training.distributed import Dist, agree, barrier, broadcast_from_main, init_distributed, sum_over_ranks
from fer_models.training.history import epoch_line, plot_curves, write_history
from fer_models.training.optim import create_optimizer, create_scheduler, cycle_ends
from fer_models.training.precision import autocast_dtype, to_layout, uses_channels_last
from fer_synth.core.env import resolve_device
from fer_synth.core.errors import FerError, InvalidOptionError, MissingPathError
from fer_synth.core.outputs import has_file, output_folder
from fer_synth.ui.console import progress_bar

logger = logging.getLogger(__name__)

COMMAND = "fer-models train"
STATE_FILE = "last-state.safetensors"
#: Settings that may change on --resume: only the run's length and where/how it runs.
RESUMABLE_CHANGES = frozenset(
    {"epochs", "time_budget", "budget_clock", "progress", "device", "threads", "out", "data", "eval_batch_size"}
)


class Objective(nn.Module):
    """The model and its loss as one module: ``(images, targets) -> (logits, loss)``.

    DDP wraps this, so the gradients of a loss's own parameters are averaged across ranks like the model's;
    the optimizer takes its parameters, so a loss that learns (EmoNeXt's attention) trains with the model.
    """

    def __init__(self, model: nn.Module, loss: nn.Module):
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return logits, self.loss(logits, targets)


@dataclass
class TrainingState:
    """Everything a run changes as it goes, and saves for ``--resume``."""

    model: nn.Module
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    ema: AveragedModel | None = None
    scaler: torch.amp.GradScaler | None = None
    amp_dtype: torch.dtype | None = None  # the autocast dtype of config.amp on the device; None means float32
    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    stale: int = 0  # epochs since the monitored metric last improved

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated and saved: the EMA's when on."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self) -> dict:
        state = {
            "model": self.model.state_dict(),
            "loss": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "best": self.best,
            "best_epoch": self.best_epoch,
            "stale": self.stale,
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state.get("loss", {}))  # runs saved before losses had state have none
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.best, self.best_epoch, self.stale = state["best"], state["best_epoch"], state["stale"]


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


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    images: int
    seconds: float
    cpu_seconds: float  # this process's CPU time (all threads): what the epoch cost, whatever else ran
    out_of_time: bool


def build_state(
    config: TrainConfig, train_split: TensorSplit, steps_per_epoch: int, device: torch.device
) -> TrainingState:
    """Model, EMA, loss, optimizer, schedule and grad scaler, from ``config.seed``."""
    torch.manual_seed(config.seed)
    model = create_model(
        config.model, num_classes=len(train_split.classes), weights=config.weights, **config.model_options
    )
    dtype = autocast_dtype(config.amp, device)  # once: it warns when the device cannot do what was asked
    to_layout(model.to(device), uses_channels_last(dtype, device))
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True) if config.ema else None
    # The loss comes after the EMA copy (a feature regulariser hooks the model; the copy needs no hook) and before
    # the optimizer, which trains the loss's own parameters (EmoNeXt's attention) with the model's.
    weights = class_weights(train_split.counts(), config.class_weighting)
    loss_fn = build_loss(
        config.loss,
        class_weights=None if weights is None else weights.to(device),
        label_smoothing=config.label_smoothing,
        model=model,
        **config.loss_options,
    ).to(device)
    optimizer = create_optimizer(Objective(model, loss_fn), **config.optimizer_kwargs())
    scheduler = create_scheduler(optimizer, steps_per_epoch=steps_per_epoch, **config.scheduler_kwargs())
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return TrainingState(model, loss_fn, optimizer, scheduler, ema, scaler, dtype)


def restore(out: Path, config: TrainConfig, state: TrainingState, data_id: dict) -> dict:
    """Continue from ``out``'s training state; the settings (but RESUMABLE_CHANGES) and the data's content must
    be those of the saved run, and ``config`` must not ask for fewer epochs than it trained. Returns the saved
    epoch's metadata."""
    saved, meta = ckpt.load_state(out / STATE_FILE)
    changed = sorted(k for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES and meta["config"].get(k) != v)
    if changed:
        raise FerError(
            f"{out} holds a run with other settings ({', '.join(changed)}); continue it with the same "
            "settings, choose another --out, or pass --overwrite to start over"
        )
    if meta["data"].get("fingerprint") != data_id.get("fingerprint"):
        raise FerError(
            f"{out} was trained on other data (fingerprint {meta['data'].get('fingerprint')}, "
            f"{config.data} has {data_id.get('fingerprint')}); use that data, choose another --out, or "
            "pass --overwrite to start over"
        )
    if meta["epoch"] > config.epochs:  # its files would then describe a run it never was
        raise FerError(
            f"{config.out} holds a finished run of {meta['epoch']} epochs, not {config.epochs}; run it with "
            f"--epochs {meta['epoch']} (or more to continue it), choose another --out, or pass --overwrite "
            "to start over"
        )
    state.load_state_dict(saved)
    state.epoch, state.history = meta["epoch"], meta["history"]
    return meta


def train_one_epoch(
    net: nn.Module,
    state: TrainingState,
    split: TensorSplit,
    config: TrainConfig,
    aug: Augment,
    input_size: int,
    in_chans: int,
    d: Dist,
    device: torch.device,
    epoch: int,
    budget_left: float | None,
) -> EpochStats:
    """One pass over this rank's batches of ``split``; stops early (on every rank) once it has taken
    ``budget_left`` seconds on the run's budget clock (then its recorded time is at least that)."""
    # Every random draw of an epoch comes from (seed, epoch): resuming replays exactly.
    torch.manual_seed(config.seed * 1_000_003 + epoch)
    g = torch.Generator(device=device).manual_seed(config.seed * 1_000_003 + epoch)
    order = epoch_order(split.labels, g, config.balanced_sampler)
    dtype = state.amp_dtype
    clock = BUDGET_CLOCKS[config.budget_clock]
    net.train()
    start, cpu_start = time.perf_counter(), time.process_time()
    deadline = None if budget_left is None else clock() + budget_left
    seen, loss_sum, correct = 0, torch.zeros((), device=device), torch.zeros((), device=device)
    out_of_time = False
    steps = batches(order, config.batch_size, d.rank, d.world_size)
    with _EpochProgress(d.main and config.progress, epoch, config.epochs, len(steps)) as progress:
        for step, index in enumerate(steps):
            x = augment_batch(split.images[index], aug, input_size, in_chans, g)
            y = split.labels[index]
            targets = y if split.soft_labels is None else split.soft_labels[index]  # soft: FER+ vote distributions
            if aug.mixup or aug.cutmix:
                x, targets = mix_batch(x, targets, aug, g, len(split.classes))
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits, loss = net(x, targets)
            _optimizer_step(loss, state, config, net)
            hard = targets if targets.ndim == 1 else targets.argmax(1)
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == hard).sum()
            seen += len(y)
            progress.update(step + 1, loss_sum, correct, seen, time.perf_counter() - start)
            if deadline is not None:
                out_of_time = agree(clock() >= deadline, d, device)
                if out_of_time:
                    break
    totals = sum_over_ranks(
        torch.stack([loss_sum.float(), correct.float(), torch.tensor(float(seen), device=device)]), d
    )
    loss_total, correct_total, images = totals.tolist()
    return EpochStats(
        loss_total / max(images, 1),
        correct_total / max(images, 1),
        int(images),
        time.perf_counter() - start,
        time.process_time() - cpu_start,
        out_of_time,
    )


def _optimizer_step(loss: torch.Tensor, state: TrainingState, config: TrainConfig, net: nn.Module) -> None:
    state.optimizer.zero_grad(set_to_none=True)
    if state.scaler is not None:
        state.scaler.scale(loss).backward()
        state.scaler.unscale_(state.optimizer)
    else:
        loss.backward()
    if config.clip_grad:
        nn.utils.clip_grad_norm_(net.parameters(), config.clip_grad)
    if state.scaler is not None:
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        state.optimizer.step()
    if config.schedule != "plateau":
        state.scheduler.step()
    if state.ema is not None:
        state.ema.update_parameters(state.model)


def validate(
    model: nn.Module,
    split: TensorSplit,
    config: TrainConfig,
    input_size: int,
    in_chans: int,
    amp_dtype: torch.dtype | None,
) -> dict:
    """Metrics of ``model`` on ``split`` (no TTA: selection must not depend on test-time tricks)."""
    probs = predict_proba(model, split.images, input_size, in_chans, "none", config.eval_batch_size, amp_dtype)
    return classification_metrics(probs, split.labels.cpu().numpy(), split.classes)


def save_epoch(
    out: Path, state: TrainingState, meta: dict, improved: bool, config: TrainConfig, steps_per_epoch: int
) -> None:
    """The epoch's files, in an order that survives a kill at any instant: best (when improved) and a cycle's
    snapshot first, then the training state (the commit point), then what derives from it."""
    if improved:
        ckpt.save_checkpoint(out / "best", state.eval_model, {**meta, "best_epoch": state.epoch})
    if config.schedule == "cyclic-snapshots" and cycle_ends(config.cycle_epochs, state.epoch, steps_per_epoch):
        k = round(state.epoch / config.cycle_epochs)
        ckpt.save_checkpoint(out / f"snapshot-{k:02d}", state.eval_model, meta)
    ckpt.save_state(out / STATE_FILE, state.state_dict(), {**meta, "best_epoch": state.best_epoch})
    write_derived(out, state, {**meta, "best_epoch": state.best_epoch})


def write_derived(out: Path, state: TrainingState, meta: dict) -> None:
    """``last.*`` and the history files from the committed state (a kill may have cut them short)."""
    ckpt.save_checkpoint(out / "last", state.eval_model, meta)
    write_history(out, state.history)


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> RunResult:
    """Run the training run that ``config`` describes, or continue it: a ``config.out`` holding an unfinished run
    with the same settings and data continues it (a finished one is left as it is); ``resume`` insists on that.
    A folder holding anything else is refused, unless ``overwrite`` empties it first."""
    # 1. Settings, device, processes.
    config.check()
    if resume and overwrite:
        raise InvalidOptionError("--resume continues the run in --out and --overwrite starts it over: choose one")
    if not Path(config.data).exists():
        raise MissingPathError(
            f"{config.data}: no such data file. Make it with `fer-synth balance fer2013/` (writes {DEFAULT_DATA}) "
            "or `fer-synth pack fer2013.csv.gz --out data.h5`, or give one with --data"
        )
    if config.threads:
        torch.set_num_threads(config.threads)
    data_id = data_identity(config.data)
    d = init_distributed(resolve_device(config.device).split(":")[0])
    device = torch.device(resolve_device(config.device, d.local_rank))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # 2. Data, held whole on the device (read before the output is claimed: a damaged file changes nothing).
    train_split = load_split(config.data, "train", device)
    val_split = load_split(config.data, "val", device)
    if not len(train_split) or not len(val_split):
        raise FerError(
            f"{config.data}: training needs non-empty train and val splits "
            f"(train {len(train_split)}, val {len(val_split)} rows)"
        )
    if val_split.n_synthetic:
        logger.warning(
            f"the val split holds {val_split.n_synthetic} SYNTHETIC rows: model selection is not on real data only"
        )
    if config.weights:  # a damaged or foreign weights file, too, is refused before the output is claimed
        with torch.device("meta"):  # names and shapes are checked; nothing is allocated for the model
            create_model(
                config.model, num_classes=len(train_split.classes), weights=config.weights, **config.model_options
            )
    steps_per_epoch = len(batches(torch.arange(len(train_split)), config.batch_size, d.rank, d.world_size))
    if steps_per_epoch == 0:
        raise FerError(
            f"batch size {config.batch_size} x {d.world_size} process(es) exceeds the "
            f"{len(train_split)} training rows; lower --batch-size"
        )

    # 3. The run folder: new, empty or this run's own (continued in place), or replaced on request (the new run is
    #    built beside it and swapped in at the end, so a failed or killed run leaves the old one whole); one
    #    process writes it at a time.
    out = Path(config.out)
    if resume and not (out / STATE_FILE).exists():
        raise MissingPathError(f"{out}: nothing to resume (no {STATE_FILE}); run without --resume to start")
    inputs = [config.data, config.weights, recipe_path(config.recipe) if config.recipe else None]
    claim = (
        output_folder(out, command=COMMAND, is_own=has_file("config.json"), overwrite=overwrite, inputs=inputs)
        if d.main
        else nullcontext(out)
    )
    with claim as work:
        barrier(d)  # the other ranks read the folder only once rank 0 has checked (or claimed) it
        return _train(config, work, not overwrite, d, device, data_id, train_split, val_split, steps_per_epoch)


def _train(
    config: TrainConfig,
    out: Path,
    continues: bool,
    d: Dist,
    device: torch.device,
    data_id: dict,
    train_split: TensorSplit,
    val_split: TensorSplit,
    steps_per_epoch: int,
) -> RunResult:
    """The run in the folder ``out`` (``config.out``, or the folder a replacement is built in), continued from its
    state when ``continues`` and it has one."""
    spec = get_spec(config.model)
    input_size = config.input_size or int(config.model_options.get("input_size", spec.input_size))

    # 4. Model, EMA, loss, optimizer, schedule, and their saved state when the run continues.
    state = build_state(config, train_split, steps_per_epoch, device)
    if continues and (out / STATE_FILE).exists():
        meta = restore(out, config, state, data_id)
        over = stop_reason(state, config)
        if over and _finished(out):  # left exactly as it is: not even its config.json is written again
            logger.info(
                f"the run in {config.out} is complete ({state.epoch} epochs, stopped by {over}); nothing to train"
            )
            d.close()
            return _result(config, state, over)
        logger.info(
            f"the run in {config.out} is complete ({state.epoch} epochs, stopped by {over}); finishing its files"
            if over
            else f"continuing the run in {config.out} after epoch {state.epoch} of {config.epochs}"
        )
        if d.main:
            write_derived(out, state, meta)
    start_epoch = state.epoch
    objective = Objective(state.model, state.loss)
    net: nn.Module = objective
    if d.world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None
        )
    aug = Augment(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.augment.items()})

    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(out / "config.json", asdict(config))
    loss_params = sum(p.numel() for p in state.loss.parameters())
    logger.info(
        f"training {config.model} ({sum(p.numel() for p in state.model.parameters()) / 1e6:.2f}M params"
        f"{f', loss {config.loss} {loss_params / 1e6:.2f}M' if loss_params else ''}, "
        f"{spec.in_chans}x{input_size}x{input_size}) on {len(train_split)} train / {len(val_split)} val rows "
        f"({train_split.n_synthetic} synthetic in train; {len(train_split.classes)} classes"
        f"{', soft-label targets' if train_split.soft_labels is not None else ''}), {device}"
        f"{f' x{d.world_size}' if d.world_size > 1 else ''} -> {out}"
    )

    # 5. Epochs: train, validate, keep the best, save.
    meta_base = {
        "model": config.model,
        "model_options": config.model_options,
        "input_size": input_size,
        "in_chans": spec.in_chans,
        "classes": list(train_split.classes),
        "num_classes": len(train_split.classes),
        "soft_labels": train_split.soft_labels is not None,
        "tta": config.tta,
        "config": asdict(config),
        "data": data_id,
    }
    stopped_by = stop_reason(state, config) or "epochs"
    for epoch in range(start_epoch + 1, config.epochs + 1):
        if stop_reason(state, config):
            break
        # The budget counts the training epochs' time, recorded in the history: a continued run has what is left.
        budget_left = None if config.time_budget is None else config.time_budget - budget_used(state, config)
        stats = train_one_epoch(
            net, state, train_split, config, aug, input_size, spec.in_chans, d, device, epoch, budget_left
        )
        # BN statistics drift apart per rank; evaluate rank 0's on every rank.
        broadcast_from_main([*state.model.buffers(), *(state.ema.buffers() if state.ema is not None else ())], d)
        val = validate(state.eval_model, val_split, config, input_size, spec.in_chans, state.amp_dtype)
        value = val[config.monitor]
        if config.schedule == "plateau":
            state.scheduler.step(value)
        state.epoch = epoch
        state.history.append(
            {
                "epoch": epoch,
                "lr": state.optimizer.param_groups[0]["lr"],
                "train_loss": stats.loss,
                "train_accuracy": stats.accuracy,
                "val_nll": val["nll"],
                "val_accuracy": val["accuracy"],
                "val_balanced_accuracy": val["balanced_accuracy"],
                "val_macro_f1": val["macro_f1"],
                "train_images": stats.images,
                "images_per_s": stats.images / stats.seconds,
                "seconds": stats.seconds,
                "cpu_seconds": stats.cpu_seconds,
                "partial_epoch": stats.out_of_time,
            }
        )
        improved = state.best is None or (value < state.best if config.monitor == "nll" else value > state.best)
        if improved:
            state.best, state.best_epoch, state.stale = value, epoch, 0
        else:
            state.stale += 1
        logger.info(epoch_line(state.history[-1], improved))
        if d.main:
            meta = {
                **meta_base,
                "epoch": epoch,
                "metrics": {"val": _headline(val)},
                "history": state.history,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            save_epoch(out, state, meta, improved, config, steps_per_epoch)
        stopped_by = stop_reason(state, config) or stopped_by
    if d.main and state.history:
        write_history(out, state.history)
        plot_curves(out / "curves.png", state.history)
        calibrate_checkpoint(out / "best.json", val_split)
    logger.info(
        f"done ({stopped_by}): best val {config.monitor} "
        f"{state.best if state.best is None else round(state.best, 4)} at epoch {state.best_epoch}; "
        f"{Path(config.out) / 'best.safetensors'}"
    )
    d.close()
    return _result(config, state, stopped_by)


def _finished(out: Path) -> bool:
    """Whether a complete run's last steps are done: its history, curves and, last, the calibration of ``best``
    (a run killed before them has them done by the same command again)."""
    return (out / "best.json").exists() and "calibration" in ckpt.read_meta(out / "best.json")


def _result(config: TrainConfig, state: TrainingState, stopped_by: str) -> RunResult:
    # The returned model in the standard layout: it then computes exactly what the saved weights, loaded, compute.
    return RunResult(
        Path(config.out),
        state.epoch,
        state.best_epoch,
        state.best,
        state.history,
        stopped_by,
        state.eval_model.to(memory_format=torch.contiguous_format),
        state.loss,
    )


def budget_used(state: TrainingState, config: TrainConfig) -> float:
    """Seconds of ``config.time_budget`` spent: the recorded epochs' training time on the budget's clock."""
    key = "cpu_seconds" if config.budget_clock == "cpu" else "seconds"
    return sum(h[key] for h in state.history)


def stop_reason(state: TrainingState, config: TrainConfig) -> str | None:
    """Why the run is over (``epochs``, ``time-budget``, ``early-stop``), or None while it has epochs to train.
    A function of the saved state, so the same command after an interruption stops where an uninterrupted run does."""
    if state.epoch >= config.epochs:
        return "epochs"
    if config.time_budget is not None and state.history and budget_used(state, config) >= config.time_budget - 1e-6:
        return "time-budget"
    if config.early_stop is not None and state.stale >= config.early_stop:
        return "early-stop"
    return None


def calibrate_checkpoint(path: str | Path, split: TensorSplit) -> dict:
    """Fit the checkpoint's temperature for each TTA mode on ``split`` (the run's val) and store it in its JSON
    (:mod:`fer_models.inference.calibration`); a checkpoint calibrated before is left as it is. Float32, so that the
    temperatures are those of the default (exact) inference."""
    meta = ckpt.read_meta(path)
    if "calibration" not in meta:
        model, meta = ckpt.load_model(path, split.images.device)
        logits = {
            tta: predict_view_logits(model, split.images, meta["input_size"], meta["in_chans"], tta)
            for tta in TTA_MODES
        }
        meta["calibration"] = calibration_record(logits, split.labels.cpu().numpy(), split.name)
        ckpt.write_json(meta.pop("_path"), meta)
        logger.info("calibrated %s on %s: temperature %s", path, split.name, meta["calibration"]["temperature"])
    return meta["calibration"]


def _headline(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("per_class", "confusion")}


class _EpochProgress:
    """A live bar for one epoch (loss, accuracy, images/s), refreshed a few times a second: reading the loss
    synchronises a GPU."""

    def __init__(self, enabled: bool, epoch: int, epochs: int, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

        self.bar = progress_bar(
            enabled,
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            transient=True,
        )
        self.total, self.last = total, 0.0

    def __enter__(self) -> _EpochProgress:
        self.bar.__enter__()
        self.task = self.bar.add_task("train", total=self.total, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def update(self, step: int, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int, elapsed: float) -> None:
        from rich.progress import Progress

        if not isinstance(self.bar, Progress) or (elapsed - self.last < 0.5 and step != self.total):
            return
        self.last = elapsed
        info = f"loss {loss_sum.item() / seen:.4f} acc {correct.item() / seen:.3f} {seen / elapsed:.0f} img/s"
        self.bar.update(self.task, completed=step, info=info)
