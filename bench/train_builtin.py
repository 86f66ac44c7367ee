"""Retrain a shipped model from the real data on a CPU, over several seeds, and print its model card's figures.

    python bench/train_builtin.py                                   # builtin: FER+ votes, seeds 0 and 1, 60 CPU-min
    python bench/train_builtin.py --install                         # ... and ship the seed chosen on val
    python bench/train_builtin.py --model builtin-fer2013 --seeds 0 # FER2013 labels, 30 CPU-minutes
    python bench/train_builtin.py --model builtin-fer2013 --shipped # the shipped weights: calibrate, evaluate, record

Runs go to ``OUT_DIR/<model>-s<seed>``; a finished run there is not trained again (it is calibrated if it is not
yet, and evaluated), so the command also reports runs made with ``fer-models train --recipe <model>``.

Steps per seed: pack the data once (``fer-synth pack``; for ``builtin`` with ``--ferplus ... --label-mode
distribution``: the vote distributions are the training targets, val and test keep FER+'s majority labels, the
reference protocol), train the recipe of the model's name (one thread, bf16, the budget counted in this process's
CPU seconds), select the epoch and fit the calibration temperature on val only, then evaluate the selected weights
once on the model's own test split (FER+ test, or FER2013 PrivateTest) and on the other one over the classes they
share (``fer_models.inference.class_mapping``), with and without the recipe's TTA. Printed: each seed, the mean and
the spread. ``--install`` ships the seed with the best val accuracy (never chosen on test) as
``fer_models/models/weights/<model>.*``, its metadata extended with every figure; docs/builtin-model.md quotes
what this prints.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CSV, FER2013_H5, FERPLUS_CSV, FERPLUS_H5, packed
from fer_models import checkpoint as ckpt
from fer_models.data import load_split
from fer_models.evaluation.evaluate import evaluate
from fer_models.evaluation.metrics import expected_calibration_error
from fer_models.inference.class_mapping import class_mapping
from fer_models.inference.probabilities import predict_proba
from fer_models.models.builtin import BUILTIN, BUILTIN_FER2013, SHIPPED, shipped_json, shipped_weights
from fer_models.training.config import make_config
from fer_models.training.loop import calibrate_checkpoint, train
from fer_synth.core.atomic import atomic_file

#: Per shipped model: its packed data, and the other test set it is also evaluated on.
DATA = {BUILTIN: (FERPLUS_H5, FER2013_H5), BUILTIN_FER2013: (FER2013_H5, FERPLUS_H5)}
HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "ece", "nll")


def data_file(h5: Path) -> Path:
    """A packed file of the bench cache: FER2013's labels, or FER+'s vote distributions."""
    ferplus = h5 == FERPLUS_H5
    return packed(h5, FERPLUS_CSV if ferplus else None, "distribution" if ferplus else "majority")


def figures(report: dict, tta: str) -> dict:
    """A card's numbers from an evaluation report."""
    m = report["results"][tta]["all"]
    out = {
        "split": report["split"],
        "data": Path(report["data"]).name,
        "data_fingerprint": report["data_fingerprint"],
        "n": report["n"],
        "tta": tta,
        **{k: m[k] for k in HEADLINE},
        "accuracy_without_tta": report["results"]["none"]["all"]["accuracy"],
        "per_class_recall": {name: c["recall"] for name, c in m["per_class"].items()},
        "per_class_precision": {name: c["precision"] for name, c in m["per_class"].items()},
        "support": {name: c["support"] for name, c in m["per_class"].items()},
        "confusion": m["confusion"],
    }
    if "class_mapping" in report:
        out["class_mapping"] = report["class_mapping"]
    return out


