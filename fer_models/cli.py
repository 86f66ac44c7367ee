"""``fer-models``: a thin click layer over fer_models' Python API; all rendering of results happens here."""

from __future__ import annotations

import logging

import click
from rich.markup import escape
from rich.table import Table

from fer_models import __version__
from fer_models.data import TTA_MODES
from fer_models.evaluation.compare import RESAMPLES
from fer_models.inference.demo import DEFAULT_HOST as DEMO_HOST
from fer_models.inference.demo import DEFAULT_PORT as DEMO_PORT
from fer_models.inference.demo import SHARE_MODES
from fer_models.inference.export import FORMATS as EXPORT_FORMATS
from fer_models.inference.judge import JUDGE_AMP, JUDGE_TTA
from fer_models.inference.media import DEFAULT_EVERY
from fer_models.losses import list_losses
from fer_models.models.builtin import BUILTIN
from fer_models.training.config import (
    AMP_MODES,
    BUDGET_CLOCKS,
    CLASS_WEIGHTINGS,
    DEFAULT_DATA,
    DEFAULT_MODEL,
    MONITORS,
    TrainConfig,
    make_config,
)
from fer_models.training.optim import OPTIMIZERS, SCHEDULES
from fer_synth.core.env import DEVICE_HELP, resolve_device
from fer_synth.faces.options import face_inputs, face_options
from fer_synth.faces.stage import FaceStage, FaceStageConfig
from fer_synth.ui.console import FriendlyGroup, console
from fer_synth.ui.html import DEFAULT_OUT as REPORT_OUT

logger = logging.getLogger(__name__)


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fer-models")
def main() -> None:
    """Train, evaluate and ensemble FER models on a fer_synth HDF5 file."""


