"""Benchmark: through-the-pipeline accuracy, the photo proxy anyone can run without labelled photographs.

FER+ test faces (majority labels, the reference protocol) are turned into portrait photographs: upscaled from 48
to ``--side`` pixels (bicubic), framed with background above, below and beside the face (edge pixels repeated, a
portrait's 4:5 shape), as RGB. The face stage then finds and crops each one exactly as ``predict`` and the judge
do on a photograph (MediaPipe BlazeFace, the ``photo`` filters, the largest face, FER2013's framing, 48x48 gray),
and the model classifies the crop. The same model classifies the original 48 px face; the difference between the
two on the same faces is the cost of the photo path (the issue's bound: a drop of at most 2 points).

    python bench/photo_proxy.py                                   # builtin and builtin-fer2013, every test face
    python bench/photo_proxy.py --models runs/mine --n 500 --side 320

Printed: faces found, accuracy on the 48 px faces and through the pipeline on the found faces (paired), and with
faces the detector missed counted as errors. A seven-class model is scored on FER+ test without its contempt rows
(fer_models.inference.class_mapping). Figures also go to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import FACE_MODEL, FERPLUS_CSV, FERPLUS_H5, ROOT, packed
from fer_models.inference.class_mapping import class_mapping
from fer_models.inference.classifier import load_classifier
from fer_synth.core import store
from fer_synth.faces.stage import FaceStage, FaceStageConfig

#: Background added around the upscaled face, as fractions of its side: a head-and-shoulders portrait.
BORDER = {"top": 0.30, "bottom": 0.55, "left": 0.35, "right": 0.35}


def portrait(face: np.ndarray, side: int) -> np.ndarray:
    """A 48x48 gray face -> an RGB portrait photograph: upscaled to ``side``, background around it."""
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    framed = cv2.copyMakeBorder(
        big, *(round(BORDER[k] * side) for k in ("top", "bottom", "left", "right")), cv2.BORDER_REPLICATE
    )
    return np.repeat(framed[..., None], 3, axis=2)


def crop_through_stage(faces: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(found mask [N], crops [found, 48, 48], seconds) of the face stage on each face's portrait."""
    found, crops = np.zeros(len(faces), bool), []
    started = time.perf_counter()
    with FaceStage(FaceStageConfig("mediapipe", filters="photo", face_model=str(FACE_MODEL))) as stage:
        for i, face in enumerate(faces):
            result = stage(portrait(face, side))
            if result.kept:
                found[i] = True
                crops.append(result.faces[0])
    return found, np.stack(crops), time.perf_counter() - started


def score(
    model: str,
    faces: np.ndarray,
    labels: np.ndarray,
    classes: tuple[str, ...],
    found: np.ndarray,
    crops: np.ndarray,
    tta: str | None,
) -> dict:
    """Accuracy of ``model`` on the 48 px faces and on their crops through the face stage, paired."""
    classifier = load_classifier(model, tta=tta)
    mapping = class_mapping(classifier.classes, classes, model, "FER+ test")
    kept, truth = mapping.rows(labels)  # a seven-class model: contempt rows left out
    direct = classifier.predict_proba(faces, classes=mapping.shared).argmax(1)[kept]
    through = np.full(len(labels), -1)  # -1: the detector missed the face
    through[found] = classifier.predict_proba(crops, classes=mapping.shared).argmax(1)
    through, hit = through[kept], found[kept]
    return {
        "model": model,
        "tta": classifier.members[0].tta,
        "classes": list(mapping.shared),
        "rows_left_out": int(len(labels) - len(kept)),
        "faces": int(len(kept)),
        "found": int(hit.sum()),
        "found_fraction": float(hit.mean()),
        "accuracy_48px_all": float((direct == truth).mean()),
        "accuracy_48px_found": float((direct == truth)[hit].mean()),
        "accuracy_pipeline_found": float((through == truth)[hit].mean()),
        "drop_points_found": float(100 * ((direct == truth)[hit].mean() - (through == truth)[hit].mean())),
        "accuracy_pipeline_misses_as_errors": float((through == truth).mean()),
        "drop_points_misses_as_errors": float(100 * ((direct == truth).mean() - (through == truth).mean())),
        "label_agreement_48px_vs_pipeline": float((direct == through)[hit].mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="builtin,builtin-fer2013", help="comma-separated model specs")
    p.add_argument("--h5", type=Path, default=FERPLUS_H5)
    p.add_argument("--n", type=int, default=None, help="the first N test faces [default: all]")
    p.add_argument("--side", type=int, default=256, help="pixels of the upscaled face")
    p.add_argument("--tta", default=None, help="[default: each model's own]")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "runs" / "photo_proxy.json")
    args = p.parse_args()
    test = store.read_split(packed(args.h5, FERPLUS_CSV, "distribution"), "test", provenance=False)
    faces, labels = test.images[: args.n], test.labels[: args.n]
    found, crops, seconds = crop_through_stage(faces, args.side)
    print(
        f"face stage: found {found.sum()} of {len(faces)} faces in their {args.side}-px portraits "
        f"({seconds / len(faces) * 1000:.1f} ms per photo)"
    )
    results = [score(m, faces, labels, tuple(test.classes), found, crops, args.tta) for m in args.models.split(",")]
    for r in results:
        print(
            f"{r['model']} ({r['tta']} TTA, {len(r['classes'])} classes, {r['faces']} faces): 48 px "
            f"{100 * r['accuracy_48px_found']:.2f}% -> through the pipeline {100 * r['accuracy_pipeline_found']:.2f}% "
            f"on the {r['found']} found faces (drop {r['drop_points_found']:.2f} points; labels agree "
            f"{100 * r['label_agreement_48px_vs_pipeline']:.1f}%); misses counted as errors: "
            f"{100 * r['accuracy_48px_all']:.2f}% -> {100 * r['accuracy_pipeline_misses_as_errors']:.2f}%"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "side": args.side,
                "border": BORDER,
                "faces": len(faces),
                "found": int(found.sum()),
                "stage_seconds": seconds,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
