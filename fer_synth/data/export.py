"""Datasets as files other tools read: Kaggle-style folders, Hugging Face ImageFolder, WebDataset shards.

* :func:`write_folders` (``balance``/``pack`` with a folder ``--out``): ``OUT/<split>/<class>/<n>.png`` plus
  ``OUT/manifest.jsonl`` with provenance; :func:`fer_synth.core.folders.read_folder` reads it back.
* :func:`export` (``fer-synth export H5 --format ...``), streaming from an HDF5 file a chunk at a time:

  - ``imagefolder``: Hugging Face ``datasets``' ImageFolder layout, ``OUT/<split>/<class>/<n>.png`` with
    ``OUT/<split>/metadata.jsonl`` (``file_name``, ``split``, ``label``, ``label_index``, ``source``, ``origin``,
    ``prompt``, ``seed``, ``model``, ``judge_score`` (-1: not judged), ``parents`` for an oversampled row, and
    ``soft_labels`` when the file has them);
    ``datasets.load_dataset("imagefolder", data_dir=OUT)`` loads it (``val`` becomes ``validation``).
  - ``webdataset``: tar shards ``OUT/<split>-<k>.tar`` of at most ``shard_size`` samples, each sample a
    ``<key>.png`` and a ``<key>.json`` with the same fields (keys ``<split>-<row>``), as WebDataset reads them.

Every output folder is built beside the target and renamed into place when complete, so an interrupted export
leaves any previous output untouched; it holds ``dataset.json`` (the source's attributes and class list).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_synth.core import store
from fer_synth.core.atomic import atomic_dir
from fer_synth.core.dataset import SOURCE_NAMES, Split, shared_classes
from fer_synth.core.errors import FerError
from fer_synth.core.folders import EXPORT_MARKER
from fer_synth.core.images import png_bytes
from fer_synth.core.manifest import MANIFEST
from fer_synth.core.outputs import has_file, output_folder
from fer_synth.core.registry import Registry

METADATA = "metadata.jsonl"  # what Hugging Face's ImageFolder reads per split folder
DEFAULT_SHARD_SIZE = 10_000  # samples per WebDataset shard (~20 MB of 48x48 PNGs)
DEFAULT_FORMAT = "imagefolder"
COMMAND = "fer-synth export"


def row_record(split_name: str, split: Split, row: int, targets: np.ndarray | None = None) -> dict:
    """One row's label and provenance as JSON-able data (what every export writes beside the image). Like the
    seed's -1, a judge score of -1 means not judged (JSON has no NaN, and one column keeps one type).
    ``targets``: ``split.targets()`` (made once per chunk) when the records carry soft labels."""
    score = float(split.judge_score[row])
    record = {
        "split": split_name,
        "label": split.classes[split.labels[row]],
        "label_index": int(split.labels[row]),
        "source": SOURCE_NAMES[split.source[row]],
        "origin": str(split.origin[row]),
        "prompt": str(split.prompt[row]),
        "seed": int(split.seed[row]),
        "model": str(split.model[row]),
        "judge_score": -1.0 if np.isnan(score) else round(score, 6),
    }
    if split.parents[row]:
        record["parents"] = json.loads(split.parents[row])
    if targets is not None:
        record["soft_labels"] = [round(float(p), 6) for p in targets[row]]
    return record


def write_folders(out: str | os.PathLike, splits: Mapping[str, Split], attrs: Mapping | None = None) -> Path:
    out = Path(out)
    classes = shared_classes(splits)
    with atomic_dir(out) as tmp:
        with open(tmp / MANIFEST, "w") as manifest:
            for split_name, split in splits.items():
                for class_name in classes:
                    (tmp / split_name / class_name).mkdir(parents=True)
                for row in range(len(split)):
                    rel = f"{split_name}/{classes[split.labels[row]]}/{row:06d}.png"
                    (tmp / rel).write_bytes(png_bytes(split.images[row]))
                    record = {
                        "path": rel,
                        "split": split_name,
                        "label": classes[split.labels[row]],
                        "source": SOURCE_NAMES[split.source[row]],
                        "origin": split.origin[row],
                    }
                    if split.seed[row] >= 0:
                        record.update(prompt=split.prompt[row], seed=int(split.seed[row]), model=split.model[row])
                    if split.parents[row]:
                        record["parents"] = json.loads(split.parents[row])
                    manifest.write(json.dumps(record) + "\n")
        _write_marker(tmp, attrs, classes)
    return out


def _write_marker(folder: Path, attrs: Mapping | None, classes: Iterable[str], **extra) -> None:
    (folder / EXPORT_MARKER).write_text(
        json.dumps({**dict(attrs or {}), "classes": list(classes), **extra}, indent=2, default=str)
    )


# --- exports of an HDF5 file, streamed a chunk at a time ---------------------------------------------

#: ``writer(folder, split_name, chunks, soft_labels, shard_size) -> images written``, by format name.
EXPORT_FORMATS: Registry[Callable[..., int]] = Registry("export format")


@dataclass
class ExportResult:
    out: Path
    format: str
    counts: dict[str, int] = field(default_factory=dict)  # images written per split


def export(
    h5: str | os.PathLike,
    out: str | os.PathLike,
    format: str = DEFAULT_FORMAT,
    shard_size: int = DEFAULT_SHARD_SIZE,
    overwrite: bool = False,
) -> ExportResult:
    """Write the fer_synth HDF5 file ``h5`` to the folder ``out`` in ``format`` (see the module docstring).

    Streams each split in chunks; ``out`` must be new, empty or an earlier export unless ``overwrite``, and is
    replaced whole at the end (an error or a kill leaves an earlier one as it was).
    """
    writer = EXPORT_FORMATS.get(format)
    if shard_size < 1:
        raise FerError(f"the shard size must be at least 1 sample, got {shard_size}")
    attrs = store.read_attrs(h5)
    out = Path(out)
    # Every split's records get the same fields (ImageFolder wants one schema): soft labels if any split has them.
    firsts = [next(store.iter_split(h5, name, 1), None) for name in attrs["splits"]]
    soft = any(first is not None and first.soft_labels is not None for first in firsts)
    result = ExportResult(out, format)
    # Built beside OUT and swapped in whole at the end: an error or a kill leaves any earlier OUT as it was.
    with output_folder(
        out, command=COMMAND, is_own=has_file(EXPORT_MARKER), overwrite=overwrite, inputs=[h5], whole=True, lock=None
    ) as tmp:
        for name in attrs["splits"]:
            result.counts[name] = writer(tmp, name, store.iter_split(h5, name), soft, shard_size)
        _write_marker(
            tmp,
            {k: v for k, v in attrs.items() if k != "classes"},
            attrs["classes"],
            export={"format": format, "source": str(h5), "counts": result.counts},
        )
    return result


@EXPORT_FORMATS.register("imagefolder")
def _imagefolder(folder: Path, name: str, chunks: Iterable[Split], soft: bool, shard_size: int) -> int:
    split_dir = folder / name
    split_dir.mkdir()
    row, class_dirs = 0, set()
    with open(split_dir / METADATA, "w") as metadata:
        for chunk in chunks:
            targets = chunk.targets() if soft else None
            for k in range(len(chunk)):
                class_name = chunk.classes[chunk.labels[k]]
                if class_name not in class_dirs:
                    (split_dir / class_name).mkdir()
                    class_dirs.add(class_name)
                file_name = f"{class_name}/{row:06d}.png"
                (split_dir / file_name).write_bytes(png_bytes(chunk.images[k]))
                metadata.write(json.dumps({"file_name": file_name, **row_record(name, chunk, k, targets)}) + "\n")
                row += 1
    return row


@EXPORT_FORMATS.register("webdataset")
def _webdataset(folder: Path, name: str, chunks: Iterable[Split], soft: bool, shard_size: int) -> int:
    row, shard = 0, None
    try:
        for chunk in chunks:
            targets = chunk.targets() if soft else None
            for k in range(len(chunk)):
                if row % shard_size == 0:
                    if shard is not None:
                        shard.close()
                    shard = tarfile.open(  # noqa: SIM115 (one shard open at a time, closed when full or at the end)
                        folder / f"{name}-{row // shard_size:06d}.tar", "w", format=tarfile.USTAR_FORMAT
                    )
                key = f"{name}-{row:07d}"
                _add(shard, f"{key}.png", png_bytes(chunk.images[k]))
                _add(shard, f"{key}.json", json.dumps(row_record(name, chunk, k, targets)).encode())
                row += 1
    finally:
        if shard is not None:
            shard.close()
    return row


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    """A member with fixed owner, mode and time, so that the same data gives byte-identical shards."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o444, 0
    archive.addfile(info, io.BytesIO(data))
