"""Did the top-up help? The same recipe trained on several data files (and as variants on the first), with the
same seeds, evaluated on the same test split.

Each arm is a data file with the recipe as it is, or the first file with a variant of the recipe (``loss=focal``,
``class_weighting=balanced``, ``balanced_sampler=true``: the classic answers to imbalance on real data alone). The
files must share their val and test splits exactly (images and labels): a comparison on other test data means
nothing. Per arm: mean and standard deviation over seeds of accuracy, balanced accuracy, macro-F1 and per-class
recall; against the first arm, the mean paired difference (seed by seed) with its 95% t interval. Every run lives
in its own folder under ``out``, so an interrupted comparison continues where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path

import numpy as np
import yaml

from fer_models.checkpoint import write_json
from fer_models.evaluation.evaluate import evaluate
from fer_models.training.config import make_config
from fer_models.training.loop import train
from fer_synth.core import store
from fer_synth.core.env import resolve_device
from fer_synth.core.errors import FerError, InvalidOptionError
from fer_synth.core.outputs import make_dir
from fer_synth.ui import plots

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1")
REPORT_FILE = "compare.json"
RECALL_PNG = "compare-recall.png"
#: Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal's 1.96).
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


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


def paired_interval(differences: list[float]) -> tuple[float, float | None]:
    """Mean of paired differences and the half-width of its 95% t interval (None with one pair)."""
    n = len(differences)
    mean = float(np.mean(differences))
    if n < 2:
        return mean, None
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    return mean, t * float(np.std(differences, ddof=1)) / math.sqrt(n)


def compare(
    datasets: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    recipe: str | None = None,
    seeds: int = 3,
    variants: list[str] = (),
    device: str = "auto",
    **overrides,
) -> dict:
    """Train and evaluate every arm with seeds 0..``seeds``-1 under ``out``; return (and save) the comparison."""
    if not datasets:
        raise InvalidOptionError("give at least one data file")
    if seeds < 1:
        raise InvalidOptionError(f"--seeds must be at least 1 (got {seeds})")
    fingerprints = {str(d): eval_fingerprint(d) for d in datasets}
    if len(set(fingerprints.values())) > 1:
        listing = ", ".join(f"{d} ({f})" for d, f in fingerprints.items())
        raise FerError(
            f"the files do not share their val and test splits ({listing}); a comparison on different "
            "test data means nothing: make them from the same source with the same --seed"
        )
    out = make_dir(out)
    arms = [(f"{Path(d).stem}", str(d), {}) for d in datasets]
    arms += [(f"{Path(datasets[0]).stem}+{v}", str(datasets[0]), parse_variant(v)) for v in variants]
    if len({name for name, _, _ in arms}) < len(arms):
        raise InvalidOptionError("two arms share a name (the same file twice?); give each file once")
    results = {}
    for name, data, variant in arms:
        per_seed = []
        for seed in range(seeds):
            run = out / _folder(name) / f"seed-{seed}"
            config = make_config(
                recipe, data=data, out=str(run), seed=seed, device=device, progress=False, **{**overrides, **variant}
            )
            logger.info(f"{name}, seed {seed}: training into {run}")
            train(config)
            report = evaluate(run, data, "test", device=resolve_device(device))
            per_seed.append(report["results"][report["tta"]]["all"])
        results[name] = {
            "data": data,
            "variant": variant,
            "per_seed": [_brief(m) for m in per_seed],
            **_summary(per_seed),
        }
    first = arms[0][0]
    for name in results:
        results[name]["vs_first"] = {
            metric: dict(
                zip(
                    ("mean", "ci95"),
                    paired_interval(
                        [a[metric] - b[metric] for a, b in zip(results[name]["per_seed"], results[first]["per_seed"])]
                    ),
                )
            )
            for metric in METRICS
        }
    comparison = {
        "recipe": recipe,
        "seeds": seeds,
        "eval_fingerprint": next(iter(fingerprints.values())),
        "first": first,
        "arms": results,
        "classes": list(store.classes_of(datasets[0])),
    }
    write_json(out / REPORT_FILE, comparison)
    plot_recall(out / RECALL_PNG, comparison)
    return comparison


def _folder(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name)


def _brief(metrics: dict) -> dict:
    return {**{m: metrics[m] for m in METRICS}, "recall": {c: v["recall"] for c, v in metrics["per_class"].items()}}


def _summary(per_seed: list[dict]) -> dict:
    def stats(values: list[float]) -> dict:
        return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}

    return {
        **{m: stats([r[m] for r in per_seed]) for m in METRICS},
        "recall": {c: stats([r["per_class"][c]["recall"] for r in per_seed]) for c in per_seed[0]["per_class"]},
    }


def plot_recall(path: Path, comparison: dict) -> Path:
    """Per-class recall of every arm side by side (mean over seeds, bars of one standard deviation)."""
    classes, arms = comparison["classes"], comparison["arms"]
    label = {name: f"{name} (acc {100 * arm['accuracy']['mean']:.1f}%)" for name, arm in arms.items()}
    return plots.grouped_bars(
        path,
        classes,
        {label[n]: [a["recall"][c]["mean"] for c in classes] for n, a in arms.items()},
        f"Test recall per class, mean of {comparison['seeds']} seed(s)",
        ylabel="recall",
        errors={label[n]: [a["recall"][c]["std"] for c in classes] for n, a in arms.items()},
    )