@main.command("train")
@click.option(
    "--data",
    type=click.Path(dir_okay=False),
    help=f"HDF5 file from `fer-synth pack`/`balance` [default: {DEFAULT_DATA}]",
)
@click.option("--model", help=f"registered model or timm:<name> [default: {DEFAULT_MODEL}]; see list-models")
@click.option("--recipe", help="a recipe name (list-recipes) or .yaml path; flags override its values")
@click.option("--out", type=click.Path(file_okay=False), help="run folder [default: runs/<model>]")
@click.option("--weights", type=click.Path(dir_okay=False, exists=True), help="local .safetensors to start from")
@click.option("--input-size", type=click.IntRange(min=8), help="image side fed to the model [default: the model's]")
@click.option("--epochs", type=click.IntRange(min=1))
@click.option(
    "--time-budget", type=click.FloatRange(min=0, min_open=True), help="seconds of training; stops cleanly after that"
)
@click.option(
    "--budget-clock",
    type=click.Choice(tuple(BUDGET_CLOCKS)),
    help="what --time-budget counts: wall-clock or this process's CPU seconds [default: wall]",
)
@click.option("--batch-size", type=click.IntRange(min=1))
@click.option("--optimizer", type=click.Choice(OPTIMIZERS))
@click.option("--lr", type=click.FloatRange(min=0, min_open=True))
@click.option("--weight-decay", type=click.FloatRange(min=0))
@click.option("--momentum", type=click.FloatRange(0, 1))
@click.option("--nesterov/--no-nesterov", default=None)
@click.option("--schedule", type=click.Choice(SCHEDULES))
@click.option("--warmup-epochs", type=click.FloatRange(min=0))
@click.option(
    "--cycle-epochs",
    type=click.FloatRange(min=0, min_open=True),
    help="cyclic-snapshots: epochs per cycle (one snapshot each)",
)
@click.option("--restart-epochs", type=click.FloatRange(min=0, min_open=True), help="warm-restarts: first period T0")
@click.option("--loss", help=f"training loss: {', '.join(list_losses())} [default: {TrainConfig.loss}]")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True))
@click.option("--class-weighting", type=click.Choice(CLASS_WEIGHTINGS))
@click.option("--balanced-sampler/--no-balanced-sampler", default=None)
@click.option("--scale", help="random resized crop area range, e.g. 0.8,1.2")
@click.option("--translate", type=click.FloatRange(min=0))
@click.option("--rotate", type=click.FloatRange(min=0))
@click.option("--hflip/--no-hflip", default=None)
@click.option("--erasing", type=click.FloatRange(0, 1))
@click.option("--noise", type=click.FloatRange(min=0))
@click.option("--mixup", type=click.FloatRange(min=0))
@click.option("--cutmix", type=click.FloatRange(min=0))
@click.option("--tta", type=click.Choice(TTA_MODES))
@click.option("--amp", type=click.Choice(AMP_MODES))
@click.option("--clip-grad", type=click.FloatRange(min=0, min_open=True))
@click.option(
    "--ema", type=click.FloatRange(0, 1, min_open=True, max_open=True), help="EMA decay of the weights, e.g. 0.999"
)
@click.option("--early-stop", type=click.IntRange(min=1), help="patience in epochs on the val metric")
@click.option("--monitor", type=click.Choice(MONITORS))
@click.option("--seed", type=click.IntRange(min=0))
@click.option("--device", help=DEVICE_HELP)
@click.option("--threads", type=click.IntRange(min=1), help="torch CPU threads (1 is often fastest on a busy machine)")
@click.option(
    "--resume",
    is_flag=True,
    help="insist on continuing the run in --out (the same command continues an "
    "unfinished run with the same settings anyway)",
)
@click.option("--overwrite", is_flag=True, help="empty an --out folder that holds another run or other files first")
@click.option("--no-progress", is_flag=True)
def train_command(
    recipe, resume, overwrite, no_progress, scale, translate, rotate, hflip, erasing, noise, mixup, cutmix, **settings
) -> None:
    """Train a model; writes best/last checkpoints, metrics.csv/json and curves.png to --out."""
    from fer_models.training.loop import train

    augment = {
        k: v
        for k, v in dict(
            scale=_scale(scale),
            translate=translate,
            rotate=rotate,
            hflip=hflip,
            erasing=erasing,
            noise=noise,
            mixup=mixup,
            cutmix=cutmix,
        ).items()
        if v is not None
    }
    config = make_config(recipe, augment_overrides=augment, progress=False if no_progress else None, **settings)
    train(config, resume=resume, overwrite=overwrite)


