"""``fer-models``: a thin click layer over fer_models' Python API."""

from __future__ import annotations

import click
import torch

from fer_models import __version__
from fer_models import train as train_mod
from fer_models.data import TTA_MODES
from fer_synth.core.console import FriendlyGroup, console


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fer-models")
def main() -> None:
    """Train, evaluate and ensemble FER models on a fer_synth HDF5 file."""


# --- training, evaluation, ensembles (fer_models.train / evaluate / ensemble) ---

def _floats(text: str | None) -> list[float] | None:
    return None if text is None else [float(v) for v in text.split(",")]


@main.command("train")
@click.option("--data", type=click.Path(dir_okay=False), help="HDF5 file from `fer-synth pack`/`balance` "
              "[default: fer2013_balanced.h5]")
@click.option("--model", help="registered model or timm:<name> [default: small-cnn]; see list-models")
@click.option("--recipe", help="a recipe name (list-recipes) or .yaml path; flags override its values")
@click.option("--out", type=click.Path(file_okay=False), help="run folder [default: runs/<model>]")
@click.option("--weights", type=click.Path(dir_okay=False, exists=True), help="local .safetensors to start from")
@click.option("--input-size", type=int, help="image side fed to the model [default: the model's]")
@click.option("--epochs", type=int)
@click.option("--time-budget", type=float, help="seconds of training; stops cleanly after that")
@click.option("--batch-size", type=int)
@click.option("--optimizer", type=click.Choice(train_mod.OPTIMIZERS))
@click.option("--lr", type=float)
@click.option("--weight-decay", type=float)
@click.option("--momentum", type=float)
@click.option("--nesterov/--no-nesterov", default=None)
@click.option("--schedule", type=click.Choice(train_mod.SCHEDULES))
@click.option("--warmup-epochs", type=float)
@click.option("--cycle-epochs", type=float, help="cyclic-snapshots: epochs per cycle (one snapshot each)")
@click.option("--restart-epochs", type=float, help="warm-restarts: first period T0")
@click.option("--loss", help="ce, focal, or a registered loss")
@click.option("--label-smoothing", type=float)
@click.option("--class-weighting", type=click.Choice(("none", "balanced", "sqrt")))
@click.option("--balanced-sampler/--no-balanced-sampler", default=None)
@click.option("--scale", help="random resized crop area range, e.g. 0.8,1.2")
@click.option("--translate", type=float)
@click.option("--rotate", type=float)
@click.option("--hflip/--no-hflip", default=None)
@click.option("--erasing", type=float)
@click.option("--noise", type=float)
@click.option("--mixup", type=float)
@click.option("--cutmix", type=float)
@click.option("--tta", type=click.Choice(TTA_MODES))
@click.option("--amp", type=click.Choice(train_mod.AMP_MODES))
@click.option("--clip-grad", type=float)
@click.option("--ema", type=float, help="EMA decay of the weights, e.g. 0.999")
@click.option("--early-stop", type=int, help="patience in epochs on the val metric")
@click.option("--monitor", type=click.Choice(train_mod.MONITORS))
@click.option("--seed", type=int)
@click.option("--device")
@click.option("--threads", type=int, help="torch CPU threads (1 is often fastest on a busy machine)")
@click.option("--resume", is_flag=True, help="continue the run in --out from its last epoch")
@click.option("--no-progress", is_flag=True)
def train_command(recipe, resume, no_progress, scale, translate, rotate, hflip, erasing, noise, mixup, cutmix,
                  **settings) -> None:
    """Train a model; writes best/last checkpoints, metrics.csv/json and curves.png to --out."""
    augment = {k: v for k, v in dict(scale=_floats(scale), translate=translate, rotate=rotate, hflip=hflip,
                                     erasing=erasing, noise=noise, mixup=mixup, cutmix=cutmix).items() if v is not None}
    config = train_mod.make_config(recipe, augment_overrides=augment, progress=False if no_progress else None,
                                   **settings)
    train_mod.train(config, resume=resume)


