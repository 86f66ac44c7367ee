"""``fer-synth``: a thin click layer over fer_synth's Python API."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click
import numpy as np
from rich.table import Table

from fer_synth import __version__
from fer_synth.core.dataset import SYNTHETIC, shared_classes
from fer_synth.core.env import DEVICE_HELP
from fer_synth.core.errors import InvalidOptionError
from fer_synth.core.folders import describe_skipped
from fer_synth.core.judgement import DEFAULT_POLICY, SelectionPolicy
from fer_synth.data.balance import BalanceConfig, BalanceResult, PackConfig, TopUpPlan, balance, default_output, pack
from fer_synth.data.export import DEFAULT_FORMAT, DEFAULT_SHARD_SIZE, EXPORT_FORMATS, export
from fer_synth.data.ferplus import LABEL_MODES
from fer_synth.data.oversample import method_names
from fer_synth.data.readers import read_dataset
from fer_synth.data.stats import dataset_stats
from fer_synth.faces.options import face_inputs, face_options
from fer_synth.faces.stage import FaceStage, FaceStageConfig
from fer_synth.generation import config as gen
from fer_synth.ui.console import FriendlyGroup, console, with_options
from fer_synth.ui.html import DEFAULT_OUT as REPORT_OUT

logger = logging.getLogger(__name__)


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fer-synth")
def main() -> None:
    """Synthetic faces for FER2013: prompts, generation, face crops, balancing and the HDF5 file."""


@main.command()
@click.argument("input_dir", metavar="INPUT", type=click.Path(file_okay=False))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder: <class>/*.png faces, manifest.jsonl, run.json.",
)
@click.option(
    "--keep-rejects",
    type=click.Path(file_okay=False),
    default=None,
    help="Copy rejected images to DIR/<reason>/<class>/ for a look.",
)
@click.option("--overwrite", is_flag=True, help="Empty an --out folder that holds something else (never the input).")
@face_options("photo")
def crop(input_dir: str, out_dir: str, keep_rejects: str | None, overwrite: bool, **options) -> None:
    """Detect, crop and filter the faces in a folder of images (class sub-folders, flat, or any sub-folders).

    Resumable: images already in OUT's manifest are skipped.
    """
    from fer_synth.faces.crop import check_outputs, crop_folder, find_images

    sources = find_images(Path(input_dir))  # a bad INPUT or output fails before the detector loads
    check_outputs(Path(input_dir), out_dir, keep_rejects, overwrite, face_inputs(options))
    with FaceStage(FaceStageConfig(**options)) as stage:
        summary = crop_folder(
            input_dir, out_dir, stage, keep_rejects=keep_rejects, progress=True, sources=sources, overwrite=overwrite
        )
    console.print(_crop_table(summary, f"faces from {input_dir}"))
    console.print(
        f"{summary.processed} images cropped now, {summary.resumed} from an earlier run; "
        f"faces in {out_dir}, records in {out_dir}/manifest.jsonl"
    )


def _crop_table(summary, title: str) -> Table:
    """Kept and rejected images: one row per class and a total, one column per reason that occurred."""
    from fer_synth.faces.crop import UNLABELLED, UNREADABLE
    from fer_synth.faces.stage import REASONS, TOO_LARGE

    reasons = [r for r in (*REASONS, UNREADABLE, TOO_LARGE) if any(key[1] == r for key in summary.rejected)]
    table = Table("class", "images", "kept", "faces", *reasons, title=title)
    rows = [
        [
            label,
            summary.images[label],
            summary.kept[label],
            summary.faces[label],
            *(summary.rejected[label, r] for r in reasons),
        ]
        for label in sorted(summary.images, key=lambda c: (c == UNLABELLED, c))
    ]
    if len(rows) > 1:
        rows.append(["total", *(sum(row[i] for row in rows) for i in range(1, 4 + len(reasons)))])
    for row in rows:
        table.add_row(*(str(v) for v in row))
    return table


def _split_table(title: str, stats: dict, classes: list[str]) -> Table:
    """Classes as rows, each split as two columns: its count and its deficit to the largest class."""
    table = Table(title=title)
    table.add_column("class")
    for split in stats:
        table.add_column(split, justify="right")
        table.add_column("deficit", justify="right", style="dim")
    for name in classes:
        table.add_row(name, *[str(v) for s in stats.values() for v in (s["counts"][name], s["deficits"][name])])
    table.add_section()
    table.add_row("total", *[str(v) for s in stats.values() for v in (s["num_images"], s["needed"])])
    table.add_row("max/min", *[v for s in stats.values() for v in (f"{s['imbalance_ratio']:.1f}", "")])
    return table


_label_options = [
    click.option(
        "--ferplus",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="FER+ votes (Microsoft's fer2013new.csv) relabelling DATASET, FER2013's CSV, with eight classes.",
    ),
    click.option(
        "--label-mode",
        type=click.Choice(LABEL_MODES),
        default=PackConfig.label_mode,
        show_default=True,
        help="With --ferplus: strict-majority labels, or vote distributions as soft training targets.",
    ),
]
_near_distance_option = click.option(
    "--near-distance",
    type=click.IntRange(0, 64),
    default=PackConfig.near_distance,
    show_default=True,
    help="Near duplicates: perceptual hashes (pHash, 64 bits) at most this many bits apart.",
)


@main.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of tables.")
@with_options([*_label_options, _near_distance_option])
def stats(dataset: Path, as_json: bool, ferplus: Path | None, label_mode: str, near_distance: int) -> None:
    """Class counts, deficits to equilibrium, identical and nearly identical images of DATASET.

    DATASET is a FER2013 .csv/.csv.gz, Kaggle-style train/ test/ folders, a folder of class folders or an
    .h5 file written by this tool.
    """
    data = read_dataset(dataset, ferplus=ferplus, label_mode=label_mode)
    report = dataset_stats(data.splits, near_distance=near_distance)
    report["skipped"] = [list(item) for item in data.attrs.get("skipped", [])]
    if "label_drops" in data.attrs:
        report["label_drops"] = data.attrs["label_drops"]
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    if message := describe_skipped(data.attrs.get("skipped", [])):
        logger.warning(message)
    for note in data.attrs.get("notes", []):
        console.print(f"[dim]{note}[/]", soft_wrap=True)
    console.print(_split_table(f"{dataset} ({data.attrs.get('layout', 'hdf5')})", report["splits"], report["classes"]))
    per_split = ", ".join(f"{name} {s['needed']:,}" for name, s in report["splits"].items())
    console.print(
        f"Images needed for class equilibrium (every class up to its split's largest): "
        f"[bold]{report['needed_total']:,}[/] ({per_split})"
    )
    d = report["duplicates"]
    console.print(
        f"Identical images: {d['duplicate_groups']:,} groups with {d['extra_copies']:,} extra copies; "
        f"[bold red]{d['cross_split_groups']:,}[/] groups span more than one split (leakage); "
        f"[bold red]{d['conflicting_label_groups']:,}[/] carry conflicting labels; "
        f"{d['constant_images']:,} images are a single flat colour."
    )
    for kind, groups in d["examples"].items():
        for group in groups:
            console.print(f"  [dim]{kind}: {_group(group, ' = ')}[/]", soft_wrap=True)
    n = report["near_duplicates"]
    links = ", ".join(f"{pair.replace('~', ' and ')} {count:,}" for pair, count in n["split_pairs"].items())
    console.print(
        f"Nearly identical images (pHash distance <= {n['max_distance']}, identical ones included): "
        f"{n['groups']:,} groups with {n['extra_images']:,} extra images; "
        f"{n['within_split_groups']:,} within one split, [bold red]{n['cross_split_groups']:,}[/] across splits "
        f"({links or 'none'}), {n['cross_split_not_identical']:,} of them beyond identical copies; "
        f"{n['pairs_not_identical']:,} near pairs are not pixel-identical.",
        soft_wrap=True,
    )
    for group in n["examples"]:
        console.print(f"  [dim]near, cross_split: {_group(group, ' ~ ')}[/]", soft_wrap=True)


def _group(members: list[str], sep: str) -> str:
    return sep.join(members[:4]) + (f" (+{len(members) - 4} more)" if len(members) > 4 else "")


def _plan_table(plan: TopUpPlan) -> Table:
    table = Table(title="Top-up plan")
    table.add_column("class")
    for split in plan.take:
        table.add_column(f"{split} real", justify="right")
        table.add_column("target", justify="right")
        table.add_column("added", justify="right", style="green")
        table.add_column("short", justify="right", style="red")
    for i, name in enumerate(plan.classes):
        cells = []
        for split in plan.take:
            short = plan.shortfall[split][i]
            cells += [
                str(plan.counts[split][i]),
                str(plan.targets[split][i]),
                str(plan.take[split][i]),
                str(short) if short else "",
            ]
        table.add_row(name, *cells)
    return table


def _print_notes(result: BalanceResult) -> None:
    """What was left out and how the splits were made (a dry run's too)."""
    if message := describe_skipped(result.skipped):
        logger.warning(f"{message} (--strict makes this an error)")
    for note in result.notes:
        console.print(
            f"[bold red]{note}[/]" if note.startswith(("WARNING", "refused")) else f"[dim]{note}[/]", soft_wrap=True
        )


def _report(result: BalanceResult) -> None:
    _print_notes(result)
    table = Table(title="Output splits (synthetic in brackets)")
    table.add_column("class")
    for name in result.splits:
        table.add_column(name, justify="right")
    classes = shared_classes(result.splits)
    synthetic = {
        name: np.bincount(split.labels[split.source == SYNTHETIC], minlength=len(classes))
        for name, split in result.splits.items()
    }
    for i, cls in enumerate(classes):
        table.add_row(
            cls,
            *[
                f"{split.counts()[i]}" + (f" ({synthetic[name][i]})" if synthetic[name][i] else "")
                for name, split in result.splits.items()
            ],
        )
    table.add_section()
    table.add_row(
        "total",
        *[
            f"{len(split)}" + (f" ({split.n_synthetic})" if split.n_synthetic else "")
            for split in result.splits.values()
        ],
    )
    console.print(table)
    if result.out:
        console.print(f"Wrote [bold]{result.out}[/]")


#: The options pack and balance share, named as PackConfig's fields and defaulting to them.
_common_split_options = [
    click.option(
        "--val-fraction",
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
        default=PackConfig.val_fraction,
        show_default=True,
        help="Stratified fraction of train held out as val when the source has no PublicTest/val split.",
    ),
    click.option(
        "--seed",
        type=click.IntRange(min=0),
        default=PackConfig.seed,
        show_default=True,
        help="Seed for every random choice.",
    ),
    click.option("--drop-duplicates", is_flag=True, help="Drop train images identical to a val/test image."),
    click.option(
        "--drop-near-duplicates",
        is_flag=True,
        help="Drop train images nearly identical to a val/test image (see --near-distance).",
    ),
    _near_distance_option,
    click.option(
        "--compression",
        type=click.Choice(["none", "gzip", "lzf"]),
        default="none",
        show_default=True,
        help="Compress the HDF5 images (48x48 faces shrink <10%; reading gets 10-20x slower).",
    ),
    click.option("--strict", is_flag=True, help="Stop on any unusable source row or file instead of skipping it."),
    click.option(
        "--overwrite", is_flag=True, help="Replace a folder --out that holds something else (never an input)."
    ),
    *_label_options,
]


@main.command("balance")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "--method",
    type=click.Choice(method_names()),
    default=BalanceConfig.method,
    show_default=True,
    help="generated: faces from --pool; the others rebalance the train split from its own rows "
    "(imbalanced-learn; docs/rebalancing.md).",
)
@click.option(
    "--pool",
    type=click.Path(path_type=Path),
    default=Path(BalanceConfig.pool),
    show_default=True,
    help="Per-class folders of generated faces (what `fer-synth generate` writes).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="An .h5 file (the HDF5 contract) or a folder (Kaggle-style). Default: <dataset>_balanced.h5 here.",
)
@click.option(
    "--target", default=BalanceConfig.target, show_default=True, help="Images per class: max, median or a number."
)
@click.option(
    "--splits",
    default=",".join(BalanceConfig.splits),
    show_default=True,
    help="Comma-separated splits to top up. val/test need --force-synthetic-eval.",
)
@click.option(
    "--force-synthetic-eval",
    is_flag=True,
    help="Allow synthetic images in val/test (recorded in the output; evaluation is then not clean).",
)
@click.option("--allow-shortfall", is_flag=True, help="Top up as far as the pool allows instead of failing.")
@click.option(
    "--allow-pool-leakage",
    is_flag=True,
    help="Use pool faces nearly identical to a val/test face (refused by default; recorded in the output).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and write nothing.")