def _scale(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 2 or not 0 < values[0] <= values[1]:
        raise click.BadParameter(
            f"{text!r}: give two numbers low,high with 0 < low <= high, e.g. 0.8,1.2", param_hint="--scale"
        )
    return values


@main.command("evaluate")
@click.argument("checkpoint", type=click.Path())
@click.option("--data", type=click.Path(dir_okay=False), default=DEFAULT_DATA, show_default=True)
@click.option("--split", default="test", show_default=True)
@click.option("--tta", type=click.Choice(TTA_MODES), help="[default: the checkpoint's recipe's, else flip]")
@click.option(
    "--out", type=click.Path(file_okay=False), help="where the JSON and PNG go [default: beside the checkpoint]"
)
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
def evaluate_command(checkpoint, data, split, tta, out, device) -> None:
    """Evaluate a run folder, checkpoint or ensemble file: metrics with and without TTA, real vs synthetic."""
    from fer_models import checkpoint as ckpt
    from fer_models.evaluation.evaluate import evaluate

    out = out or ckpt.report_dir(checkpoint)
    _print_evaluation(evaluate(checkpoint, data, split, tta, resolve_device(device), out))


HEADLINE = (
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced acc"),
    ("macro_f1", "macro-F1"),
    ("top2_accuracy", "top-2"),
    ("top3_accuracy", "top-3"),
)


def _print_evaluation(report: dict) -> None:
    """Headline metrics per TTA and row source, per-class scores, and the confusion matrix."""
    if report["n_synthetic"]:
        console.print(
            f"[bold white on red] WARNING: the {report['split']} split holds {report['n_synthetic']} SYNTHETIC "
            f"rows of {report['n']}. The 'all' numbers are NOT a FER2013 result; quote the 'real' rows. [/]"
        )
    if report["same_data_as_training"] is False:
        logger.warning("this data file is not the one the model was trained on (fingerprints differ)")
    table = Table(title=escape(f"{report['model']} on {report['data']} [{report['split']}], {report['n']} rows"))
    table.add_column("TTA")
    table.add_column("rows")
    for _, label in HEADLINE:
        table.add_column(label, justify="right")
    for mode, by_source in report["results"].items():
        for source, m in by_source.items():
            table.add_row(mode, f"{source} ({m['n']})", *(f"{100 * m[key]:.2f}" for key, _ in HEADLINE))
    console.print(table)
    best = report["results"][report["tta"]]["all"]
    per_class = Table(title=f"per class (TTA {report['tta']})")
    for column in ("class", "precision", "recall", "F1", "support"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for name, m in best["per_class"].items():
        per_class.add_row(
            name, f"{100 * m['precision']:.1f}", f"{100 * m['recall']:.1f}", f"{100 * m['f1']:.1f}", str(m["support"])
        )
    console.print(per_class)
    names = list(best["per_class"])
    confusion = Table(title="confusion (rows true, columns predicted)")
    confusion.add_column("")
    for name in names:
        confusion.add_column(name[:8], justify="right")
    for name, row in zip(names, best["confusion"]):
        confusion.add_row(name, *(str(v) for v in row))
    console.print(confusion)
    if "report_file" in report:
        console.print(f"report: {report['report_file']}, confusion matrix: {report['confusion_png']}")


@main.command("ensemble")
@click.argument("members", nargs=-1, required=True, type=click.Path())
@click.option("--data", type=click.Path(dir_okay=False), default=DEFAULT_DATA, show_default=True)
@click.option(
    "--method",
    type=click.Choice(("mean", "weighted", "vote")),
    default="mean",
    show_default=True,
    help="weighted: weights fit on the val split",
)
@click.option("--tta", type=click.Choice(TTA_MODES), help="[default: each member's own]")
@click.option("--split", default="test", show_default=True, help="the split the side-by-side report is on")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="runs/ensemble.json",
    show_default=True,
    help="the ensemble file (an earlier one is replaced)",
)
@click.option("--overwrite", is_flag=True, help="replace an --out file that is not an ensemble file")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
def ensemble_command(members, data, method, tta, split, out, overwrite, device) -> None:
    """Combine run folders/checkpoints; show members and ensemble side by side; save a file evaluate accepts."""
    from fer_models.evaluation.ensemble import build_ensemble

    report = build_ensemble(list(members), data, method, tta, out, split, resolve_device(device), overwrite)
    if report["n_synthetic"]:
        console.print(
            f"[bold white on red] WARNING: the {split} split holds {report['n_synthetic']} SYNTHETIC rows [/]"
        )
    table = Table(title=escape(f"{method} ensemble on {data} [{split}]"))
    for column in ("model", "weight", "accuracy", "balanced acc", "macro-F1", "top-2"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in report["members"]:
        table.add_row(
            row["name"],
            f"{row['weight']:.3f}",
            *(f"{100 * row[k]:.2f}" for k in ("accuracy", "balanced_accuracy", "macro_f1", "top2_accuracy")),
        )
    e = report["ensemble"]
    table.add_row(
        "[bold]ensemble[/]",
        "",
        *(f"[bold]{100 * e[k]:.2f}[/]" for k in ("accuracy", "balanced_accuracy", "macro_f1", "top2_accuracy")),
    )
    console.print(table)
    console.print(f"saved {report['saved']} (evaluate it with `fer-models evaluate {report['saved']} --data {data}`)")


@main.command("predict")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--model",
    "model_spec",
    default=BUILTIN,
    show_default=True,
    help="builtin, a run folder, a checkpoint (.json/.safetensors) or an ensemble .json",
)
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=DEFAULT_EVERY,
    show_default=True,
    help="videos: classify every Nth frame",
)
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False), help="write one record per face (pandas.read_json)"
)
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False), help="write one row per face (pandas.read_csv)")
@click.option("--annotate", type=click.Path(file_okay=False), help="write the images with boxes and labels to DIR")
@click.option(
    "--explain",
    type=click.Path(file_okay=False),
    help="write the images with each face's Grad-CAM heatmap (where the model looks) to DIR",
)
@click.option("--tta", type=click.Choice(TTA_MODES), help="[default: the model's own]")
@click.option(
    "--amp",
    type=click.Choice(AMP_MODES),
    default="none",
    show_default=True,
    help="none: float32, exact; auto: bf16 where the device has it (about 3.5x faster on a CPU with native "
    "bf16, probabilities within about 1e-2)",
)
@click.option("--overwrite", is_flag=True, help="replace existing --json/--csv files and --annotate contents")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@face_options("photo", policy="all")
def predict_command(
    paths, model_spec, every, json_out, csv_out, annotate, explain, tta, amp, overwrite, device, **face_settings
) -> None:
    """Expressions of the faces in images, folders (recursive) and videos: a table, and
    --json/--csv/--annotate/--explain."""
    from fer_models.checkpoint import input_files
    from fer_models.inference.classifier import load_classifier
    from fer_models.inference.media import check_outputs, find_media, predict_media, write_row_files

    files = find_media(paths)  # inputs, outputs and the model are checked before the face detector is set up
    check_outputs(
        [*paths, *files],  # the files found too: a hard link elsewhere to one of them is that input
        {"--json": json_out, "--csv": csv_out},
        annotate,
        overwrite,
        inputs=[*input_files(model_spec), *face_inputs(face_settings)],
        explain=explain,
    )
    classifier = load_classifier(model_spec, resolve_device(device), tta, amp)
    with FaceStage(FaceStageConfig(**face_settings)) as stage:
        summary = predict_media(list(paths), classifier, stage, every, annotate, overwrite, files, explain)
    rows = {out: fmt for out, fmt in ((json_out, "json"), (csv_out, "csv")) if out is not None}
    if rows:  # together: a kill between the two files leaves what the same command again finishes
        write_row_files(summary.predictions, classifier.classes, rows)
    _print_predictions(summary, classifier.classes, [o for o in (json_out, csv_out, annotate, explain) if o])