@main.command("evaluate")
@click.argument("checkpoint", type=click.Path())
@click.option("--data", type=click.Path(dir_okay=False), default=train_mod.DEFAULT_DATA, show_default=True)
@click.option("--split", default="test", show_default=True)
@click.option("--tta", type=click.Choice(TTA_MODES), help="[default: the checkpoint's recipe's, else flip]")
@click.option("--out", type=click.Path(file_okay=False), help="where the JSON and PNG go [default: beside the checkpoint]")
@click.option("--device", default="auto", show_default=True)
def evaluate_command(checkpoint, data, split, tta, out, device) -> None:
    """Evaluate a run folder, checkpoint or ensemble file: metrics with and without TTA, real vs synthetic."""
    from fer_models import checkpoint as ckpt
    from fer_models.evaluate import evaluate, print_report

    out = out or ckpt.resolve_checkpoint(checkpoint).parent
    report = evaluate(checkpoint, data, split, tta, _device(device), out)
    print_report(report, console)


@main.command("ensemble")
@click.argument("members", nargs=-1, required=True, type=click.Path())
@click.option("--data", type=click.Path(dir_okay=False), default=train_mod.DEFAULT_DATA, show_default=True)
@click.option("--method", type=click.Choice(("mean", "weighted", "vote")), default="mean", show_default=True,
              help="weighted: weights fit on the val split")
@click.option("--tta", type=click.Choice(TTA_MODES), help="[default: each member's own]")
@click.option("--split", default="test", show_default=True, help="the split the side-by-side report is on")
@click.option("--out", type=click.Path(dir_okay=False), default="runs/ensemble.json", show_default=True)
@click.option("--device", default="auto", show_default=True)
def ensemble_command(members, data, method, tta, split, out, device) -> None:
    """Combine run folders/checkpoints; show members and ensemble side by side; save a file evaluate accepts."""
    from rich.markup import escape
    from rich.table import Table

    from fer_models.ensemble import build_ensemble

    report = build_ensemble(list(members), data, method, tta, out, split, _device(device))
    if report["n_synthetic"]:
        console.print(f"[bold white on red] WARNING: the {split} split holds {report['n_synthetic']} SYNTHETIC rows [/]")
    table = Table(title=escape(f"{method} ensemble on {data} [{split}]"))
    for column in ("model", "weight", "accuracy", "balanced acc", "macro-F1", "top-2"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in report["members"]:
        table.add_row(row["name"], f"{row['weight']:.3f}", *(f"{100 * row[k]:.2f}" for k in
                      ("accuracy", "balanced_accuracy", "macro_f1", "top2_accuracy")))
    e = report["ensemble"]
    table.add_row("[bold]ensemble[/]", "", *(f"[bold]{100 * e[k]:.2f}[/]" for k in
                  ("accuracy", "balanced_accuracy", "macro_f1", "top2_accuracy")))
    console.print(table)
    console.print(f"saved {report['saved']} (evaluate it with `fer-models evaluate {report['saved']} --data {data}`)")


@main.command("list-models")
def list_models_command() -> None:
    """Registered models with parameters and input size (timm:<name> builds any timm architecture too)."""
    from rich.table import Table

    from fer_models.models import create_model, list_models

    table = Table(title="models (plus timm:<name> for any timm architecture)")
    for column in ("name", "params", "input", "recipe", "paper"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for spec in list_models():
        with torch.device("meta"):  # counts parameters without allocating them
            params = sum(p.numel() for p in create_model(spec.name).parameters())
        table.add_row(spec.name, f"{params / 1e6:.2f}M", f"{spec.in_chans}x{spec.input_size}x{spec.input_size}",
                      spec.recipe or "", spec.paper)
    console.print(table)


@main.command("list-recipes")
def list_recipes_command() -> None:
    """The recipes shipped in fer_models/recipes (use with `train --recipe NAME`)."""
    from rich.table import Table

    from fer_models.recipes import list_recipes, load_recipe

    table = Table(title="recipes")
    for column in ("name", "model", "optimizer", "schedule", "epochs", "batch", "TTA"):
        table.add_column(column, no_wrap=True)
    table.add_column("description")
    for name in list_recipes():
        r = load_recipe(name)
        table.add_row(name, str(r.get("model", "")), str(r.get("optimizer", "")), str(r.get("schedule", "")),
                      str(r.get("epochs", "")), str(r.get("batch_size", "")), str(r.get("tta", "")),
                      r.get("description", ""))
    console.print(table)


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


if __name__ == "__main__":
    main()
