"""Which rebalancing helps? One recipe trained on several data files (and as variants on the first), with the same
seeds, evaluated on the same test split: a leaderboard with paired intervals against the baseline.

Arms: each data file with the recipe as it is (the first file is the baseline, normally the unbalanced ``fer-synth
pack`` output; the others e.g. ``fer-synth balance --method ros|smote|...|generated``); the first file with a
variant of the recipe (``loss=focal``, ``class_weighting=balanced``, ``balanced_sampler=true``: the classic answers
to imbalance on the real data alone); and ensembles, the mean of the softmax of other arms' runs seed by seed (made
and evaluated as ``fer-models ensemble`` makes them): a recipe with an ``ensemble`` list of balance methods, like
the source study's VGG ensemble over ROS, SMOTE and SMOTE-Tomek data, adds its ensemble by itself. The files must
share their val and test splits exactly (images and labels): a comparison on other test data means nothing.

Intervals: a paired bootstrap. Each resample draws the test images with replacement, the same draw for every arm,
so that what makes an image easy or hard cancels in the differences, and the seeds with replacement, per arm, so
that training noise is in the interval too. Reported: per arm and metric the mean over seeds on the whole test split
with its 95% percentile interval, and the difference to the baseline with its own. Not a t interval over seeds
alone: with 3 seeds it has 2 degrees of freedom (t = 4.30) and leaves out that the test split is a sample. Every run
lives in its own folder under ``out``, so an interrupted comparison continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from fer_models import checkpoint as ckpt
from fer_models.evaluation.ensemble import build_ensemble
from fer_models.evaluation.evaluate import evaluate, load_predictions, output_names
from fer_models.recipes import load_recipe, recipe_path
from fer_models.training.config import TrainConfig, make_config
from fer_models.training.loop import train
from fer_synth.core import store
from fer_synth.core.env import resolve_device
from fer_synth.core.errors import FerError, InvalidOptionError
from fer_synth.core.folders import given_twice
from fer_synth.core.outputs import once_each, output_folder
from fer_synth.ui import plots

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1")
COMMAND = "fer-models compare"
REPORT_FILE = "compare.json"
RECALL_PNG = "compare-recall.png"
RESAMPLES = 2000  # bootstrap resamples: the 2.5% and 97.5% percentiles move by well under 0.1 point beyond this
ENSEMBLE_FILE = "ensemble.json"


@dataclass
class Arm:
    """One line of the leaderboard: a data file and its recipe settings, or an ensemble of other arms."""

    name: str
    data: str
    variant: dict
    members: tuple[str, ...] = ()  # for an ensemble: the arms it averages

    @property
    def folder(self) -> str:
        return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in self.name)


def eval_fingerprint(path: str | os.PathLike) -> str:
    """A hash of the val and test splits' images and labels: equal exactly when two files evaluate on the same data."""
    h = hashlib.sha256()
    for name in ("val", "test"):
        split = store.read_split(path, name, provenance=False)
        h.update(name.encode())
        h.update(np.ascontiguousarray(split.images).tobytes())
        h.update(split.labels.astype("<i8").tobytes())
    return h.hexdigest()[:16]