SHOWN_FACES = 40  # rows of the table; --json/--csv hold them all


def _print_predictions(summary, classes: tuple[str, ...], outputs: list[str]) -> None:
    table = Table(
        title=f"{len(summary.predictions)} face(s) in {summary.images} image(s)"
        f"{f' and {summary.frames} frame(s) of {summary.videos} video(s)' if summary.videos else ''}"
    )
    for column in ("file", "frame", "box x,y,w,h", "label", "score", *(c[:5] for c in classes)):
        table.add_column(column, justify="left" if column in ("file", "label") else "right")
    for face in summary.predictions[:SHOWN_FACES]:
        table.add_row(
            escape(face.file),
            "" if face.frame is None else str(face.frame),
            f"{face.x},{face.y},{face.w},{face.h}",
            face.label,
            f"{face.score:.2f}",
            *(f"{face.probabilities[c]:.2f}" for c in classes),
        )
    console.print(table)
    if len(summary.predictions) > SHOWN_FACES:
        console.print(f"... and {len(summary.predictions) - SHOWN_FACES} more face(s): --csv or --json holds every one")
    for reason, count in summary.without_face.most_common():
        examples = ", ".join(summary.examples[reason][:3])
        logger.warning(f"{count} image(s)/frame(s) gave no face ({reason}), e.g. {escape(examples)}")
    for out in outputs:
        console.print(f"wrote {escape(str(out))}")


