"""Judging a pool: does each generated face show the class it was generated for?

An independent classifier trained on real faces (a run, an ensemble, or the built-in model) scores every face of
a pool (per-class folders, as ``generate`` and ``crop`` write them). The scores go to ``POOL/judgement.jsonl``
(:mod:`fer_synth.core.judgement`, plain data that ``fer-synth balance --judged`` reads), one record per face,
written as faces are scored: an interrupted judge continues where it stopped. Optionally a second, model-free
opinion: CLIP's image-text similarity of the face to "a photo of a {class} face" (Radford et al. 2021,
arXiv:2103.00020; SDAFE filters generated faces this way), from a hub id or a local folder.

Published pipelines do the same: SyntFER scores every image with a teacher and keeps the top-k per class, SynFER
calibrates labels with an annotator model and ensemble voting.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from fer_models.checkpoint import input_files, write_json
from fer_models.evaluation.evaluate import plot_confusion
from fer_models.inference.classifier import Classifier, load_classifier
from fer_models.models.builtin import BUILTIN
from fer_synth.core.atomic import atomic_file
from fer_synth.core.classes import known_list_holding
from fer_synth.core.dataset import Split
from fer_synth.core.errors import FerError
from fer_synth.core.folders import read_pool_faces
from fer_synth.core.images import printable
from fer_synth.core.judgement import (
    JUDGEMENT_FILE,
    SelectionPolicy,
    current_judgement,
    judge_of,
    judged_over_other_classes,
    pool_digests,
    read_judgement,
)
from fer_synth.core.manifest import ManifestWriter
from fer_synth.core.outputs import output_lock, refuse_inputs, remove_stale_temps

logger = logging.getLogger(__name__)

CLIP_TEMPLATE = "a photo of a {} face"
#: The judge's defaults: flip TTA in bf16 where the CPU has it natively (docs/judging.md: speed and agreement with
#: float32 ten-crop measured by bench/judge_speed.py).
JUDGE_TTA, JUDGE_AMP = "flip", "auto"
REPORT_FILE = "judgement-report.json"
CONFUSION_FILE = "judgement-confusion.png"
#: What the report says each of these policies would keep (top-k keeps k per class whatever the scores).
PREVIEW_POLICIES = (SelectionPolicy("agree"), SelectionPolicy("min-prob", 0.3), SelectionPolicy("min-prob", 0.5))


def judge_pool(
    pool: str | os.PathLike,
    model: str | os.PathLike = BUILTIN,
    *,
    device: str | torch.device = "cpu",
    tta: str | None = JUDGE_TTA,
    amp: str = JUDGE_AMP,
    batch_size: int = 512,
    overwrite: bool = False,
    clip: str | None = None,
) -> dict:
    """Score every face of ``pool`` not judged yet with ``model``; write its records and the report (JSON, PNG).

    The judge scores the pool's classes: a judge with more classes (the eight-class built-in model on a
    seven-class pool) has its other classes' probability dropped and the rest renormalised, as the records and
    the report say. ``tta`` (None: the model's own) and ``amp`` are :func:`~fer_models.inference.load_classifier`'s;
    the defaults are the fast ones docs/judging.md measured. A record holds for the bytes its face file held when
    judged: a face replaced since is judged again, a deleted one leaves the report. A pool judged by another model
    (or with other settings) is refused unless ``overwrite``, which judges it again from scratch: the new judgement
    is written beside the old one and replaces it at the end, so an error or a kill leaves the old one whole."""
    pool = Path(pool)
    for name in (JUDGEMENT_FILE, REPORT_FILE, CONFUSION_FILE):
        refuse_inputs(pool / name, input_files(model), "the judgement file")
    classifier = load_classifier(model, device, tta=tta, amp=amp, batch_size=batch_size)
    identity = classifier.identity
    faces = read_pool_faces(pool)  # any known emotion (FER+'s contempt too): the judge must predict the pool's
    # The pool's class list: FER2013's seven unless it holds contempt (its folders may cover only some classes).
    mapping = classifier.class_mapping(
        known_list_holding(faces.classes[label] for label in set(faces.labels)), str(pool)
    )
    if not mapping.identity:
        logger.info(f"judging {pool} on its {len(mapping.shared)} classes: {mapping.note()}")
    if not overwrite:
        read_judgement(pool)  # a damaged judgement fails here, before anything is written (even the lock)
    clip_judge = _clip_judge(clip, mapping.shared, device) if clip else None
    with output_lock(pool, ".judgement.lock"):
        for name in (JUDGEMENT_FILE, REPORT_FILE, CONFUSION_FILE):  # what a killed judge left
            remove_stale_temps(pool / name)
        digests = pool_digests(pool, faces.origin)
        done = {} if overwrite else current_judgement(pool, faces.origin, digests=digests)[0]
        if done and judge_of(done) != identity:
            raise FerError(
                f"{pool} was judged by {judge_of(done)['model']} with other weights or settings (the model, its "
                "weights, --tta or --amp); pass --overwrite to judge it again with these"
            )
        # A face scored over another class list (the pool has gained or lost a class, such as contempt, since) is
        # judged again: the probabilities are renormalised over the pool's classes, so its score would not compare.
        if other := judged_over_other_classes(done, mapping.shared):
            logger.warning(
                f"judging again {len(other)} faces of {pool} judged over other classes than its present "
                f"{len(mapping.shared)} (e.g. {', '.join(map(printable, other[:3]))})"
            )
            again = set(other)
            done = {file: record for file, record in done.items() if file not in again}
        todo = np.flatnonzero([origin not in done for origin in faces.origin])
        logger.info(
            f"judging {len(todo)} of {len(faces)} faces of {pool} with {identity['model']} "
            f"({len(faces) - len(todo)} judged before for their present content)"
        )
        with (
            atomic_file(pool / JUDGEMENT_FILE) if overwrite else nullcontext(pool / JUDGEMENT_FILE) as path,
            ManifestWriter(path) as out,
        ):
            for start in range(0, len(todo), batch_size):
                index = todo[start : start + batch_size]
                records = judge_records(faces.take(index), classifier, identity, mapping.shared, clip_judge)
                out.append([{**r, "sha256": digests[r["file"]]} for r in records])
    current, _ = current_judgement(pool, faces.origin, digests=digests)
    report = summarise(current, mapping.shared)
    if not mapping.identity:
        report["class_mapping"] = {**mapping.describe(), "note": mapping.note()}
    _write_report(pool, report)
    return report


def judge_records(
    faces: Split, classifier: Classifier, identity: dict, classes: Sequence[str], clip_judge=None
) -> list[dict]:
    """One judgement record per face (``origin`` is its file, ``labels`` its intended class), with the judge's
    probabilities over ``classes`` (the pool's, renormalised when the judge has more)."""
    classes = list(classes)
    probs = classifier.predict_proba(faces.images, classes=classes)
    clip_probs = clip_judge(faces.images) if clip_judge is not None else None
    records = []
    for i, (file, label) in enumerate(zip(faces.origin, faces.labels)):
        intended = faces.classes[label]
        record = {
            "file": str(file),
            "class": intended,
            "judged": classes[int(probs[i].argmax())],
            "p_intended": round(float(probs[i][classes.index(intended)]), 6),
            "probs": [round(float(p), 6) for p in probs[i]],
            "classes": classes,
            "judge": identity,
        }
        if clip_probs is not None:
            record["clip"] = {
                "judged": classes[int(clip_probs[i].argmax())],
                "p_intended": round(float(clip_probs[i][classes.index(intended)]), 6),
            }
        records.append(record)
    return records


def summarise(records: dict[str, dict], classes: tuple[str, ...]) -> dict:
    """Per class: faces, agreement, mean probability of the intended class, most common confusion; the
    intended-vs-judged confusion matrix; how many faces each selection policy keeps; CLIP's agreement.
    ``classes`` are the judge's; every intended class is one of them (:func:`judge_pool` checks)."""
    rows = list(records.values())
    per_class = {}
    confusion = np.zeros((len(classes), len(classes)), np.int64)
    for r in rows:
        confusion[classes.index(r["class"]), classes.index(r["judged"])] += 1
    for name in classes:
        mine = [r for r in rows if r["class"] == name]
        if not mine:
            continue
        wrong = Counter(r["judged"] for r in mine if r["judged"] != name)
        per_class[name] = {
            "faces": len(mine),
            "agreement": sum(r["judged"] == name for r in mine) / len(mine),
            "mean_p_intended": float(np.mean([r["p_intended"] for r in mine])),
            "top_confusion": wrong.most_common(1)[0][0] if wrong else None,
            "top_confusion_share": wrong.most_common(1)[0][1] / len(mine) if wrong else 0.0,
        }
    kept = {str(policy): sum(len(v) for v in policy.select(rows).values()) for policy in PREVIEW_POLICIES}
    report = {
        "faces": len(rows),
        "judge": judge_of(records) if records else None,
        "agreement": sum(r["judged"] == r["class"] for r in rows) / max(len(rows), 1),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "intended": list(classes),
        "judged_classes": list(classes),
        "policies": kept,
    }
    with_clip = [r for r in rows if "clip" in r]
    if with_clip:
        report["clip"] = {
            "faces": len(with_clip),
            "agreement_with_intended": sum(r["clip"]["judged"] == r["class"] for r in with_clip) / len(with_clip),
            "agreement_with_judge": sum(r["clip"]["judged"] == r["judged"] for r in with_clip) / len(with_clip),
        }
    return report


def _write_report(pool: Path, report: dict) -> None:
    write_json(pool / REPORT_FILE, report)
    plot_confusion(
        pool / CONFUSION_FILE,
        report["confusion"],
        f"{report['judge']['model']}: intended vs judged ({report['faces']} faces)",
        report["intended"],
        report["judged_classes"],
        ("judged", "intended"),
    )


def _clip_judge(name: str, classes: Sequence[str], device: str | torch.device):
    """CLIP's probabilities of "a photo of a {class} face" per face, or None (with a warning) when the weights
    cannot be had: a hub id offline and not in the local cache."""
    from transformers import CLIPModel, CLIPProcessor

    from fer_synth.core.env import offline

    local = Path(name).expanduser()
    try:
        model = (
            CLIPModel.from_pretrained(
                str(local) if local.exists() else name, local_files_only=local.exists() or offline()
            )
            .to(device)
            .eval()
        )
        processor = CLIPProcessor.from_pretrained(
            str(local) if local.exists() else name, local_files_only=local.exists() or offline()
        )
    except (OSError, ValueError) as e:
        logger.warning(
            f"CLIP judge {name!r} skipped: its weights cannot be loaded here ({str(e).splitlines()[0]}); "
            "pass a local CLIP folder with --clip, or judge online once to cache it"
        )
        return None
    text = processor(text=[CLIP_TEMPLATE.format(c) for c in classes], return_tensors="pt", padding=True).to(device)

    @torch.no_grad()
    def judge(faces: np.ndarray) -> np.ndarray:
        rgb = [np.repeat(face[..., None], 3, axis=2) for face in faces]
        pixels = processor(images=rgb, return_tensors="pt")["pixel_values"].to(device)
        # logits_per_image: CLIP's scaled image-text cosine similarities, [faces, classes]
        return model(**text, pixel_values=pixels).logits_per_image.softmax(-1).cpu().numpy()

    return judge
