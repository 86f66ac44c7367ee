"""Benchmark: CPU training speed by precision and memory layout, and bf16's accuracy against float32.

1. Speed: training steps (forward, backward, AdamW step) of each model on random 48x48 batches in four modes,
   float32, channels_last, bf16 autocast, bf16 autocast + channels_last (what ``--amp auto`` does on a CPU with
   native bf16), optionally also ``torch.compile``d. The modes run in alternating short rounds in ONE process,
   so load from other users of a shared machine hits them alike; figures are medians over rounds, as
   images/s of wall-clock and of this process's CPU time, and each mode's ratio to float32.
2. Accuracy (``--accuracy-epochs N``): the same seed and recipe trained N epochs on the real FER2013 with
   ``--amp none`` and with ``--amp auto``; val (PublicTest) accuracy of each (the test split is not looked at).

    python bench/cpu_training_speed.py                                   # speed, 1 and 2 threads
    python bench/cpu_training_speed.py --models small-cnn --threads 1 --compile
    python bench/cpu_training_speed.py --speed-rounds 0 --accuracy-epochs 3

Figures go to stdout and ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import FER2013_H5, packed  # noqa: E402
from fer_models.models import create_model  # noqa: E402
from fer_models.training.config import make_config  # noqa: E402
from fer_models.training.loop import train  # noqa: E402
from fer_models.training.precision import cpu_has_native_bf16  # noqa: E402

MODES = {
    "float32": (None, False),
    "channels_last": (None, True),
    "bf16": (torch.bfloat16, False),
    "bf16+channels_last": (torch.bfloat16, True),
}


def speed(model_name: str, threads: int, batch: int, rounds: int, steps: int, compiled: bool) -> dict:
    """Median images/s (wall and CPU) of each mode's training steps, alternating modes round by round."""
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    setups = {}
    for mode, (dtype, channels_last) in MODES.items():
        torch.manual_seed(0)
        model = create_model(model_name).train()
        size = model.spec.input_size
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        forward = torch.compile(model) if compiled else model
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.randn(batch, model.spec.in_chans, size, size, generator=g)
        y = torch.randint(0, 7, (batch,), generator=g)

        def step(forward=forward, optimizer=optimizer, x=x, y=y, dtype=dtype):
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(forward(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        started = time.perf_counter()
        for _ in range(3):  # warm-up (and compilation)
            step()
        setups[mode] = (step, time.perf_counter() - started)
    wall: dict[str, list[float]] = {m: [] for m in MODES}
    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(rounds):
        for mode, (step, _) in setups.items():
            w, c = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step()
            wall[mode].append(batch * steps / (time.perf_counter() - w))
            cpu[mode].append(batch * steps / (time.process_time() - c))
    result = {}
    for mode in MODES:
        result[mode] = {
            "images_per_s": statistics.median(wall[mode]),
            "images_per_cpu_s": statistics.median(cpu[mode]),
            "warmup_s": setups[mode][1],
        }
    for mode in MODES:
        for key in ("images_per_s", "images_per_cpu_s"):
            result[mode][f"{key}_vs_float32"] = result[mode][key] / result["float32"][key]
    return result


def accuracy(h5: Path, out: Path, model: str, epochs: int, seed: int) -> dict:
    """Val accuracy after ``epochs`` of the cpu-fast recipe with float32 and with ``--amp auto``."""
    torch.set_num_threads(1)
    result = {}
    for amp in ("none", "auto"):
        config = make_config(
            "cpu-fast",
            data=str(h5),
            model=model,
            out=str(out / f"amp-{amp}"),
            device="cpu",
            epochs=epochs,
            seed=seed,
            amp=amp,
            threads=1,
            progress=False,
        )
        started, cpu = time.perf_counter(), time.process_time()
        run = train(config, overwrite=True)
        result[amp] = {
            "val_accuracy": run.best_metric,
            "best_epoch": run.best_epoch,
            "val_curve": [h["val_accuracy"] for h in run.history],
            "train_wall_s": time.perf_counter() - started,
            "train_cpu_s": time.process_time() - cpu,
        }
    result["difference"] = result["auto"]["val_accuracy"] - result["none"]["val_accuracy"]
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="small-cnn", help="comma-separated registered models")
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--speed-rounds", type=int, default=5, help="0 skips the speed part")
    p.add_argument("--steps", type=int, default=4, help="training steps per mode per round")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    p.add_argument("--accuracy-epochs", type=int, default=0, help="epochs of the bf16-vs-float32 check (0: skip)")
    p.add_argument("--accuracy-model", default="small-cnn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--h5", type=Path, default=FER2013_H5)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "runs" / "cpu-speed")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict = {
        "command": " ".join(sys.argv),
        "native_bf16": cpu_has_native_bf16(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "speed": [],
    }
    print(f"CPU: {summary['cpu_capability']}, native bf16: {summary['native_bf16']}")
    for model in args.models.split(",") if args.speed_rounds else []:
        for threads in (int(t) for t in args.threads.split(",")):
            for compiled in (False, True) if args.compile else (False,):
                rows = speed(model, threads, args.batch_size, args.speed_rounds, args.steps, compiled)
                summary["speed"].append({"model": model, "threads": threads, "compiled": compiled, "modes": rows})
                print(f"{model}, {threads} thread(s){', torch.compile' if compiled else ''}, batch {args.batch_size}:")
                for mode, r in rows.items():
                    print(
                        f"  {mode:<20} {r['images_per_s']:7.0f} img/s ({r['images_per_s_vs_float32']:.2f}x)  "
                        f"{r['images_per_cpu_s']:7.0f} img/CPU-s ({r['images_per_cpu_s_vs_float32']:.2f}x)"
                        f"  warm-up {r['warmup_s']:.1f} s"
                    )
    if args.accuracy_epochs:
        h5 = packed(args.h5)
        summary["accuracy"] = accuracy(h5, args.out, args.accuracy_model, args.accuracy_epochs, args.seed)
        a = summary["accuracy"]
        print(
            f"{args.accuracy_model}, {args.accuracy_epochs} epochs of cpu-fast, val (PublicTest) accuracy: "
            f"float32 {100 * a['none']['val_accuracy']:.2f}% ({a['none']['train_cpu_s']:.0f} CPU-s), "
            f"bf16+channels_last {100 * a['auto']['val_accuracy']:.2f}% ({a['auto']['train_cpu_s']:.0f} CPU-s); "
            f"difference {100 * a['difference']:+.2f} points"
        )
    (args.out / "speed.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"summary: {args.out / 'speed.json'}")


if __name__ == "__main__":
    main()