@click.option(
    "--judged",
    is_flag=True,
    help="Use only the faces the pool's judgement trusts (`fer-models judge POOL` first), best-judged first.",
)
@click.option(
    "--min-prob",
    type=click.FloatRange(0, 1),
    help="With --judged: trust faces the judge gives their class "
    f"at least this probability [default policy: {DEFAULT_POLICY}].",
)
@click.option("--top-k", type=click.IntRange(min=1), help="With --judged: trust the K best-judged faces of each class.")
@click.option("--agree", is_flag=True, help="With --judged: trust faces whose judged class is their class.")
@with_options(_common_split_options)
def balance_command(
    dataset,
    method,
    pool,
    out,
    target,
    splits,
    force_synthetic_eval,
    allow_shortfall,
    allow_pool_leakage,
    dry_run,
    judged,
    min_prob,
    top_k,
    agree,
    compression,
    **options,
) -> None:
    """Top up the classes of DATASET to equilibrium with generated faces from POOL, or by --method."""
    chosen = {k: v for k, v in (("min-prob", min_prob), ("top-k", top_k), ("agree", agree or None)) if v is not None}
    if chosen and not judged:
        raise InvalidOptionError(f"--{next(iter(chosen))} chooses which judged faces to trust; add --judged")
    if len(chosen) > 1:
        raise InvalidOptionError("give one selection policy: --min-prob, --top-k or --agree")
    policy = None
    if judged:
        kind, value = next(iter(chosen.items()), (None, None))
        policy = DEFAULT_POLICY if kind is None else SelectionPolicy(kind, None if kind == "agree" else value)
    result = balance(
        BalanceConfig(
            dataset,
            out or default_output(dataset),
            pool=pool,
            target=target,
            splits=[s.strip() for s in splits.split(",") if s.strip()],
            force_synthetic_eval=force_synthetic_eval,
            allow_shortfall=allow_shortfall,
            allow_pool_leakage=allow_pool_leakage,
            dry_run=dry_run,
            compression=None if compression == "none" else compression,
            judged=policy,
            method=method,
            **options,
        )
    )
    console.print(_plan_table(result.plan))
    if result.plan.total_shortfall:
        logger.warning(f"the pool was short: {result.plan.shortfall_by_class()} (--allow-shortfall)")
    if dry_run:
        _print_notes(result)
    else:
        _report(result)


