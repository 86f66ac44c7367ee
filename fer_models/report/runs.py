"""``fer-models report``: one static HTML page about training runs and ensembles, built from the JSON they wrote.

It reads, and never recomputes: a run's ``best.json`` (settings) and ``metrics.json`` (history), the
``evaluation-<split>.json`` reports that ``fer-models evaluate`` wrote beside a checkpoint or ensemble file, and
their ``evaluation-<split>.npz`` probabilities (for the worst-confused faces). Every number on the page is one of
those reports' numbers (``report.json`` holds them as shown). The one thing computed here is a picture: where the
model looks per class (the mean Grad-CAM over correctly classified faces, :mod:`fer_models.inference.explain`).
Sections are plain functions of the loaded reports, so a ``compare`` section (issue 12) is one more function in
:data:`SECTIONS`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image

from fer_models import checkpoint as ckpt
from fer_models.evaluation.compare import REPORT_FILE as COMPARE_FILE
from fer_models.evaluation.compare import leaderboard, plot_recall
from fer_models.evaluation.ensemble import load_ensemble
from fer_models.evaluation.evaluate import is_evaluation_of, load_predictions
from fer_models.training.history import plot_curves
from fer_synth.core import store
from fer_synth.core.atomic import write_bytes
from fer_synth.core.classes import CLASSES
from fer_synth.core.env import resolve_device
from fer_synth.core.errors import FerError, MissingPathError
from fer_synth.core.folders import describe_skipped, given_twice
from fer_synth.core.outputs import once_each
from fer_synth.ui import html, plots

logger = logging.getLogger(__name__)

FACTS = "report.json"
HEADLINE = (
    ("accuracy", "accuracy %"),
    ("balanced_accuracy", "balanced acc %"),
    ("macro_f1", "macro-F1 %"),
    ("top2_accuracy", "top-2 %"),
    ("top3_accuracy", "top-3 %"),
)
WORST_PER_CLASS = 5  # two classes side by side on a laptop screen
CAM_FACES_PER_CLASS = 32  # faces per class in the mean Grad-CAM: a stable picture; minutes for big models on a CPU
CAM_SIDE = 144  # its thumbnails' side (3x the faces)
SETTINGS = (
    "model",
    "recipe",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "weight_decay",
    "schedule",
    "loss",
    "label_smoothing",
    "class_weighting",
    "balanced_sampler",
    "augment",
    "ema",
    "tta",
    "seed",
    "time_budget",
)


@dataclass
class Entry:
    """One run folder, checkpoint or ensemble file given to the report, with what it wrote about itself."""

    index: int
    name: str
    path: Path  # the checkpoint's or ensemble's .json
    meta: dict
    history: list[dict] = field(default_factory=list)
    evaluations: dict[str, dict] = field(default_factory=dict)  # split -> evaluate's report
    members: list[Entry] = field(default_factory=list)

    @property
    def is_ensemble(self) -> bool:
        return self.meta["format"] == ckpt.ENSEMBLE_FORMAT

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes") or (self.members[0].classes if self.members else CLASSES))

    @property
    def key(self) -> str:
        return f"entries.{self.index}"


def find_evaluations(checkpoint: Path) -> dict[str, dict]:
    """evaluate's reports beside ``checkpoint`` that are about it (an ensemble's folder may hold others'), by split.
    A damaged report (not JSON, or not the shape evaluate writes) is skipped with a warning naming it."""
    found, damaged = {}, []
    for path in sorted(ckpt.report_dir(checkpoint).glob("*evaluation-*.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            damaged.append((str(path), f"not readable as JSON: {str(e).splitlines()[0][:80]}"))
            continue
        if (problem := _evaluation_problem(report)) is not None:
            damaged.append((str(path), problem))
            continue
        if is_evaluation_of(report["checkpoint"], checkpoint):
            report["_file"] = str(path)
            found[report["split"]] = report
    if damaged:
        logger.warning(
            f"{describe_skipped(damaged)}: damaged evaluation report(s), left out of the page; run "
            "`fer-models evaluate` again to write them anew"
        )
    return found


def _evaluation_problem(report: object) -> str | None:
    """What keeps ``report`` from being an evaluation this page can show, or None."""
    if not isinstance(report, dict):
        return f"a JSON {type(report).__name__}, not an evaluation report"
    for key, kind in (("split", str), ("tta", str), ("model", str), ("n", int), ("results", dict), ("checkpoint", str)):
        if not isinstance(report.get(key), kind):
            return f"{key!r} is missing or not a {kind.__name__}"
    if not isinstance(report["results"].get(report["tta"]), dict):
        return f"no results for its TTA {report['tta']!r}"
    # Optional keys the page reads when present (older reports lack them).
    classes = report.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return "'classes' is not a list of class names"
    if not isinstance(report.get("n_synthetic", 0), int):
        return "'n_synthetic' is not an int"
    if not isinstance(report.get("class_mapping", {}), dict):
        return "'class_mapping' is not a mapping"
    for mode, by_source in report["results"].items():
        for source, metrics in by_source.items() if isinstance(by_source, dict) else [(None, None)]:
            if (
                not isinstance(metrics, dict)
                or not all(isinstance(metrics.get(k), (int, float)) for k, _ in HEADLINE)
                or not isinstance(metrics.get("per_class"), dict)
                or not isinstance(metrics.get("confusion"), list)
            ):
                return f"the {mode}/{source} metrics are incomplete"
    best = report["results"][report["tta"]].get("all")
    if best is None:
        return f"no 'all' results for its TTA {report['tta']!r}"
    if not all(
        isinstance(best["per_class"].get(c), dict)
        and all(isinstance(best["per_class"][c].get(k), (int, float)) for k in ("precision", "recall", "f1", "support"))
        for c in classes
    ):
        return "its per-class scores do not cover its classes"
    return None


def load_entry(path: str | os.PathLike, index: int) -> Entry:
    meta = ckpt.read_meta(path)
    file = Path(meta["_path"])
    name = file.stem if meta["format"] == ckpt.ENSEMBLE_FORMAT else file.parent.name
    history_file = file.parent / "metrics.json"
    history = meta.get("history", [])
    if history_file.exists():
        try:
            history = json.loads(history_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            logger.warning(f"{history_file}: not readable as JSON; the curves come from {file.name} instead")
    entry = Entry(
        index, name, file, meta, history if meta["format"] == ckpt.CHECKPOINT_FORMAT else [], find_evaluations(file)
    )
    if entry.is_ensemble:
        ensemble = load_ensemble(file)  # a damaged file is one line here too, as for evaluate and predict
        for spec, weight in zip(meta["members"], ensemble.weights):
            spec["weight"] = weight  # the page formats numbers: "0.5" in the file is read as 0.5
        entry.members = [load_entry(member, -1) for member in ensemble.members]
    return entry


# --- sections ---------------------------------------------------------------------------------------------

Section = Callable[[list[Entry], list[dict], html.Images, dict], "list[tuple[str, str, str]]"]


def _headline_cells(metrics: dict, key: str) -> list[html.Cell]:
    return [html.pct(metrics[m], f"{key}.{m}") for m, _ in HEADLINE]


def overview(
    entries: list[Entry], comparisons: list[dict], images: html.Images, facts: dict
) -> list[tuple[str, str, str]]:
    if not entries:
        return []
    header = ["run", "model", "split", "TTA", html.Cell("rows", numeric=True)] + [
        html.Cell(label, numeric=True) for _, label in HEADLINE
    ]
    rows, missing = [], []
    for e in entries:
        if not e.evaluations:
            missing.append(e.name)
        for split, report in e.evaluations.items():
            metrics = report["results"][report["tta"]]["all"]
            key = f"{e.key}.evaluations.{split}.results.{report['tta']}.all"
            rows.append(
                [
                    e.name,
                    report["model"],
                    split,
                    report["tta"],
                    html.num(metrics["n"], f"{key}.n"),
                    *_headline_cells(metrics, key),
                ]
            )
    parts = [
        html.table(
            header,
            rows,
            table_id="overview",
            caption="Every evaluation found (fer-models evaluate), "
            "with each run's own TTA; test is reported, never tuned on",
        )
    ]
    trained = [e for e in entries if not e.is_ensemble and e.meta.get("metrics", {}).get("val")]
    if trained:
        val_header = ["run", html.Cell("best epoch", numeric=True), html.Cell("epochs", numeric=True)] + [
            html.Cell(label, numeric=True) for _, label in HEADLINE[:3]
        ]
        val_rows = [
            [
                e.name,
                html.num(e.meta["best_epoch"], f"{e.key}.best_epoch"),
                html.num(len(e.history)),
                *(html.pct(e.meta["metrics"]["val"][m], f"{e.key}.best_val.{m}") for m, _ in HEADLINE[:3]),
            ]
            for e in trained
        ]
        parts.append(
            html.table(
                val_header, val_rows, table_id="best-val", caption="During training: the selected epoch on val (no TTA)"
            )
        )
    if missing:
        parts.append(
            html.note(
                f"No evaluation found for {', '.join(missing)}: run `fer-models evaluate RUN --split "
                "test` (it writes evaluation-test.json beside the checkpoint).",
                warn=True,
            )
        )
    return [("overview", "Overview", "".join(parts))]


def runs(entries: list[Entry], comparisons: list[dict], images: html.Images, facts: dict) -> list[tuple[str, str, str]]:
    return [
        (f"run-{e.index}", f"{'Ensemble' if e.is_ensemble else 'Run'}: {e.name}", _entry_body(e, images))
        for e in entries
    ]


def _entry_body(e: Entry, images: html.Images) -> str:
    parts = [html.note(str(e.path))]
    if e.is_ensemble:
        members = ", ".join(f"{m.name} (weight {w['weight']:.3f})" for m, w in zip(e.members, e.meta["members"]))
        parts.append(
            html.key_values(
                [
                    ("method", e.meta["method"]),
                    ("members", members),
                    ("TTA", e.meta.get("tta") or "each member's own"),
                    ("weights fit", e.meta.get("weights_fit") or "no (equal weights)"),
                ]
            )
        )
    else:
        config = e.meta.get("config", {})
        data = e.meta.get("data", {})
        pairs = [(k, config[k]) for k in SETTINGS if config.get(k) is not None]
        pairs += [
            ("best epoch", f"{e.meta.get('best_epoch')} of {len(e.history)} trained"),
            ("data", f"{data.get('path')} (fingerprint {data.get('fingerprint')})"),
        ]
        curves = ""
        if e.history:
            plot_curves(images.path(f"curves-{e.index}.png"), e.history, f"{e.name}: training curves")
            curves = images.figure(f"curves-{e.index}.png", f"{e.name} training curves")
        parts.append(html.row(html.key_values(pairs), curves))
    if e.is_ensemble:
        parts.append(_members_vs_ensemble(e, images))
    for split, report in e.evaluations.items():
        parts.append(_evaluation(e, split, report, images))
    return "".join(parts)


def _evaluation(e: Entry, split: str, report: dict, images: html.Images) -> str:
    classes = report.get("classes", e.classes)  # the classes evaluated: those the model shares with the data
    key = f"{e.key}.evaluations.{split}"
    parts = [f"<h3>{html.esc(split)}: {report['n']:,} rows, TTA {html.esc(report['tta'])}</h3>"]
    if "class_mapping" in report:
        parts.append(
            html.note(
                f"Evaluated on the {len(classes)} classes the model shares with the data: "
                f"{report['class_mapping']['note']}.",
                warn=True,
            )
        )
    if report.get("n_synthetic"):
        parts.append(
            html.note(
                f"The {split} split holds {report['n_synthetic']:,} SYNTHETIC rows: the 'all' numbers "
                "are not a FER2013 result; quote the 'real' rows.",
                warn=True,
            )
        )
    if report.get("same_data_as_training") is False:
        parts.append(html.note("Evaluated on a data file other than the one the model was trained on.", warn=True))
    rows = [
        [mode, f"{source} ({m['n']:,})", *_headline_cells(m, f"{key}.results.{mode}.{source}")]
        for mode, by_source in report["results"].items()
        for source, m in by_source.items()
    ]
    parts.append(
        html.table(
            ["TTA", "rows"] + [html.Cell(label, numeric=True) for _, label in HEADLINE],
            rows,
            table_id=f"headline-{e.index}-{split}",
        )
    )
    best = report["results"][report["tta"]]["all"]
    stem = f"{e.index}-{split}"
    pc_key = f"{key}.results.{report['tta']}.all.per_class"
    per_class = html.table(
        [
            "class",
            html.Cell("precision %", numeric=True),
            html.Cell("recall %", numeric=True),
            html.Cell("F1 %", numeric=True),
            html.Cell("support", numeric=True),
        ],
        [
            [
                html.Cell(c),
                *(
                    html.pct(best["per_class"][c][m], f"{pc_key}.{c}.{m}", digits=1)
                    for m in ("precision", "recall", "f1")
                ),
                html.num(best["per_class"][c]["support"], f"{pc_key}.{c}.support"),
            ]
            for c in classes
        ],
        table_id=f"per-class-{e.index}-{split}",
        caption=f"Per class (TTA {report['tta']})",
    )
    plots.class_metric_bars(
        images.path(f"per-class-{stem}.png"),
        classes,
        {m: [best["per_class"][c][m.lower()] for c in classes] for m in ("recall", "F1")},
        f"{e.name} on {split}: per class",
    )
    parts.append(html.row(per_class, images.figure(f"per-class-{stem}.png", "per-class recall and F1")))
    plots.confusion_figure(
        images.path(f"confusion-{stem}.png"), best["confusion"], classes, f"{e.name} on {split} (TTA {report['tta']})"
    )
    parts.append(
        images.figure(
            f"confusion-{stem}.png",
            "confusion matrix",
            "Rows: true class; columns: predicted. Left: counts; right: share of the row.",
        )
    )
    evaluated = _evaluated_faces(split, report, classes)
    parts.append(_worst_confused(e, split, evaluated, images, classes))
    parts.append(_where_it_looks(e, split, evaluated, images, classes))
    return "".join(parts)


def _evaluated_faces(split: str, report: dict, classes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    """(probabilities, labels into ``classes``, faces) of an evaluation's scored rows, read back from its .npz and its
    data file; or, when they cannot be, a note saying why."""
    predictions = Path(report.get("predictions_file", ""))
    data = next((Path(p) for p in (report.get("data_path"), report.get("data")) if p and Path(p).exists()), None)
    if not predictions.is_file() or data is None:
        return html.note(
            "Needs the evaluation's probabilities (evaluation-<split>.npz, written by this "
            "version's `fer-models evaluate`) and its data file; not found."
        )
    probs, labels, rows = load_predictions(predictions)
    faces = store.read_split(data, split, provenance=False)
    if rows.max(initial=-1) >= len(faces) or [faces.classes[i] for i in faces.labels[rows]] != [
        classes[i] for i in labels
    ]:
        return html.note(f"{data} has changed since the evaluation (labels differ); evaluate again.", warn=True)
    return probs, labels, faces.images[rows]


def _worst_confused(e: Entry, split: str, evaluated: tuple | str, images: html.Images, classes: list[str]) -> str:
    """Per true class (of ``classes``, the evaluation's), the wrong predictions made with the most confidence, as
    thumbnails."""
    title = "<h3>Most confident mistakes per true class</h3>"
    if isinstance(evaluated, str):
        return title + evaluated
    probs, labels, faces = evaluated
    predicted = probs.argmax(1)
    blocks = []
    for label, name in enumerate(classes):
        wrong = np.flatnonzero((labels == label) & (predicted != label))
        worst = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:WORST_PER_CLASS]
        items = [
            (
                images.save_png(f"worst-{e.index}-{split}-{label}-{k}.png", faces[row]),
                f"{classes[predicted[row]]} {probs[row, predicted[row]]:.2f} [{row}]",
            )
            for k, row in enumerate(worst)
        ]
        if items:
            blocks.append(
                (
                    f"{html.swatch(plots.class_colours(classes)[label])}{html.esc(name)}: "
                    f"{len(wrong):,} of {int((labels == label).sum()):,} wrong",
                    items,
                )
            )
    return (
        title
        + html.note("Under each face: the predicted class, its probability and [the row].")
        + html.labelled_thumbs(blocks)
    )


def _where_it_looks(e: Entry, split: str, evaluated: tuple | str, images: html.Images, classes: list[str]) -> str:
    """Per class, the mean Grad-CAM for that class over faces of it classified correctly, over their mean face."""
    from fer_models.inference.classifier import load_classifier
    from fer_models.inference.explain import class_mean_cams, overlay

    title = "<h3>Where the model looks</h3>"
    if isinstance(evaluated, str):
        return title + evaluated
    probs, labels, faces = evaluated
    classifier = load_classifier(e.path, resolve_device("auto"))
    # The evaluation's classes may be a subset of the model's (class_mapping): Grad-CAM takes the model's indices.
    index = np.array([classifier.classes.index(c) for c in classes])
    means = class_mean_cams(classifier, faces, index[labels], index[probs.argmax(1)], CAM_FACES_PER_CLASS)
    items = []
    for k, (face, cam, n) in means.items():
        big = np.asarray(Image.fromarray(face).resize((CAM_SIDE, CAM_SIDE), Image.BICUBIC))
        src = images.save_png(f"cam-{e.index}-{split}-{k}.png", overlay(big, cam))
        items.append((src, f"{classifier.classes[k]} ({n})"))
    missing = [c for c in classes if classifier.classes.index(c) not in means]
    notes = html.note(
        f"Per class: Grad-CAM for that class (red: most weight), averaged over the first "
        f"{CAM_FACES_PER_CLASS} {split} faces of it the model got right (their number in brackets), "
        "drawn over their mean face. Faces as the model sees them, without TTA."
    )
    if missing:
        notes += html.note(f"No correctly classified face of {', '.join(missing)}.", warn=True)
    return title + notes + html.labelled_thumbs([("", items)])


def _members_vs_ensemble(e: Entry, images: html.Images) -> str:
    parts = ["<h3>Members and ensemble side by side</h3>"]
    for split, report in e.evaluations.items():
        header = ["model", html.Cell("weight", numeric=True), "TTA"] + [
            html.Cell(label, numeric=True) for _, label in HEADLINE
        ]
        rows, series, missing = [], {}, []
        for member, spec in zip(e.members, e.meta["members"]):
            theirs = member.evaluations.get(split)
            if theirs is None:
                missing.append(member.name)
                continue
            metrics = theirs["results"][theirs["tta"]]["all"]
            rows.append(
                [
                    member.name,
                    html.num(spec["weight"], digits=3),
                    theirs["tta"],
                    *_headline_cells(metrics, f"{e.key}.members.{member.name}.{split}"),
                ]
            )
            series[member.name] = [metrics["per_class"][c]["f1"] for c in e.classes]
        ours = report["results"][report["tta"]]["all"]
        rows.append(
            [
                html.Cell(f"ensemble ({e.meta['method']})"),
                "",
                report["tta"],
                *_headline_cells(ours, f"{e.key}.evaluations.{split}.results.{report['tta']}.all"),
            ]
        )
        series["ensemble"] = [ours["per_class"][c]["f1"] for c in e.classes]
        parts.append(html.table(header, rows, table_id=f"members-{e.index}-{split}", caption=f"on {split}"))
        if missing:
            parts.append(
                html.note(
                    f"No {split} evaluation of {', '.join(missing)}: run `fer-models evaluate` on "
                    "each member to see it here.",
                    warn=True,
                )
            )
        plots.grouped_bars(
            images.path(f"members-{e.index}-{split}.png"),
            e.classes,
            series,
            f"F1 per class on {split}: members and ensemble",
            ylabel="F1",
        )
        parts.append(images.figure(f"members-{e.index}-{split}.png", "F1 per class, members and ensemble"))
    return "".join(parts)


def comparisons_section(
    entries: list[Entry], comparisons: list[dict], images: html.Images, facts: dict
) -> list[tuple[str, str, str]]:
    """``fer-models compare`` results as a leaderboard: per arm, best balanced accuracy first, accuracy, balanced
    accuracy, macro-F1 and per-class recall (means over seeds) with 95% intervals, and each one's paired difference
    to the baseline (the first arm) with its interval."""
    facts["comparisons"] = [{**c, "arms": {_key(name): arm for name, arm in c["arms"].items()}} for c in comparisons]
    shown = []
    for k, c in enumerate(comparisons):
        classes, first = c["classes"], c["first"]
        header = ["#", "arm", "data"]
        groups = [("", 3)]
        for _, label in HEADLINE[:3]:
            header += [
                html.Cell("mean", numeric=True),
                html.Cell("95%", numeric=True),
                html.Cell("Δ baseline", numeric=True),
                html.Cell("95%", numeric=True),
            ]
            groups.append((label, 4))
        rows, recall_rows = [], []
        for rank, name in enumerate(leaderboard(c), 1):
            arm = c["arms"][name]
            key = f"comparisons.{k}.arms.{_key(name)}"
            what = (
                " + ".join(arm["members"])
                if arm.get("members")
                else (Path(arm["data"]).name + (f" {arm['variant']}" if arm["variant"] else ""))
            )
            row = [html.num(rank), html.Cell(f"{name} (baseline)" if name == first else name), what]
            for metric, _ in HEADLINE[:3]:
                row += _interval_cells(arm[metric], f"{key}.{metric}")
                row += (
                    ["", ""]
                    if name == first
                    else _interval_cells(arm["vs_first"][metric], f"{key}.vs_first.{metric}", signed=True)
                )
            rows.append(row)
            recall_rows.append(
                [html.Cell(name)]
                + [cell for cls in classes for cell in _interval_cells(arm["recall"][cls], f"{key}.recall.{cls}")]
            )
        plot_recall(images.path(f"compare-{k}.png"), c)
        body = [
            html.note(
                f"Recipe {c.get('recipe') or 'default'}; {c['seeds']} seed(s) per arm; every arm evaluated "
                f"on the same val/test (fingerprint {c.get('eval_fingerprint')}). Intervals: "
                f"{c.get('interval', 'see docs/rebalancing.md')}; an interval that holds 0 shows no "
                "difference."
            ),
            html.table(
                header,
                rows,
                table_id=f"compare-{k}",
                groups=groups,
                caption=f"Leaderboard, best balanced accuracy first: test metrics (%) and the paired "
                f"difference to the baseline {first}",
            ),
            html.table(
                ["arm"] + [html.Cell(h, numeric=True) for _ in classes for h in ("mean", "95%")],
                recall_rows,
                table_id=f"compare-recall-{k}",
                groups=[("", 1)] + [(c, 2) for c in classes],
                caption="Test recall per class (%): mean over seeds and 95% interval",
            ),
            images.figure(f"compare-{k}.png", "per-class recall per arm"),
        ]
        shown.append((f"compare-{k}", f"Comparison: {Path(c['_path']).parent.name}", "".join(body)))
    return shown


def _interval_cells(value: dict, key: str, signed: bool = False) -> list[html.Cell]:
    """A mean (or difference), carrying its exact value, and its 95% interval (exact values in report.json)."""
    sign = "+" if signed else ""
    return [
        html.Cell(f"{100 * value['mean']:{sign}.2f}", value["mean"], True, f"{key}.mean"),
        html.Cell(f"[{100 * value['low']:{sign}.1f}, {100 * value['high']:{sign}.1f}]", numeric=True),
    ]


def _key(name: str) -> str:
    """An arm name as one segment of a ``data-key`` path (arm names may hold dots: ``label_smoothing=0.1``)."""
    return name.replace(".", "_")


def load_comparison(path: str | os.PathLike) -> dict:
    """A ``fer-models compare`` result: its ``compare.json`` or the folder holding it."""
    path = Path(path)
    file = path / COMPARE_FILE if path.is_dir() else path
    if not file.is_file():
        raise MissingPathError(
            f"{file}: no such comparison (give `fer-models compare`'s --out folder or its {COMPARE_FILE})"
        )
    try:
        comparison = json.loads(file.read_text())
    except ValueError:
        comparison = None
    if not isinstance(comparison, dict) or "arms" not in comparison:
        raise FerError(f"{file}: not a `fer-models compare` result; run the comparison again")
    if any("low" not in arm["accuracy"] for arm in comparison["arms"].values()):
        raise FerError(
            f"{file}: written by an earlier `fer-models compare`, without intervals; run the same comparison "
            "again (its runs are reused) to write them"
        )
    comparison["_path"] = str(file)
    return comparison


#: The runs page, in reading order.
SECTIONS: tuple[Section, ...] = (overview, comparisons_section, runs)


def runs_report(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike = html.DEFAULT_OUT,
    overwrite: bool = False,
    comparisons: Sequence[str | os.PathLike] = (),
) -> Path:
    """Write ``out/index.html`` (+ ``img/``, ``report.json``) about run folders, checkpoints and ensemble files,
    and ``fer-models compare`` results (``comparisons``: their folders or compare.json files).

    ``out`` follows the output-folder rule (new, empty, an earlier report, or ``overwrite``; never an input).
    """
    if not paths and not comparisons:
        raise FerError("give at least one run folder, checkpoint, ensemble file or --compare result")
    paths, repeated = once_each(ckpt.resolve_checkpoint(p) for p in paths)  # a run folder and its best.json: once
    if repeated:
        logger.warning(f"{given_twice(repeated)}: each is shown once")
    entries = [load_entry(p, i) for i, p in enumerate(paths)]
    compared = [load_comparison(c) for c in comparisons]
    inputs = [p for e in entries for p in entry_inputs(e)] + [c["_path"] for c in compared]
    with html.report_folder(out, inputs, overwrite) as (folder, images):
        names = [e.name for e in entries]
        for e in entries:  # two runs called "best" would read alike: say which is which
            if names.count(e.name) > 1:
                e.name = f"{e.name} [{e.index + 1}]"
        facts = {"entries": [_facts(e) for e in entries]}
        for e in entries:
            facts["entries"][e.index]["members"] = {
                m.name: {split: r["results"][r["tta"]]["all"] for split, r in m.evaluations.items()} for m in e.members
            }
        page = html.Page(
            "Runs report: " + ", ".join([e.name for e in entries] + [Path(c["_path"]).parent.name for c in compared]),
            [
                f"{len(entries)} run(s) and ensemble(s), {len(compared)} comparison(s); "
                f"made by fer-models {version('fer-synth')}"
            ],
        )
        for section in SECTIONS:
            for shown in section(entries, compared, images, facts):
                page.add(*shown)
        write_bytes(folder / FACTS, (json.dumps(facts, indent=2, default=str) + "\n").encode())
        html.write_page(folder, page)
    return Path(out) / html.PAGE


def entry_inputs(e: Entry) -> list[Path]:
    """What the report reads for one entry: its checkpoint (and weights, run folder), its evaluations and their
    probabilities, and its members'."""
    found = [
        *ckpt.input_files(e.path),
        *(Path(r["_file"]) for r in e.evaluations.values()),
        *(Path(r["predictions_file"]) for r in e.evaluations.values() if r.get("predictions_file")),
    ]
    return found + [p for m in e.members for p in entry_inputs(m)]


def _facts(e: Entry) -> dict:
    return {
        "name": e.name,
        "path": str(e.path),
        "kind": e.meta["format"],
        "evaluations": {
            split: {k: v for k, v in r.items() if not k.startswith("_")} for split, r in e.evaluations.items()
        },
        "history": e.history,
        "best_epoch": e.meta.get("best_epoch"),
        "best_val": e.meta.get("metrics", {}).get("val"),
    }