@main.command("demo")
@click.option(
    "--model",
    "model_spec",
    default=BUILTIN,
    show_default=True,
    help="builtin, a run folder, a checkpoint (.json/.safetensors) or an ensemble .json",
)
@click.option("--host", default=DEMO_HOST, show_default=True, help="address to serve on (0.0.0.0: every network)")
@click.option("--port", type=click.IntRange(1, 65535), default=DEMO_PORT, show_default=True)
@click.option(
    "--share",
    type=click.Choice(SHARE_MODES),
    default="off",
    show_default=True,
    help="on: a public link through Gradio's servers (needs the internet)",
)
@click.option(
    "--tta", type=click.Choice(TTA_MODES), default="none", show_default=True, help="none keeps the webcam fast"
)
@click.option(
    "--amp",
    type=click.Choice(AMP_MODES),
    default="auto",
    show_default=True,
    help="auto: bf16 where the CPU has it natively",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="torch CPU threads (one face at a time runs fastest on one)",
)
@click.option("--device", default="cpu", show_default=True, help=DEVICE_HELP)
@face_options("photo", policy="all")
def demo_command(model_spec, host, port, share, tta, amp, threads, device, **face_settings) -> None:
    """A local web app: webcam, photo and video tabs, every face's expression and, on demand, where the model
    looks (Grad-CAM). Needs the extra: pip install -e ".[demo]"."""
    from fer_models.inference.demo import serve

    app, url = serve(
        model_spec,
        lambda: FaceStage(FaceStageConfig(**face_settings)),
        host=host,
        port=port,
        share=share,
        device=resolve_device(device),
        tta=tta,
        amp=amp,
        threads=threads,
    )
    console.print(f"fer-models demo of {escape(model_spec)}: open [bold]{url}[/] in a browser; Ctrl-C stops it")
    try:
        app.block_thread()
    finally:
        app.close()


@main.command("export")
@click.argument("model_spec", metavar="MODEL")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="onnx", show_default=True)
@click.option(
    "--out", type=click.Path(dir_okay=False), help="[default: MODEL's folder/<name>.onnx; builtin: builtin.onnx]"
)
@click.option("--tta", type=click.Choice(TTA_MODES), help="[default: the model's own]")
@click.option("--overwrite", is_flag=True, help="replace an existing --out file")
def export_command(model_spec, fmt, out, tta, overwrite) -> None:
    """Export a run, checkpoint, ensemble or the built-in model (preprocessing and TTA inside the graph)."""
    from fer_models.inference.export import default_export_path, export

    out = out or default_export_path(model_spec, fmt)
    path = export(model_spec, out, fmt, tta, overwrite=overwrite)
    console.print(f"wrote {escape(str(path))}")  # its input and output shapes are in the log line above