@main.command("pack")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The .h5 file (or a folder) to write.")
@with_options(_common_split_options)
def pack_command(dataset, out, compression, **options) -> None:
    """Write DATASET as train/val/test in the HDF5 contract, with no top-up."""
    _report(pack(PackConfig(dataset, out, compression=None if compression == "none" else compression, **options)))


_class_list_option = click.option(
    "--class-list",
    type=click.Choice(gen.CLASS_LISTS),
    default=gen.DEFAULT_CLASS_LIST,
    show_default=True,
    help="The classes --emotion names (and 'all') come from; ferplus adds contempt.",
)


@main.command("export")
@click.argument("h5", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "format_",
    type=click.Choice(EXPORT_FORMATS.names()),
    default=DEFAULT_FORMAT,
    show_default=True,
    help="Hugging Face ImageFolder (PNG + metadata.jsonl per split) or WebDataset tar shards.",
)
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    default=DEFAULT_SHARD_SIZE,
    show_default=True,
    help="webdataset: samples per .tar shard.",
)
@click.option("--overwrite", is_flag=True, help="Replace an OUT folder that holds something else (never the input).")
def export_command(h5: Path, out: Path, format_: str, shard_size: int, overwrite: bool) -> None:
    """Write the HDF5 file H5 as files other tools read, into the folder OUT (streamed, chunk by chunk)."""
    result = export(h5, out, format_, shard_size, overwrite)
    counts = ", ".join(f"{name} {n:,}" for name, n in result.counts.items())
    console.print(f"Wrote [bold]{result.out}[/] ({result.format}): {counts}")
    if result.format == "imagefolder":
        console.print(f'[dim]load it with datasets.load_dataset("imagefolder", data_dir="{result.out}")[/]')