def parse_variant(text: str) -> dict:
    """``key=value`` (a training setting and a YAML value) -> {key: value}."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise InvalidOptionError(
            f"variant {text!r}: write it as setting=value, e.g. loss=focal or balanced_sampler=true"
        )
    return {key.strip().replace("-", "_"): yaml.safe_load(value)}


def plan_arms(
    datasets: Sequence[str | os.PathLike],
    variants: Sequence[str] = (),
    ensembles: Sequence[Sequence[str]] = (),
    recipe: str | None = None,
) -> list[Arm]:
    """The arms in leaderboard order: the files, the variants of the first, the ensembles.

    An ensemble names its members by arm name or by the balance method a file was made with (``fer-synth balance
    --method``, recorded in the file); the recipe's ``ensemble`` list is added when every method in it is there."""
    if not datasets:
        raise InvalidOptionError("give at least one data file")
    arms = [Arm(Path(d).stem, str(d), {}) for d in datasets]
    arms += [Arm(f"{Path(datasets[0]).stem}+{v}", str(datasets[0]), parse_variant(v)) for v in variants]
    methods = {store.read_attrs(a.data).get("method"): a.name for a in arms if not a.variant}
    wanted = [list(e) for e in ensembles]
    from_recipe = load_recipe(recipe).get("ensemble") if recipe else None
    if from_recipe:
        if all(m in methods for m in from_recipe):
            wanted.append(list(from_recipe))
        else:
            logger.warning(
                f"the recipe {recipe} averages models trained on {', '.join(from_recipe)} data; give a file "
                "balanced with each (`fer-synth balance --method M`) to see that ensemble"
            )
    names = {a.name for a in arms}
    for members in wanted:
        unknown = [m for m in members if m not in names and m not in methods]
        if unknown or len(members) < 2:
            raise InvalidOptionError(
                f"ensemble {','.join(members)}: give at least two arms by name or balance method; "
                f"{', '.join(unknown) or 'one member'} is none of {', '.join(sorted(names))} "
                f"(methods: {', '.join(sorted(m for m in methods if m))})"
            )
        resolved = tuple(m if m in names else methods[m] for m in members)
        arms.append(Arm(f"ensemble({'+'.join(members)})", str(datasets[0]), {}, resolved))
    if len({a.name for a in arms}) < len(arms):
        raise InvalidOptionError("two arms share a name (the same file or ensemble twice?); give each once")
    return arms


def run_configs(
    arms: Sequence[Arm],
    out: str | os.PathLike,
    *,
    recipe: str | None = None,
    seeds: int = 3,
    device: str = "auto",
    train_images: int | None = None,
    **overrides,
) -> list[TrainConfig]:
    """Every training run of the comparison (seeds 0..``seeds``-1 of each arm that trains): what :func:`compare`
    trains, and what a caller may train beforehand, in parallel processes, for it to find finished.

    ``train_images`` gives every arm about that many training images (its epochs: that number over its train rows,
    rounded, at least 1), so that a file made bigger by oversampling gets no more optimizer steps than the baseline."""

    def epochs(data: str) -> dict:
        if train_images is None:
            return {}
        return {"epochs": max(1, round(train_images / store.split_sizes(data)["train"]))}

    return [
        make_config(
            recipe,
            data=arm.data,
            out=str(Path(out) / arm.folder / f"seed-{seed}"),
            seed=seed,
            device=device,
            progress=False,
            **{**overrides, **epochs(arm.data), **arm.variant},
        )
        for arm in arms
        if not arm.members
        for seed in range(seeds)
    ]


def compare(
    datasets: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    recipe: str | None = None,
    seeds: int = 3,
    variants: Sequence[str] = (),
    ensembles: Sequence[Sequence[str]] = (),
    device: str = "auto",
    resamples: int = RESAMPLES,
    train_images: int | None = None,
    **overrides,
) -> dict:
    """Train and evaluate every arm with seeds 0..``seeds``-1 under ``out``; return (and save) the comparison.
    ``train_images``: see :func:`run_configs`."""
    if seeds < 1:
        raise InvalidOptionError(f"--seeds must be at least 1 (got {seeds})")
    if not datasets:
        raise InvalidOptionError("give at least one data file")
    if repeated := once_each(datasets)[1]:  # two arms trained on one file: hours spent on a comparison of nothing
        raise InvalidOptionError(f"{given_twice(repeated)}; give each data file once")
    resolve_device(device)  # a device this machine lacks fails before the folder is claimed
    fingerprints = {str(d): eval_fingerprint(d) for d in datasets}
    if len(set(fingerprints.values())) > 1:
        listing = ", ".join(f"{d} ({f})" for d, f in fingerprints.items())
        raise FerError(
            f"the files do not share their val and test splits ({listing}); a comparison on different "
            "test data means nothing: make them from the same source with the same --seed"
        )
    arms = plan_arms(datasets, variants, ensembles, recipe)
    # Every run's settings (a --variant's key and value among them) are checked before the folder is claimed; the
    # folder is written in place (a comparison resumes, never replaced), so the runs' folders are as planned here.
    configs = run_configs(arms, out, recipe=recipe, seeds=seeds, device=device, train_images=train_images, **overrides)
    # New, empty or an earlier comparison's folder (its runs continue where they stopped); never over an input.
    inputs = [*datasets, recipe_path(recipe) if recipe else None]
    with output_folder(out, command=COMMAND, is_own=_is_comparison, inputs=inputs) as folder:
        return _compare(arms, configs, folder, fingerprints, recipe, seeds, device, resamples, train_images)


