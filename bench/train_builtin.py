"""Retrain the built-in model from the real FER2013 on a CPU, in one command, and print its model card's figures.

    python bench/train_builtin.py                                  # 30 CPU-minutes, writes runs/builtin/
    python bench/train_builtin.py --install                         # ... and replaces the shipped files
    python bench/train_builtin.py --time-budget 300 --epochs 5 --out runs/builtin-5min   # the 5-minute point

A finished run in ``--out`` is not trained again: it is evaluated (and installed), so the command also reports a run
made with ``fer-models train --recipe builtin``.

Steps: pack ``fer2013.csv.gz`` (train = Training, val = PublicTest, test = PrivateTest; ``fer-synth pack``), train
the ``builtin`` recipe (``fer-models train --recipe builtin``: one thread, bf16, the budget counted in this
process's CPU seconds so that other work on a shared machine does not shorten it), select the epoch on val
only, then evaluate the selected weights once on test with and without the recipe's TTA (``fer-models
evaluate``). ``--install`` copies the weights and their metadata, with the test figures, to
``fer_models/models/weights/builtin.*``; docs/builtin-model.md quotes what this prints.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import CSV, FER2013_H5  # noqa: E402
from fer_models import checkpoint as ckpt  # noqa: E402
from fer_models.evaluation.evaluate import evaluate  # noqa: E402
from fer_models.models.builtin import BUILTIN_JSON, BUILTIN_WEIGHTS  # noqa: E402
from fer_models.training.config import make_config  # noqa: E402
from fer_models.training.loop import train  # noqa: E402
from fer_synth.core.atomic import atomic_file  # noqa: E402
from fer_synth.data.balance import PackConfig, pack  # noqa: E402


def card_figures(report: dict, tta: str) -> dict:
    """The model card's numbers from an evaluation report."""
    m = report["results"][tta]["all"]
    return {
        "split": report["split"],
        "n": report["n"],
        "tta": tta,
        "accuracy": m["accuracy"],
        "accuracy_without_tta": report["results"]["none"]["all"]["accuracy"],
        "balanced_accuracy": m["balanced_accuracy"],
        "macro_f1": m["macro_f1"],
        "per_class_recall": {name: c["recall"] for name, c in m["per_class"].items()},
        "per_class_precision": {name: c["precision"] for name, c in m["per_class"].items()},
        "confusion": m["confusion"],
        "data_fingerprint": report["data_fingerprint"],
    }


def install(run: Path, figures: dict, source: Path) -> None:
    """The run's best checkpoint as the shipped built-in model, its metadata extended with the test figures."""
    meta = json.loads((run / "best.json").read_text())
    meta["weights"] = BUILTIN_WEIGHTS.name
    meta["data"] = {**meta["data"], "path": source.name}  # no local paths in the shipped file
    meta["config"] = {**meta["config"], "data": source.name, "out": "runs/builtin"}
    meta["evaluation"] = figures
    with atomic_file(BUILTIN_WEIGHTS) as tmp:
        shutil.copyfile(run / "best.safetensors", tmp)
    ckpt.write_json(BUILTIN_JSON, meta)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", type=Path, default=CSV, help="FER2013's fer2013.csv[.gz]")
    p.add_argument("--h5", type=Path, default=FER2013_H5)
    p.add_argument("--out", type=Path, default=Path("runs/builtin"))
    p.add_argument(
        "--time-budget", type=float, default=None, help="CPU seconds of training [default: the recipe's, 1800]"
    )
    p.add_argument("--epochs", type=int, default=None, help="[default: the recipe's]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--install", action="store_true", help="replace the shipped built-in model with this run's")
    args = p.parse_args()
    if not args.h5.exists():
        pack(PackConfig(args.csv, args.h5))
    config = make_config(
        "builtin",
        data=str(args.h5),
        out=str(args.out),
        time_budget=args.time_budget,
        epochs=args.epochs,
        seed=args.seed,
        progress=False,
    )
    load = os.getloadavg()
    result = train(config)  # a finished run in --out is left as it is: then this evaluates (and installs) it
    # Training time from the run's own history: right for a run continued after an interruption, too.
    wall = sum(h["seconds"] for h in result.history)
    cpu = sum(h["cpu_seconds"] for h in result.history)
    # The test split is looked at here, once, with the epoch chosen on val.
    report = evaluate(args.out, args.h5, "test", config.tta, "cpu", out=args.out)
    figures = card_figures(report, config.tta)
    summary = {
        "command": " ".join(sys.argv),
        "train_wall_s": wall,
        "train_cpu_s": cpu,
        "load_at_start": load,
        "load_after": os.getloadavg(),
        "epochs_done": len(result.history),
        "stopped_by": result.stopped_by,
        "best_epoch": result.best_epoch,
        "val_accuracy": result.best_metric,
        "test": figures,
        "val_curve": [
            {
                "epoch": h["epoch"],
                "cpu_minutes": sum(x["cpu_seconds"] for x in result.history[: i + 1]) / 60,
                "val_accuracy": h["val_accuracy"],
            }
            for i, h in enumerate(result.history)
        ],
    }
    ckpt.write_json(args.out / "builtin-summary.json", summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "val_curve"}, indent=2))
    print(
        f"PrivateTest accuracy {100 * figures['accuracy']:.2f}% with {config.tta} TTA "
        f"({100 * figures['accuracy_without_tta']:.2f}% without) after {cpu / 60:.1f} CPU-min "
        f"of training epochs ({wall / 60:.1f} min wall; load average {load[0]:.1f} when this script started)"
    )
    if args.install:
        install(args.out, figures, args.csv)
        print(f"installed {BUILTIN_WEIGHTS} and {BUILTIN_JSON}")


if __name__ == "__main__":
    main()