@main.command("report")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "--pool",
    type=click.Path(path_type=Path),
    default=None,
    help="A folder of generated or cropped faces (with its manifest, run.json, judgement.jsonl).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path(REPORT_OUT),
    show_default=True,
    help="A new or empty folder, or an earlier report to replace: index.html, img/, report.json.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the faces sampled for the contact sheets.",
)
@click.option("--overwrite", is_flag=True, help="Replace the contents of an --out folder that is not a report.")
def report_command(dataset: Path, pool: Path | None, out: Path, seed: int, overwrite: bool) -> None:
    """A static HTML page about DATASET (and POOL): class counts, faces per class, run outcomes, duplicates,
    judge results, provenance. Opens from disk, offline."""
    from fer_synth.report import dataset_report

    console.print(f"Wrote [bold]{dataset_report(dataset, pool, out, seed, overwrite)}[/]")


@main.command("prompts")
@click.option(
    "--emotion",
    "-e",
    "emotions",
    multiple=True,
    required=True,
    help="Class name(s) or alias(es), comma-separated or repeated; 'all' for every class.",
)
@_class_list_option
@click.option("--n", "n", type=click.IntRange(min=1), default=5, show_default=True, help="Prompts per class.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="The run seed.")
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True, help="First image index.")
@click.option(
    "--prompts",
    "prompts_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="A prompt file (YAML); default: the shipped prompts/default.yaml.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")
def prompts_command(
    emotions: tuple[str, ...], class_list: str, n: int, seed: int, start: int, prompts_file: str | None, as_json: bool
) -> None:
    """Print the prompts and seeds that `generate` would use, without loading a model."""
    from fer_synth.core.classes import known_list
    from fer_synth.generation.prompts import load_prompts

    prompt_set = load_prompts(prompts_file)
    wanted = known_list(class_list).resolve_many(emotions)
    for emotion in wanted:  # a class the file lacks is an error before anything is printed (no partial --json)
        prompt_set.lists_for(emotion)
    if not as_json:
        console.print(f"[dim]prompts: {prompt_set.source} ({prompt_set.digest})[/]")
        console.print(f"[dim]negative: {prompt_set.negative}[/]")
    for emotion in wanted:
        # One at a time, not prompts()'s list: a mistyped --n of 10**20 prints at once and holds no memory.
        for p in (prompt_set.prompt(seed, emotion, i) for i in range(start, start + n)):
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "class": p.emotion,
                            "index": p.index,
                            "seed": p.seed,
                            "prompt": p.text,
                            "negative_prompt": p.negative,
                        }
                    )
                )
            else:
                console.print(f"[bold]{p.emotion}[/] {p.index:>6}  seed {p.seed:<20} {p.text}", soft_wrap=True)