def _is_comparison(folder: Path) -> bool:
    """An earlier ``compare`` output: its result, or run folders of its arms (a comparison that was stopped, or
    runs trained beforehand for it by :func:`run_configs`)."""
    return (folder / REPORT_FILE).is_file() or any(folder.glob("*/seed-*/config.json"))


def _compare(
    arms: list[Arm],
    run_settings: list[TrainConfig],
    out: Path,
    fingerprints: dict,
    recipe: str | None,
    seeds: int,
    device: str,
    resamples: int,
    train_images: int | None,
) -> dict:
    configs = iter(run_settings)
    probs, per_seed, labels, epochs = {}, {}, None, {}
    for arm in arms:
        files = []
        for seed in range(seeds):
            run = out / arm.folder / f"seed-{seed}"
            if arm.members:
                checkpoint = run / ENSEMBLE_FILE
                build_ensemble(
                    [out / a.folder / f"seed-{seed}" for a in arms if a.name in arm.members],
                    arm.data,
                    "mean",
                    out=checkpoint,
                    device=resolve_device(device),
                )
            else:
                config = next(configs)
                epochs[arm.name] = config.epochs
                # A finished run (its epochs or its time budget spent) is left as it is by train().
                logger.info(f"{arm.name}, seed {seed}: {run}")
                train(config)
                checkpoint = run
            files.append(evaluated(checkpoint, arm.data, run, device))
        per_seed[arm.name] = [_brief(f["results"][f["tta"]]["all"]) for f in files]
        loaded = [load_predictions(f["predictions_file"]) for f in files]
        probs[arm.name] = np.stack([p for p, _, _ in loaded])
        labels = loaded[0][1]
    classes = list(store.classes_of(arms[0].data))
    intervals = paired_bootstrap(
        labels, {name: p.argmax(-1) for name, p in probs.items()}, arms[0].name, len(classes), resamples
    )
    results = {}
    for arm in arms:
        stats = _summary(per_seed[arm.name], classes)
        for key, (low, high) in intervals[arm.name]["arm"].items():
            target = stats["recall"][classes[int(key[7:])]] if key.startswith("recall:") else stats[key]
            target.update(low=low, high=high)
        vs_first = {"recall": {}}
        for key, (mean, low, high) in intervals[arm.name]["vs_first"].items():
            interval = {"mean": mean, "low": low, "high": high}
            if key.startswith("recall:"):
                vs_first["recall"][classes[int(key[7:])]] = interval
            else:
                vs_first[key] = interval
        results[arm.name] = {
            "data": arm.data,
            "variant": arm.variant,
            "members": list(arm.members),
            "method": store.read_attrs(arm.data).get("method") if not arm.members else "ensemble",
            "epochs": epochs.get(arm.name),
            "per_seed": per_seed[arm.name],
            **stats,
            "vs_first": vs_first,
        }
    comparison = {
        "recipe": recipe,
        "seeds": seeds,
        "train_images": train_images,
        "eval_fingerprint": next(iter(fingerprints.values())),
        "first": arms[0].name,
        "interval": f"paired bootstrap over test images and seeds, {resamples} resamples, 95% percentile",
        "resamples": resamples,
        "arms": results,
        "classes": classes,
    }
    ckpt.write_json(out / REPORT_FILE, comparison)
    plot_recall(out / RECALL_PNG, comparison)
    return comparison


def evaluated(checkpoint: str | os.PathLike, data: str | os.PathLike, out: Path, device: str = "auto") -> dict:
    """``evaluate``'s test report of ``checkpoint`` on ``data``, written into ``out``; one written there after the
    checkpoint, on the same file, is reused (a comparison run again, or runs trained and evaluated beforehand)."""
    meta = ckpt.read_meta(checkpoint)
    file = Path(out) / output_names(meta, "test")[1]
    if file.exists() and file.stat().st_mtime >= Path(meta["_path"]).stat().st_mtime:
        report = json.loads(file.read_text())
        if report.get("data_path") == str(Path(data).resolve()) and Path(report.get("predictions_file", "")).is_file():
            return report
    return evaluate(checkpoint, data, "test", device=resolve_device(device), out=out)