def ece_uncalibrated(spec: str | Path, data: Path, tta: str) -> float:
    """The test ECE the checkpoint would have without its temperature (the card's "before")."""
    model, meta = ckpt.load_model(spec)
    split = load_split(data, "test")
    mapping = class_mapping(meta["classes"], split.classes)
    kept, labels = mapping.rows(split.labels.numpy())
    probs = mapping.probs(predict_proba(model, split.images, meta["input_size"], meta["in_chans"], tta))[kept]
    return expected_calibration_error(probs, labels)


def run_seed(
    model: str,
    seed: int,
    out: Path,
    own: Path,
    other: Path,
    epochs: int | None = None,
    time_budget: float | None = None,
) -> dict:
    config = make_config(
        model, data=str(own), out=str(out), seed=seed, epochs=epochs, time_budget=time_budget, progress=False
    )
    load = os.getloadavg()
    result = train(config)  # a finished run in OUT is left as it is (calibrated if it was not)
    wall = sum(h["seconds"] for h in result.history)
    cpu = sum(h["cpu_seconds"] for h in result.history)
    meta = ckpt.read_meta(out)
    # The test splits are looked at here, once, with the epoch and the temperature chosen on val.
    test = figures(evaluate(out, own, "test", config.tta, "cpu", out=out), config.tta)
    test["ece_uncalibrated"] = ece_uncalibrated(out, own, config.tta)
    other_test = figures(evaluate(out, other, "test", config.tta, "cpu"), config.tta)
    return {
        "seed": seed,
        "run": str(out),
        "train_cpu_minutes": cpu / 60,
        "train_wall_minutes": wall / 60,
        "load_at_start": load,
        "epochs_done": len(result.history),
        "stopped_by": result.stopped_by,
        "best_epoch": result.best_epoch,
        "val_accuracy": result.best_metric,
        "calibration": meta["calibration"],
        "test": test,
        "other_test": other_test,
        "val_curve": [
            {
                "epoch": h["epoch"],
                "cpu_minutes": sum(x["cpu_seconds"] for x in result.history[: i + 1]) / 60,
                "val_accuracy": h["val_accuracy"],
            }
            for i, h in enumerate(result.history)
        ],
    }


