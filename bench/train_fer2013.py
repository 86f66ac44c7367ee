"""Benchmark: train on the real FER2013, select on PublicTest (val), report PrivateTest (test) once.

CPU part (always):
  1. the data path's cost: training images/s through ``augment_batch`` + forward/backward/step against the
     bare model's forward/backward/step on the same batches, pre-rendered (target: under 10% slower);
  2. the best PrivateTest accuracy reached within ``--time-budget`` seconds of training; with ``--epochs auto``
     the schedule is sized to the budget from the throughput measured in step 1.
GPU part (when CUDA exists): the ``khaireddin-vgg`` recipe's PrivateTest accuracy and wall time (anchor 73.28%).

    python bench/train_fer2013.py --time-budget 1800                      # the issue's 30-minute CPU figure
    python bench/train_fer2013.py --time-budget 480 --threads 1 --model-options '{"widths": [16, 32, 64]}'
    python bench/train_fer2013.py --skip-cpu --gpu-epochs 300             # on a GPU machine
    python bench/train_fer2013.py --ferplus ../shared/data/fer2013/ferplus-fer2013new.csv --h5 bench/.cache/ferplus.h5

With ``--ferplus`` the labels are FER+'s (eight classes, ``--label-mode majority`` or ``distribution``; test is
always the majority-labelled PrivateTest); published single-model FER+ test accuracies are 85-89% (GPU, hundreds
of epochs).

The packed file is cached (``--h5``); figures go to stdout and ``OUT/bench.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import CACHE, packed  # noqa: E402
from fer_models.data import Augment, augment_batch, batches, epoch_order, load_split, render, view_thetas  # noqa: E402
from fer_models.evaluation.evaluate import evaluate  # noqa: E402
from fer_models.models import create_model  # noqa: E402
from fer_models.training.config import make_config  # noqa: E402
from fer_models.training.loop import train  # noqa: E402
from fer_models.training.optim import create_optimizer  # noqa: E402
from fer_models.training.precision import autocast_dtype, to_layout, uses_channels_last  # noqa: E402

VGG_ANCHOR = 0.7328
FERPLUS_ANCHOR = 0.85  # the low end of published single-model FER+ majority-vote test accuracies


def data_path_cost(config, device: torch.device, n_batches: int, rounds_n: int = 5) -> dict:
    """Images/s of train steps fed by the augmenting data path vs. by pre-rendered tensors (bare model)."""
    split = load_split(config.data, "train", device)
    model = create_model(config.model, num_classes=len(split.classes), **config.model_options).to(device).train()
    spec = model.spec
    size = config.input_size or int(config.model_options.get("input_size", spec.input_size))
    dtype = autocast_dtype(config.amp, device)  # as training runs it (bf16 + channels_last on such CPUs)
    to_layout(model, uses_channels_last(dtype, device))
    optimizer = create_optimizer(model, **config.optimizer_kwargs())
    aug = Augment(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.augment.items()})
    g = torch.Generator(device=device).manual_seed(0)
    index = batches(epoch_order(split.labels, g), config.batch_size)[: n_batches + 1]
    pre = [
        render(split.images[i], view_thetas(len(i), "none", size, 48, device)[0], size, spec.in_chans) for i in index
    ]

    def step(x, y):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def timed(fn, ks) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for k in ks:
            fn(k)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    def bare_step(k):
        step(pre[k], split.labels[index[k]])

    def full_step(k):
        step(augment_batch(split.images[index[k]], aug, size, spec.in_chans, g), split.labels[index[k]])

    def augment_only(k):
        augment_batch(split.images[index[k]], aug, size, spec.in_chans, g)

    bare_step(0), full_step(0)  # warm-up
    # Alternate short rounds so that load from other users of the machine hits both alike; take medians.
    rounds = [list(range(1, len(index)))[r::rounds_n] for r in range(rounds_n)]
    ratios, bare_s, full_s, aug_s = [], 0.0, 0.0, 0.0
    for ks in rounds:
        b, f, a = timed(bare_step, ks), timed(full_step, ks), timed(augment_only, ks)
        ratios.append(1 - b / f)
        bare_s, full_s, aug_s = bare_s + b, full_s + f, aug_s + a
    images = (len(index) - 1) * config.batch_size
    return {
        "bare_images_per_s": images / bare_s,
        "train_images_per_s": images / full_s,
        "data_path_cost": sorted(ratios)[len(ratios) // 2],
        "augment_ms_per_batch": 1000 * aug_s / (len(index) - 1),
        "augment_share_of_bare_step": aug_s / bare_s,
        "batches": len(index) - 1,
        "batch_size": config.batch_size,
    }


def run_and_report(config, tag: str, out: Path, device: str) -> dict:
    started = time.perf_counter()
    result = train(config)
    wall = time.perf_counter() - started
    # The test split is looked at here, once, with the checkpoint chosen on val.
    report = evaluate(config.out, config.data, "test", config.tta, device, out=config.out)
    res = report["results"]
    return {
        "tag": tag,
        "model": config.model,
        "model_options": config.model_options,
        "recipe": config.recipe,
        "epochs_done": len(result.history),
        "stopped_by": result.stopped_by,
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_metric,
        "train_wall_s": wall,
        "privatetest_accuracy": res["none"]["all"]["accuracy"],
        "privatetest_accuracy_tta": res[config.tta]["all"]["accuracy"],
        "tta": config.tta,
        "privatetest_balanced_accuracy_tta": res[config.tta]["all"]["balanced_accuracy"],
        "privatetest_macro_f1_tta": res[config.tta]["all"]["macro_f1"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--h5",
        type=Path,
        default=None,
        help="[default: bench/.cache/fer2013.h5, with --ferplus bench/.cache/ferplus-<label mode>.h5]",
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "runs")
    p.add_argument("--recipe", default="cpu-fast")
    p.add_argument("--model-options", type=json.loads, default=None)
    p.add_argument("--time-budget", type=float, default=1800.0, help="CPU training seconds")
    p.add_argument("--epochs", default="auto", help="'auto': as many as the budget allows at the measured speed")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is faster on a loaded machine)")
    p.add_argument("--cost-batches", type=int, default=20)
    p.add_argument("--skip-cpu", action="store_true")
    p.add_argument("--cost-only", action="store_true", help="measure the data path's cost, train nothing")
    p.add_argument("--gpu-epochs", type=int, default=300)
    p.add_argument("--gpu-time-budget", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ferplus", type=Path, default=None, help="FER+ votes (fer2013new.csv): train on FER+ labels")
    p.add_argument("--label-mode", default="majority", help="with --ferplus: majority or distribution")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    default = "fer2013.h5" if args.ferplus is None else f"ferplus-{args.label_mode}.h5"
    h5 = packed(args.h5 or CACHE / default, args.ferplus, args.label_mode)
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"command": " ".join(sys.argv), "threads": torch.get_num_threads(), "data": str(h5)}

    if not args.skip_cpu:
        cpu = torch.device("cpu")
        config = make_config(
            args.recipe,
            data=str(h5),
            out=str(args.out / "cpu"),
            device="cpu",
            seed=args.seed,
            model_options=args.model_options,
            time_budget=args.time_budget,
            progress=False,
        )
        cost = data_path_cost(config, cpu, args.cost_batches)
        summary["cpu_data_path"] = cost
        print(
            f"CPU data path: bare model {cost['bare_images_per_s']:.0f} img/s, training with augmentation "
            f"{cost['train_images_per_s']:.0f} img/s -> data path costs {100 * cost['data_path_cost']:.1f}% "
            f"(median of rounds); augmentation alone {cost['augment_ms_per_batch']:.1f} ms/batch = "
            f"{100 * cost['augment_share_of_bare_step']:.1f}% of a bare step"
        )
        if args.cost_only:
            print(json.dumps(summary, indent=2))
            return
        if args.epochs == "auto":
            n_train = len(load_split(str(h5), "train"))
            config.epochs = max(1, math.floor(args.time_budget * cost["train_images_per_s"] * 0.95 / n_train))
        else:
            config.epochs = int(args.epochs)
        print(
            f"CPU training: {config.model} {config.model_options or ''} for {config.epochs} epoch(s), "
            f"budget {args.time_budget:.0f} s"
        )
        summary["cpu"] = run_and_report(config, "cpu", args.out, "cpu")
        print(json.dumps(summary["cpu"], indent=2))

    if torch.cuda.is_available():
        config = make_config(
            "khaireddin-vgg",
            data=str(h5),
            out=str(args.out / "gpu-vgg"),
            device="cuda",
            epochs=args.gpu_epochs,
            time_budget=args.gpu_time_budget,
            seed=args.seed,
            progress=False,
            eval_batch_size=2048,
        )
        anchor = FERPLUS_ANCHOR if args.ferplus else VGG_ANCHOR
        summary["gpu"] = {
            **run_and_report(config, "gpu", args.out, "cuda"),
            "device": torch.cuda.get_device_name(),
            "anchor": anchor,
        }
        summary["gpu"]["vs_anchor"] = summary["gpu"]["privatetest_accuracy_tta"] - anchor
        print(json.dumps(summary["gpu"], indent=2))
    else:
        summary["gpu"] = "not run: CUDA is not available on this machine"
        print("GPU part not run: CUDA is not available on this machine")
    (args.out / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"summary: {args.out / 'bench.json'}")


if __name__ == "__main__":
    main()