@main.command("generate")
@click.option(
    "--emotion",
    "-e",
    "emotions",
    multiple=True,
    required=True,
    help="Class name(s) or alias(es), comma-separated or repeated; 'all' for every class.",
)
@_class_list_option
@click.option(
    "--n", "n", type=click.IntRange(min=1), required=True, help="Images (with the face stage: kept faces) per class."
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Run seed; image i's prompt and seed derive from it.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=gen.DEFAULT_OUT,
    show_default=True,
    help="Output folder (the pool that `fer-synth balance` reads).",
)
@click.option(
    "--model",
    default=gen.DEFAULT_MODEL,
    show_default=True,
    help=f"Hub id, local diffusers folder, single .safetensors file, or '{gen.TINY_RANDOM}' (noise, for smoke runs).",
)
@click.option(
    "--vae",
    default="auto",
    show_default=True,
    help=f"A VAE hub id or folder; 'auto' pairs the default model with {gen.DEFAULT_VAE}; "
    "'model' keeps the model's own.",
)
@click.option(
    "--scheduler",
    type=click.Choice(list(gen.SCHEDULER_SPECS)),
    default=gen.DEFAULT_SCHEDULER,
    show_default=True,
    help="Sampler; lcm/tcd are for few-step LoRAs.",
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=gen.DEFAULT_STEPS, show_default=True, help="Denoising steps."
)
@click.option(
    "--guidance",
    type=click.FloatRange(min=0),
    default=gen.DEFAULT_GUIDANCE,
    show_default=True,
    help="Classifier-free guidance scale.",
)
@click.option(
    "--size",
    type=click.IntRange(min=8),
    default=gen.DEFAULT_SIZE,
    show_default=True,
    help="Image side in pixels (a multiple of 8, at most 2048).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=gen.DEFAULT_BATCH,
    show_default=True,
    help="Images per pipeline call.",
)
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option(
    "--dtype",
    type=click.Choice(["auto", *gen.DTYPE_NAMES]),
    default="auto",
    show_default=True,
    help="auto: fp16 on GPU, fp32 on cpu.",
)
@click.option(
    "--safety-checker/--no-safety-checker",
    default=True,
    show_default=True,
    help="Keep the model's NSFW checker (flagged images are black and flagged in the manifest).",
)
@click.option("--tiny-vae", default=None, help="Decode with a tiny VAE (AutoencoderTiny), e.g. madebyollin/taesd.")
@click.option(
    "--lora",
    multiple=True,
    help="LoRA .safetensors file or hub id (repeatable); few-step LoRAs "
    "(LCM, Hyper-SD) need --steps 4 --guidance 1 and --scheduler lcm or tcd.",
)
@click.option(
    "--config",
    "config_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="For a single .safetensors checkpoint offline: a diffusers folder of the same architecture.",
)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the UNet (pays off on long GPU runs).")
@click.option(
    "--prompts",
    "prompts_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="A prompt file (YAML); default: the shipped prompts/default.yaml.",
)
@click.option(
    "--faces/--no-faces",
    default=True,
    show_default=True,
    help="Run the face stage: keep 48x48 face crops (n counts kept faces); --no-faces keeps raw images.",
)
@click.option("--keep-raw", is_flag=True, help="With the face stage: also keep full-size images under OUT/raw/.")
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=gen.DEFAULT_MAX_ATTEMPTS,
    show_default=True,
    help="With the face stage: give up after this many attempts per wanted face.",
)
@click.option("--progress/--no-progress", default=True, help="Show the progress bar.")
@click.option("--overwrite", is_flag=True, help="Empty an --out folder that holds something else first.")
@face_options("generated")
@click.pass_context
def generate_command(
    ctx: click.Context,
    emotions: tuple[str, ...],
    class_list: str,
    n: int,
    seed: int,
    out: str,
    model: str,
    vae: str,
    scheduler: str,
    steps: int,
    guidance: float,
    size: int,
    batch_size: int,
    device: str,
    dtype: str,
    safety_checker: bool,
    tiny_vae: str | None,
    lora: tuple[str, ...],
    config_dir: str | None,
    compile_: bool,
    prompts_file: str | None,
    faces: bool,
    keep_raw: bool,
    max_attempts: int,
    progress: bool,
    overwrite: bool,
    **face_settings,
) -> None:
    """Generate face images per class with a diffusion model; resumable, shardable by RANK/WORLD_SIZE."""
    from fer_synth.generation.run import check_output, generate

    if keep_raw and not faces:
        raise InvalidOptionError(
            "--keep-raw needs the face stage; without it (--no-faces) the raw images are the output"
        )
    config = gen.GenerateConfig(
        emotions=emotions,
        class_list=class_list,
        n=n,
        seed=seed,
        out=Path(out),
        steps=steps,
        guidance=guidance,
        height=size,
        width=size,
        batch_size=batch_size,
        prompts=prompts_file,
        keep_raw=keep_raw,
        max_attempts=max_attempts,
        pipeline=gen.PipelineOptions(
            model=model,
            vae=vae,
            scheduler=scheduler,
            dtype=dtype,
            device=device,
            safety_checker=safety_checker,
            tiny_vae=tiny_vae,
            lora=lora,
            compile=compile_,
            config=config_dir,
        ),
    ).resolved()  # bad arguments fail before the face detector (or its model download) is set up
    check_output(config, overwrite, face_inputs(face_settings) if faces else [])
    face_stage = FaceStage(FaceStageConfig(**face_settings)) if faces else None
    try:
        summary = generate(config, face_stage=face_stage, progress=progress, overwrite=overwrite)
    finally:
        if face_stage is not None:
            face_stage.close()
    rate = summary.images_made / summary.seconds if summary.seconds else 0.0
    shard = f" (rank {summary.rank} of {summary.world_size})" if summary.world_size > 1 else ""
    console.print(
        f"generated {summary.images_made} images in {summary.seconds:.1f} s ({rate:.2f} img/s){shard} -> {summary.out}"
    )
    for name, c in summary.per_class.items():
        extra = f", nsfw-flagged {c.nsfw}" if c.nsfw else ""
        console.print(
            f"  {name:>8}: {c.kept}/{c.target} done ({c.done_before} records found, {c.attempted} made now{extra})"
        )
    report = summary.shortfall_report()
    if report:
        logger.warning(report)
        ctx.exit(1)


if __name__ == "__main__":
    main()