def _confusions(labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrices [B, S, C, C] of predictions [S, N] under image weights [B, N] (bootstrap multiplicities)."""
    pairs = labels[None, :] * n_classes + predictions  # [S, N]
    onehot = np.zeros((pairs.shape[1], len(pairs), n_classes * n_classes), np.float32)  # [N, S, C*C]
    np.put_along_axis(onehot, pairs.T[..., None], 1.0, axis=-1)
    counts = weights @ onehot.reshape(len(onehot), -1)  # one matrix product for every resample and seed
    return counts.reshape(len(weights), len(predictions), n_classes, n_classes)


def _metrics(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """accuracy, balanced accuracy, macro-F1 and per-class recall over the last two axes (rows true), as
    :func:`fer_models.evaluation.metrics.classification_metrics` defines them (averages over the classes present)."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    support, predicted = confusion.sum(-1), confusion.sum(-2)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
    present = support > 0
    values = {
        "accuracy": tp.sum(-1) / support.sum(-1),
        "balanced_accuracy": (recall * present).sum(-1) / present.sum(-1),
        "macro_f1": (f1 * present).sum(-1) / present.sum(-1),
    }
    values.update({f"recall:{c}": recall[..., c] for c in range(confusion.shape[-1])})
    return values


def paired_bootstrap(
    labels: np.ndarray,
    predictions: dict[str, np.ndarray],
    baseline: str,
    n_classes: int,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, dict]:
    """95% intervals of each arm's metrics and of their differences to ``baseline`` (predictions: arm -> [S, N]).

    Every resample draws the test images with replacement, one draw shared by all arms (paired), and each arm's
    seeds with replacement. Returns, per arm, ``arm``: metric -> (low, high), and ``vs_first``: metric ->
    (difference on the whole split, low, high); metrics are those of :func:`_metrics`."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(resamples)]).astype(np.float32)
    full = np.ones((1, n), np.float32)
    drawn, point = {}, {}
    for name, pred in predictions.items():
        seeds = len(pred)
        picks = rng.integers(0, seeds, (resamples, seeds))  # each resample's seeds, with replacement
        per_seed = _metrics(_confusions(labels, pred, weights, n_classes))  # metric -> [B, S]
        drawn[name] = {k: np.take_along_axis(v, picks, axis=1).mean(1) for k, v in per_seed.items()}
        point[name] = {k: float(v.mean()) for k, v in _metrics(_confusions(labels, pred, full, n_classes)).items()}
    out = {}
    for name in predictions:
        out[name] = {
            "arm": {k: _percentiles(v) for k, v in drawn[name].items()},
            "vs_first": {
                k: (point[name][k] - point[baseline][k], *_percentiles(v - drawn[baseline][k]))
                for k, v in drawn[name].items()
            },
        }
    return out


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _brief(metrics: dict) -> dict:
    return {**{m: metrics[m] for m in METRICS}, "recall": {c: v["recall"] for c, v in metrics["per_class"].items()}}


def _summary(per_seed: list[dict], classes: list[str]) -> dict:
    def stats(values: list[float]) -> dict:
        return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}

    return {
        **{m: stats([r[m] for r in per_seed]) for m in METRICS},
        "recall": {c: stats([r["recall"][c] for r in per_seed]) for c in classes},
    }


def leaderboard(comparison: dict, metric: str = "balanced_accuracy") -> list[str]:
    """The arms, best first by ``metric`` (mean over seeds)."""
    return sorted(comparison["arms"], key=lambda name: -comparison["arms"][name][metric]["mean"])


def plot_recall(path: Path, comparison: dict) -> Path:
    """Per-class recall of every arm side by side (mean over seeds, bars to the 95% bootstrap interval)."""
    classes, arms = comparison["classes"], comparison["arms"]
    label = {name: f"{name} (acc {100 * arm['accuracy']['mean']:.1f}%)" for name, arm in arms.items()}
    errors = {
        label[n]: [
            [a["recall"][c]["mean"] - a["recall"][c]["low"] for c in classes],
            [a["recall"][c]["high"] - a["recall"][c]["mean"] for c in classes],
        ]
        for n, a in arms.items()
    }
    return plots.grouped_bars(
        path,
        classes,
        {label[n]: [a["recall"][c]["mean"] for c in classes] for n, a in arms.items()},
        f"Test recall per class, mean of {comparison['seeds']} seed(s), 95% bootstrap intervals",
        ylabel="recall",
        errors=errors,
    )
