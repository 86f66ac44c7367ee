"""Benchmark: the demo's webcam frame path at 640x480 with one face, stage by stage (decode, detect, crop, classify,
draw, and the JPEG encode of the drawn frame that goes back to the browser).

The frames: scikit-image's astronaut (one real face) scaled into a 640x480 frame, shifted a few pixels from frame
to frame, and JPEG-encoded at quality 92 as a browser streams a webcam (``canvas.toDataURL('image/jpeg')``).
Each frame is decoded, run through :class:`fer_models.inference.demo.live.FramePath` (MediaPipe BlazeFace, the
classifier without TTA) and encoded again. Modes, alternating in rounds so that the machine's noise falls on all alike:

* ``live``: the demo's path, ``--amp auto`` (bf16 where the CPU has it natively, else float32), no TTA;
* ``live-fp32``: the same in float32;
* ``live-2-threads``: the same as ``live`` with torch on two threads (the demo uses one: ``--threads``);
* ``live-explain``: the same as ``live`` with Grad-CAM painted on every frame (the demo's checkbox);
* ``predict``: the baseline, ``fer-models predict``'s per-image path on the same frames (the face stage's own
  call, the model's own TTA, float32).

Per mode: the median over rounds of wall-clock frames/s, CPU-seconds per frame (this process, all threads: the
machine's other work does not count), the milliseconds of each stage, and the ratio to the baseline.

    python bench/webcam_speed.py                        # the built-in model, torch on 1 thread (the demo's default)
    python bench/webcam_speed.py --model runs/vgg --rounds 10 --frames 60
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import FACE_MODEL
from fer_models.inference.classifier import load_classifier
from fer_models.inference.demo.browser import webcam_scene
from fer_models.inference.demo.live import EXPLAIN, STAGES, FramePath, decode_jpeg
from fer_models.inference.media import classified, draw_faces
from fer_synth.faces.stage import FaceStage, FaceStageConfig

WIDTH, HEIGHT = 640, 480
TARGET_FPS = 15.0
ENCODE = "encode"


def webcam_frames(n: int) -> list[bytes]:
    """``n`` JPEG frames of 640x480 with the astronaut's face, each shifted a little from the last."""
    frames = []
    for rgb in webcam_scene(n, WIDTH, HEIGHT):
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=92)
        frames.append(buffer.getvalue())
    return frames