@main.command("judge")
@click.argument("pool", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--model",
    "model",
    default=BUILTIN,
    show_default=True,
    help="the judge: the built-in model, or a run folder, checkpoint or ensemble .json trained on real faces",
)
@click.option(
    "--clip", help="also CLIP's opinion: a hub id or local folder of a CLIP model (skipped offline when not cached)"
)
@click.option(
    "--tta",
    type=click.Choice(TTA_MODES),
    default=JUDGE_TTA,
    show_default=True,
    help="test-time views per face (ten-crop: 5x the time for a few tenths of a point; docs/judging.md)",
)
@click.option(
    "--amp",
    type=click.Choice(AMP_MODES),
    default=JUDGE_AMP,
    show_default=True,
    help="auto: bf16 where the CPU has it natively (labels >= 99%% equal to float32's), none: float32",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--overwrite", is_flag=True, help="judge again a pool judged by another model or other settings")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def judge_command(pool, model, clip, tta, amp, batch_size, device, overwrite, as_json) -> None:
    """Score every face of POOL with an independent model: does it show its folder's class?

    Writes POOL/judgement.jsonl (what `fer-synth balance --judged` uses), a report and a confusion PNG.
    """
    import json

    from fer_models.inference.judge import CONFUSION_FILE, judge_pool

    report = judge_pool(
        pool,
        model,
        device=resolve_device(device),
        tta=tta,
        amp=amp,
        batch_size=batch_size,
        overwrite=overwrite,
        clip=clip,
    )
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    table = Table(title=escape(f"{pool} judged by {report['judge']['model']}"))
    for column in ("class", "faces", "agreement", "mean p(intended)", "most often judged as"):
        table.add_column(column, justify="left" if column in ("class", "most often judged as") else "right")
    for name, row in report["per_class"].items():
        confusion = f"{row['top_confusion']} ({100 * row['top_confusion_share']:.0f}%)" if row["top_confusion"] else ""
        table.add_row(
            name, str(row["faces"]), f"{100 * row['agreement']:.1f}%", f"{row['mean_p_intended']:.3f}", confusion
        )
    table.add_section()
    table.add_row("all", str(report["faces"]), f"{100 * report['agreement']:.1f}%", "", "")
    console.print(table)
    if "class_mapping" in report:
        console.print(f"[yellow]judged on the pool's classes: {escape(report['class_mapping']['note'])}[/]")
    console.print("kept by policy: " + ", ".join(f"{policy} {n}" for policy, n in report["policies"].items()))
    if "clip" in report:
        c = report["clip"]
        console.print(
            f"CLIP on {c['faces']} faces: agrees with the intended class {100 * c['agreement_with_intended']:.1f}%, "
            f"with the judge {100 * c['agreement_with_judge']:.1f}%"
        )
    console.print(f"records in {pool}/judgement.jsonl, confusion in {pool}/{CONFUSION_FILE}")


@main.command("compare")
@click.argument("datasets", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--recipe", help="the recipe every arm trains with (list-recipes) or a .yaml path")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="seeds 0..N-1 per arm")
@click.option(
    "--variant",
    "variants",
    multiple=True,
    help="an arm on the first file with one setting changed, "
    "e.g. loss=focal, class_weighting=balanced, balanced_sampler=true (repeatable)",
)
@click.option(
    "--ensemble",
    "ensembles",
    multiple=True,
    help="an arm averaging other arms seed by seed, named by arm or "
    "balance method, comma-separated, e.g. ros,smote,smote-tomek (repeatable)",
)
@click.option("--out", type=click.Path(file_okay=False), default="runs/compare", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1))
@click.option(
    "--train-images",
    type=click.IntRange(min=1),
    help="about this many training images per run (epochs = "
    "N / the arm's train rows): an oversampled file gets no more optimizer steps than the baseline",
)
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True), help="seconds of training per run")
@click.option(
    "--budget-clock",
    type=click.Choice(tuple(BUDGET_CLOCKS)),
    help="what --time-budget counts: wall-clock or the run's CPU seconds [default: wall]",
)
@click.option("--threads", type=click.IntRange(min=1))
@click.option(
    "--resamples",
    type=click.IntRange(min=100),
    default=RESAMPLES,
    show_default=True,
    help="bootstrap resamples of the paired intervals",
)
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
def compare_command(
    datasets,
    recipe,
    seeds,
    variants,
    ensembles,
    out,
    epochs,
    train_images,
    time_budget,
    budget_clock,
    threads,
    resamples,
    device,
) -> None:
    """Which rebalancing helps? Train one recipe on each file (the first is the baseline; same seeds, same val/test)
    and rank the arms on test, with paired bootstrap intervals against the baseline."""
    from fer_models.evaluation.compare import METRICS, RECALL_PNG, REPORT_FILE, compare, leaderboard

    if epochs and train_images:
        raise click.UsageError("give --epochs or --train-images, not both")
    overrides = {
        k: v
        for k, v in dict(epochs=epochs, time_budget=time_budget, budget_clock=budget_clock, threads=threads).items()
        if v is not None
    }
    result = compare(
        list(datasets),
        out,
        recipe=recipe,
        seeds=seeds,
        variants=list(variants),
        device=device,
        ensembles=[[m.strip() for m in e.split(",") if m.strip()] for e in ensembles],
        resamples=resamples,
        train_images=train_images,
        **overrides,
    )
    table = Table(
        title=escape(
            f"test metrics (%), mean of {seeds} seed(s) [95% interval]; difference to the baseline "
            f"{result['first']} [paired 95% interval]; best balanced accuracy first"
        )
    )
    table.add_column("arm")
    for metric in METRICS:
        table.add_column(metric.replace("_", " "), justify="right")
        table.add_column("vs baseline", justify="right", style="dim")
    for name in leaderboard(result):
        arm = result["arms"][name]
        cells = []
        for metric in METRICS:
            m, d = arm[metric], arm["vs_first"][metric]
            cells.append(f"{100 * m['mean']:.2f} [{100 * m['low']:.1f}, {100 * m['high']:.1f}]")
            cells.append(
                ""
                if name == result["first"]
                else f"{100 * d['mean']:+.2f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
            )
        table.add_row(escape(name), *cells)
    console.print(table)
    console.print(
        f"saved {out}/{REPORT_FILE} and {out}/{RECALL_PNG}; `fer-models report --compare {out}` shows per-class "
        "recall with intervals"
    )


