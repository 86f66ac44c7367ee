"""Benchmark: an ONNX export against PyTorch on real faces: the largest probability difference, the predicted
labels' agreement, and ONNX Runtime's speed as a ratio to PyTorch's in the same run.

    python bench/onnx_parity.py                    # the built-in model on 1,024 PrivateTest faces
    python bench/onnx_parity.py --model runs/my-run --n 3589

The export is the one ``fer-models export MODEL --format onnx`` writes (preprocessing and TTA in the graph);
PyTorch runs in float32, as ``predict``'s default.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import packed  # noqa: E402
from fer_models.inference.classifier import load_classifier  # noqa: E402
from fer_models.inference.export import export  # noqa: E402
from fer_synth.core import store  # noqa: E402


def timed(fn, faces: np.ndarray, rounds: int) -> tuple[np.ndarray, float]:
    """fn's output on ``faces`` and its best time over ``rounds`` (after one warm-up)."""
    out = fn(faces)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        fn(faces)
        best = min(best, time.perf_counter() - started)
    return out, best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="builtin")
    p.add_argument("--n", type=int, default=1024, help="PrivateTest faces")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    faces = store.read_split(packed(), "test", provenance=False).images[: args.n]
    classifier = load_classifier(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        path = export(args.model, Path(tmp) / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        onnx_probs, onnx_s = timed(lambda x: session.run(["probabilities"], {"faces": x})[0], faces, args.rounds)
    torch_probs, torch_s = timed(classifier.predict_proba, faces, args.rounds)
    diff = float(np.abs(onnx_probs - torch_probs).max())
    agree = float((onnx_probs.argmax(1) == torch_probs.argmax(1)).mean())
    print(
        f"{args.model} on {len(faces)} PrivateTest faces (TTA {classifier.members[0].tta}, {args.threads} thread(s)): "
        f"max abs probability difference {diff:.2e}, labels agree {100 * agree:.2f}%; "
        f"ONNX Runtime {len(faces) / onnx_s:.0f} faces/s vs PyTorch {len(faces) / torch_s:.0f} "
        f"({torch_s / onnx_s:.2f}x)"
    )


if __name__ == "__main__":
    main()