def spread(values: list[float]) -> dict:
    return {
        "mean": statistics.mean(values),
        "min": min(values),
        "max": max(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def install(model: str, chosen: dict, summary: dict) -> None:
    """The chosen run's best checkpoint as the shipped model, its metadata extended with the card's figures."""
    run = Path(chosen["run"])
    meta = json.loads((run / "best.json").read_text())
    meta["weights"] = shipped_weights(model).name
    meta["data"] = {**meta["data"], "path": Path(meta["data"]["path"]).name}  # no local paths in the shipped file
    meta["config"] = {**meta["config"], "data": Path(meta["config"]["data"]).name, "out": f"runs/{model}"}
    meta["evaluation"] = {
        "test": chosen["test"],
        "other_test": chosen["other_test"],
        "seeds": summary["seeds"],
        "command": summary["command"],
    }
    with atomic_file(shipped_weights(model)) as tmp:
        shutil.copyfile(run / "best.safetensors", tmp)
    ckpt.write_json(shipped_json(model), meta)


def shipped(model: str, own: Path, other: Path) -> None:
    """The shipped weights as they are: calibrated on val if they are not yet, evaluated on both test sets, the
    figures written into their metadata."""
    meta = ckpt.read_meta(model)
    calibration = calibrate_checkpoint(shipped_json(model), load_split(own, "val"))
    reports = [figures(evaluate(model, data, "test", meta["tta"], "cpu"), meta["tta"]) for data in (own, other)]
    reports[0]["ece_uncalibrated"] = ece_uncalibrated(model, own, meta["tta"])
    meta = json.loads(shipped_json(model).read_text())
    meta["evaluation"] = {
        "test": reports[0],
        "other_test": reports[1],
        "command": " ".join(["python", *sys.argv]),
    }
    ckpt.write_json(shipped_json(model), meta)
    for r in reports:
        before = f" (uncalibrated {r['ece_uncalibrated']:.3f})" if "ece_uncalibrated" in r else ""
        print(
            f"{model} on {r['data']} test: {100 * r['accuracy']:.2f}% with {r['tta']} "
            f"({100 * r['accuracy_without_tta']:.2f}% without), macro-F1 {100 * r['macro_f1']:.2f}%, "
            f"ECE {r['ece']:.3f}{before}, {len(r['per_class_recall'])} classes"
        )
    print(f"temperature {calibration['temperature']} (val ECE {calibration['ece']})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=SHIPPED, default=BUILTIN)
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    p.add_argument("--out-dir", type=Path, default=Path("runs"))
    p.add_argument("--epochs", type=int, default=None, help="[default: the recipe's]")
    p.add_argument("--time-budget", type=float, default=None, help="CPU seconds of training [default: the recipe's]")
    p.add_argument("--install", action="store_true", help="ship the seed with the best val accuracy")
    p.add_argument(
        "--shipped", action="store_true", help="no training: calibrate (once), evaluate and record the shipped weights"
    )
    args = p.parse_args()
    own, other = (data_file(name) for name in DATA[args.model])
    if args.shipped:
        return shipped(args.model, own, other)
    seeds = [int(s) for s in args.seeds.split(",")]
    results = [
        run_seed(args.model, s, args.out_dir / f"{args.model}-s{s}", own, other, args.epochs, args.time_budget)
        for s in seeds
    ]
    summary = {
        "command": " ".join(["python", *sys.argv]),
        "model": args.model,
        "csv": str(CSV),
        "seeds": {
            r["seed"]: {
                "val_accuracy": r["val_accuracy"],
                "test_accuracy": r["test"]["accuracy"],
                "test_macro_f1": r["test"]["macro_f1"],
            }
            for r in results
        },
        "test_accuracy": spread([r["test"]["accuracy"] for r in results]),
        "test_macro_f1": spread([r["test"]["macro_f1"] for r in results]),
        "other_test_accuracy": spread([r["other_test"]["accuracy"] for r in results]),
        "runs": results,
    }
    for r in results:
        t, o, c = r["test"], r["other_test"], r["calibration"]
        val_ece = c["ece"][t["tta"]]
        print(
            f"seed {r['seed']}: {r['epochs_done']} epochs, {r['train_cpu_minutes']:.1f} CPU-min "
            f"({r['train_wall_minutes']:.0f} min wall), best val {100 * r['val_accuracy']:.2f}% at epoch "
            f"{r['best_epoch']}; {t['data']} test {100 * t['accuracy']:.2f}% with {t['tta']} "
            f"({100 * t['accuracy_without_tta']:.2f}% without), macro-F1 {100 * t['macro_f1']:.2f}%, ECE "
            f"{t['ece']:.3f} (uncalibrated {t['ece_uncalibrated']:.3f}); {o['data']} test "
            f"{100 * o['accuracy']:.2f}% on {len(o['per_class_recall'])} classes; "
            f"temperature {c['temperature'][t['tta']]:.3f} (val ECE {val_ece['before']:.3f} -> {val_ece['after']:.3f})"
        )
    acc, f1 = summary["test_accuracy"], summary["test_macro_f1"]
    print(
        f"{args.model} over seeds {seeds}: test accuracy {100 * acc['mean']:.2f}% (min {100 * acc['min']:.2f}, max "
        f"{100 * acc['max']:.2f}), macro-F1 {100 * f1['mean']:.2f}% (min {100 * f1['min']:.2f}, max "
        f"{100 * f1['max']:.2f})"
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    ckpt.write_json(args.out_dir / f"{args.model}-summary.json", summary)
    if args.install:
        chosen = max(results, key=lambda r: r["val_accuracy"])
        install(args.model, chosen, summary)
        print(
            f"installed seed {chosen['seed']} (best val accuracy) as {shipped_weights(args.model)} and "
            f"{shipped_json(args.model)}"
        )


if __name__ == "__main__":
    main()