@main.command("report")
@click.argument("runs", nargs=-1, type=click.Path())
@click.option(
    "--compare",
    "comparisons",
    multiple=True,
    type=click.Path(),
    help="A `fer-models compare` result (its --out folder or compare.json) to show too (repeatable).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=REPORT_OUT,
    show_default=True,
    help="A new or empty folder, or an earlier report to replace: index.html, img/, report.json.",
)
@click.option("--overwrite", is_flag=True, help="Replace the contents of an --out folder that is not a report.")
def report_command(runs, comparisons, out, overwrite) -> None:
    """A static HTML page about RUNS (run folders, checkpoints, ensemble files): curves, confusion matrices,
    per-class scores, members vs ensemble, worst-confused faces, comparisons. Built from what `evaluate` and
    `compare` wrote."""
    from fer_models.report.runs import runs_report

    console.print(f"Wrote [bold]{runs_report(list(runs), out, overwrite, list(comparisons))}[/]")


@main.command("list-models")
def list_models_command() -> None:
    """Registered models with parameters and input size (timm:<name> builds any timm architecture too)."""
    import torch

    from fer_models.models import create_model, list_models

    table = Table(title="models (plus timm:<name> for any timm architecture)")
    for column in ("name", "params", "input", "recipe", "paper"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for spec in list_models():
        with torch.device("meta"):  # counts parameters without allocating them
            params = sum(p.numel() for p in create_model(spec.name).parameters())
        table.add_row(
            spec.name,
            f"{params / 1e6:.2f}M",
            f"{spec.in_chans}x{spec.input_size}x{spec.input_size}",
            spec.recipe or "",
            spec.paper,
        )
    console.print(table)


@main.command("list-recipes")
def list_recipes_command() -> None:
    """The recipes shipped in fer_models/recipes (use with `train --recipe NAME`)."""
    from fer_models.recipes import list_recipes, load_recipe

    table = Table(title="recipes")
    for column in ("name", "model", "optimizer", "schedule", "epochs", "batch", "TTA"):
        table.add_column(column, no_wrap=True)
    table.add_column("description")
    for name in list_recipes():
        r = load_recipe(name)
        table.add_row(
            name,
            str(r.get("model", "")),
            str(r.get("optimizer", "")),
            str(r.get("schedule", "")),
            str(r.get("epochs", "")),
            str(r.get("batch_size", "")),
            str(r.get("tta", "")),
            r.get("description", ""),
        )
    console.print(table)


if __name__ == "__main__":
    main()
