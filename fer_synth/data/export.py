"""Kaggle-style folder output: ``OUT/<split>/<class>/<n>.png`` plus ``OUT/manifest.jsonl`` with provenance.

The folder is built beside the target and renamed into place when complete, so an interrupted export
leaves any previous output untouched. :func:`fer_synth.data.readers.read_folder` reads it back, manifest included.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import cv2

from fer_synth.core.atomic import atomic_dir
from fer_synth.core.classes import CLASSES
from fer_synth.core.dataset import SOURCE_NAMES, Split
from fer_synth.core.manifest import MANIFEST


#: The file an export writes beside its split folders (the dataset's attributes); it marks the folder as one.
EXPORT_MARKER = "dataset.json"


def write_folders(out: str | os.PathLike, splits: Mapping[str, Split], attrs: Mapping | None = None) -> Path:
    out = Path(out)
    with atomic_dir(out) as tmp:
        with open(tmp / MANIFEST, "w") as manifest:
            for split_name, split in splits.items():
                for class_name in CLASSES:
                    (tmp / split_name / class_name).mkdir(parents=True)
                for row in range(len(split)):
                    rel = f"{split_name}/{CLASSES[split.labels[row]]}/{row:06d}.png"
                    if not cv2.imwrite(str(tmp / rel), split.images[row]):
                        raise OSError(f"could not write {tmp / rel}")
                    record = {"path": rel, "split": split_name, "label": CLASSES[split.labels[row]],
                              "source": SOURCE_NAMES[split.source[row]], "origin": split.origin[row]}
                    if split.seed[row] >= 0:
                        record.update(prompt=split.prompt[row], seed=int(split.seed[row]), model=split.model[row])
                    manifest.write(json.dumps(record) + "\n")
        (tmp / EXPORT_MARKER).write_text(json.dumps(dict(attrs or {}), indent=2, default=str))
    return out