def encode_jpeg(rgb: np.ndarray) -> bytes:
    """The drawn frame as the demo sends it back (a JPEG, Pillow's default quality, as Gradio writes it)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG")
    return buffer.getvalue()


def run_live(path: FramePath, frames: list[bytes], explain: bool) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for data in frames:
        start = time.perf_counter()
        rgb = decode_jpeg(data)
        decoded = time.perf_counter()
        frame = path(rgb, explain=explain)
        encoded = time.perf_counter()
        encode_jpeg(frame.image)
        end = time.perf_counter()
        if len(frame.faces) != 1:
            raise SystemExit(f"expected one face per frame, found {len(frame.faces)}")
        for name, value in {"decode": decoded - start, **frame.seconds, ENCODE: end - encoded}.items():
            times.setdefault(name, []).append(value)
    return times


def run_predict(stage: FaceStage, classifier, frames: list[bytes]) -> dict[str, list[float]]:
    """``predict``'s per-image work: the face stage's call (detect + crop + filters), the classifier, drawing."""
    times: dict[str, list[float]] = {}
    for data in frames:
        clock = [time.perf_counter()]
        rgb = decode_jpeg(data)
        clock.append(time.perf_counter())
        result = stage(rgb)  # detect + crop + filters: the face stage does them in one call
        clock.append(time.perf_counter())
        probs = classifier.predict_proba(np.stack(result.faces))
        clock.append(time.perf_counter())
        faces = [
            classified("frame", None, box, score, p, classifier.classes)
            for box, score, p in zip(result.kept_boxes, result.kept_scores, probs)
        ]
        image = draw_faces(rgb, faces)
        clock.append(time.perf_counter())
        encode_jpeg(image)
        clock.append(time.perf_counter())
        for name, start, end in zip(("decode", "detect", "classify", "draw", ENCODE), clock, clock[1:]):
            times.setdefault(name, []).append(end - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--frames", type=int, default=60, help="frames per round and mode")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the demo's --threads)")
    parser.add_argument("--face-model", default=str(FACE_MODEL))
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    frames = webcam_frames(args.frames)
    stage_config = FaceStageConfig("mediapipe", filters="photo", policy="all", face_model=args.face_model)
    with FaceStage(stage_config) as live_stage, FaceStage(stage_config) as stage:
        live = load_classifier(args.model, tta="none", amp="auto")
        fp32 = load_classifier(args.model, tta="none", amp="none")
        own = load_classifier(args.model)

        def two_threads():
            torch.set_num_threads(2)
            try:
                return run_live(FramePath(live, live_stage), frames, explain=False)
            finally:
                torch.set_num_threads(args.threads)

        runs = {
            "live": lambda: run_live(FramePath(live, live_stage), frames, explain=False),
            "live-2-threads": two_threads,
            "live-fp32": lambda: run_live(FramePath(fp32, live_stage), frames, explain=False),
            "live-explain": lambda: run_live(FramePath(live, live_stage), frames, explain=True),
            "predict": lambda: run_predict(stage, own, frames),
        }
        for run in runs.values():  # warm-up: native graphs, oneDNN kernels
            run()
        rounds: dict[str, list[dict]] = {mode: [] for mode in runs}
        for _ in range(args.rounds):
            for mode, run in runs.items():
                cpu, wall = time.process_time(), time.perf_counter()
                times = run()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                rounds[mode].append(
                    {
                        "fps": len(frames) / wall,
                        "cpu_ms": 1000 * cpu / len(frames),
                        "stages_ms": {k: 1000 * statistics.median(v) for k, v in times.items()},
                    }
                )

    amp = "bf16" if live.members[0].amp == torch.bfloat16 else "float32"
    print(
        f"model {args.model}, {WIDTH}x{HEIGHT} JPEG frames with one face, {args.rounds} rounds x {args.frames} "
        f"frames per mode, torch threads {args.threads}; live = no TTA, {amp}; predict = the model's own TTA "
        f"({own.members[0].tta}), float32"
    )
    columns = ("decode", "detect", "crop", "classify", "draw", EXPLAIN, ENCODE)
    print(
        f"{'mode':14s} {'frames/s':>9s} {'CPU ms/fr':>9s} {'x predict':>9s} "
        + " ".join(f"{c:>8s}" for c in columns)
        + "   (stage: median ms per frame)"
    )
    base = statistics.median(r["fps"] for r in rounds["predict"])
    figures = {}
    for mode, results in rounds.items():
        fps = statistics.median(r["fps"] for r in results)
        cpu_ms = statistics.median(r["cpu_ms"] for r in results)
        stages = {
            c: statistics.median(r["stages_ms"][c] for r in results) for c in columns if c in results[0]["stages_ms"]
        }
        figures[mode] = {
            "fps": fps,
            "fps_rounds": [r["fps"] for r in results],
            "cpu_ms_per_frame": cpu_ms,
            "ratio_to_predict": fps / base,
            "stages_ms": stages,
        }
        print(
            f"{mode:14s} {fps:9.1f} {cpu_ms:9.1f} {fps / base:9.2f} "
            + " ".join(f"{stages[c]:8.2f}" if c in stages else f"{'-':>8s}" for c in columns)
        )
    live_fps = figures["live"]["fps"]
    print(
        f"webcam target {TARGET_FPS:.0f} frames/s: live {live_fps:.1f} frames/s wall "
        f"({'met' if live_fps >= TARGET_FPS else 'NOT met'}); by CPU time alone "
        f"{1000 / figures['live']['cpu_ms_per_frame']:.1f} frames/s of this process's CPU"
    )
    if args.out:
        Path(args.out).write_text(
            json.dumps({"args": vars(args), "amp": amp, "stages": STAGES, "modes": figures}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
