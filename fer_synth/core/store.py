"""The HDF5 contract between ``fer_synth`` and ``fer_models`` (format described in docs/hdf5-format.md).

One file holds the ``train``, ``val`` and ``test`` splits. Per split, a group with the datasets

* ``images``: uint8 [N, 48, 48], chunked (1024 rows), optionally gzip/lzf-compressed
* ``labels``: int64 [N], indices into the file's class list (FER2013's: 0 angry .. 6 neutral)
* ``soft_labels`` (only in files that have them): float32 [N, C], each row's label distribution (FER+ votes)
* ``source``: uint8 enum {real: 0, synthetic: 1}
* ``origin``: str, CSV row number or file path the row came from
* ``prompt``, ``seed``, ``model``: generation provenance ("" / -1 for real rows)
* ``judge_score``: float32, a judge's probability of the row's label (NaN when not judged); optional: files
  written before it existed read as all-NaN, and readers that do not know it ignore it
* ``parents``: str, for a row an oversampler made (``balance --method ros|smote|...``) the JSON list of the
  ``origin`` of the real rows it was made from ("" otherwise); optional like ``judge_score`` (older files read as "")

Root attributes: ``format``, ``format_version``, ``classes`` (the class names in label order), ``image_size``,
``writer`` (tool and version), ``command``, ``created``, ``fingerprint`` (content hash) and
``synthetic_in_eval`` (True only when the user forced synthetic rows into val/test). Free-form provenance goes
into root attributes as JSON. The seed's and PAtt-Lite's key names (``X_train``, ``y_train``, ``X_valid``,
``y_valid``, ``X_test``, ``y_test``) are soft links to the split datasets.

The classes may be any list (FER2013's seven unless the data says otherwise, e.g. FER+'s eight); readers of
the first release refuse a list other than FER2013's with a clear message, so the format version stays 1.
Writing is atomic: a temporary file in the target directory is renamed over the target when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from importlib.metadata import version as package_version
from pathlib import Path

import h5py
import numpy as np

from fer_synth.core.atomic import atomic_file
from fer_synth.core.classes import ClassList, class_list
from fer_synth.core.dataset import COLUMNS, SOURCE_NAMES, TEXT_COLUMNS, Dataset, Split, shared_classes
from fer_synth.core.errors import FerError, InvalidOptionError, MissingPathError, SplitNotFoundError
from fer_synth.core.images import printable

FORMAT = "fer-synth-hdf5"
FORMAT_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
LEGACY_LINKS: dict[str, str] = {
    "X_train": "/train/images",
    "y_train": "/train/labels",
    "X_valid": "/val/images",
    "y_valid": "/val/labels",
    "X_test": "/test/images",
    "y_test": "/test/labels",
}
_SOURCE_DTYPE = h5py.enum_dtype(dict(zip(SOURCE_NAMES, range(len(SOURCE_NAMES)))), basetype="u1")
_STR_DTYPE = h5py.string_dtype("utf-8")
_CHUNK_ROWS = 1024
COMPRESSIONS = (None, "gzip", "lzf")
#: Columns a file may lack (added after version 1 without changing its layout for older readers).
OPTIONAL_COLUMNS = frozenset({"judge_score", "parents"})


class FormatError(FerError, ValueError):
    """A file that is not a fer_synth HDF5 file of a version this code reads."""


_INT64 = np.iinfo(np.int64)


def fingerprint(splits: Mapping[str, Split]) -> str:
    """A content hash of images and labels per split: the data file's identity for checkpoints."""
    h = hashlib.sha256()
    for name in sorted(splits):
        split = splits[name]
        h.update(name.encode())
        h.update(np.ascontiguousarray(split.images).tobytes())
        h.update(split.labels.astype("<i8").tobytes())
        h.update(split.source.astype("u1").tobytes())
        if split.soft_labels is not None:
            h.update(split.soft_labels.astype("<f4").tobytes())
    return h.hexdigest()[:16]


def _json_attr(value) -> str | int | float | bool:
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64.min <= value <= _INT64.max:
        return str(value)  # HDF5 holds 64-bit integers; any --seed is accepted, so a larger one keeps its digits
    if isinstance(value, (str, int, float, bool, np.integer, np.floating, np.bool_)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def write(
    path: str | os.PathLike, splits: Mapping[str, Split], attrs: Mapping | None = None, compression: str | None = None
) -> Path:
    """Write ``splits`` (keys among ``train``, ``val``, ``test``) to ``path`` atomically; return the path.

    ``attrs`` become root attributes (non-scalar values are stored as JSON strings). ``compression``
    (``gzip`` or ``lzf``) compresses the images; the default stores them uncompressed because 48x48 faces
    shrink by under 10% while reading slows 10-20x (``bench/pack_fer2013.py`` measures both).
    """
    path = Path(path)
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise InvalidOptionError(f"unknown split(s) {sorted(unknown)}; the HDF5 contract has {', '.join(SPLITS)}")
    sizes = {s.images.shape[1:] for s in splits.values() if len(s)}
    if len(sizes) > 1:
        raise InvalidOptionError(f"all splits must share one image size, got {sorted(sizes)}")
    size = sizes.pop() if sizes else (48, 48)
    classes = shared_classes(splits)
    root = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "classes": json.dumps(list(classes)),
        "image_size": json.dumps(list(size)),
        "writer": f"fer_synth {package_version('fer-synth')}",
        "command": " ".join(sys.argv),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fingerprint(splits),
        "synthetic_in_eval": any(splits[s].n_synthetic for s in ("val", "test") if s in splits),
    }
    with atomic_file(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in {**root, **dict(attrs or {})}.items():
            f.attrs[key] = _json_attr(value)
        for name, split in splits.items():
            _write_split(f.create_group(name), split, compression)
        for link, target in LEGACY_LINKS.items():
            if target.split("/")[1] in splits:
                f[link] = h5py.SoftLink(target)
    return path


def _write_split(group: h5py.Group, split: Split, compression: str | None) -> None:
    n = len(split)
    if compression not in COMPRESSIONS:
        raise FerError(f"unknown compression {compression!r}; choose {', '.join(map(str, COMPRESSIONS))}")
    chunks = (min(_CHUNK_ROWS, n), *split.images.shape[1:]) if n else None  # HDF5 chunks no empty dataset
    group.create_dataset("images", data=split.images, chunks=chunks, compression=compression if n else None)
    group.create_dataset("labels", data=split.labels.astype(np.int64))
    if split.soft_labels is not None:
        group.create_dataset("soft_labels", data=split.soft_labels.astype(np.float32))
    group.create_dataset("source", data=split.source, dtype=_SOURCE_DTYPE)
    group.create_dataset("seed", data=split.seed.astype(np.int64))
    group.create_dataset("judge_score", data=split.judge_score.astype(np.float32))
    for name in TEXT_COLUMNS:
        group.create_dataset(
            name,
            data=[printable(v) for v in getattr(split, name).astype(str)],
            dtype=_STR_DTYPE,
            compression="gzip" if n else None,
        )
    group.attrs["num_images"] = n
    group.attrs["num_synthetic"] = split.n_synthetic


def read_attrs(path: str | os.PathLike) -> dict:
    """Root attributes of a fer_synth HDF5 file (JSON strings decoded), after checking its format."""
    path = Path(path)
    if not path.exists():
        raise MissingPathError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _decode_attr(v) for k, v in f.attrs.items()}
            attrs["splits"] = [s for s in SPLITS if s in f]
    except OSError as e:
        raise FormatError(f"{path}: not an HDF5 file ({e})") from None
    if attrs.get("format") != FORMAT:
        raise FormatError(f"{path}: not a fer_synth HDF5 file (write one with `fer-synth pack` or `fer-synth balance`)")
    version = attrs.get("format_version")
    version = version.item() if isinstance(version, np.generic) else version
    if isinstance(version, bool) or not isinstance(version, int) or version != FORMAT_VERSION:
        raise FormatError(
            f"{path}: format version {version!r}, this fer_synth {package_version('fer-synth')} reads version "
            f"{FORMAT_VERSION}; "
            "rewrite the file with this version's `fer-synth pack`/`balance` or install a matching fer_synth"
        )
    names = attrs.get("classes")
    try:
        class_list(names)
    except (ValueError, TypeError):
        raise FormatError(
            f"{path}: its class list {names!r} is not a list of distinct names; write the file again "
            "with `fer-synth pack` or `fer-synth balance`"
        ) from None
    return attrs


def is_store_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a fer_synth HDF5 file (of any version): an earlier output that pack or balance may
    replace without --overwrite, unlike any other file."""
    try:
        with h5py.File(path, "r") as f:
            return _decode_attr(f.attrs.get("format")) == FORMAT
    except (OSError, ValueError):
        return False


def split_sizes(path: str | os.PathLike) -> dict[str, int]:
    """Rows per split of a fer_synth HDF5 file, without reading the rows."""
    names = read_attrs(path)["splits"]
    with h5py.File(path, "r") as f:
        return {name: len(f[name]["labels"]) for name in names}


def classes_of(path: str | os.PathLike) -> ClassList:
    """The class list of a fer_synth HDF5 file (what its label indices mean), after checking its format."""
    return class_list(read_attrs(path)["classes"])


def _decode_attr(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _read_group(group: h5py.Group, provenance: bool, classes: ClassList, rows: slice = slice(None)) -> Split:
    data = {}
    try:
        for name in COLUMNS if provenance else ("images", "labels", "source", "seed"):
            if name in OPTIONAL_COLUMNS and name not in group:
                continue  # written by a later version of the format; the Split fills its default
            ds = group[name]
            data[name] = np.asarray(ds.asstr()[rows], dtype=object) if name in TEXT_COLUMNS else ds[rows]
        if "soft_labels" in group:
            data["soft_labels"] = group["soft_labels"][rows]
        return Split(**data, classes=classes)
    except (KeyError, ValueError, TypeError, OSError) as e:
        raise FormatError(
            f"{group.file.filename}: split {group.name.strip('/')!r} is damaged ({e}); write the file "
            "again with `fer-synth pack` or `fer-synth balance`"
        ) from None


def read(path: str | os.PathLike, splits: tuple[str, ...] | None = None, provenance: bool = True) -> Dataset:
    """Read every split (or the named ones) into a :class:`Dataset`; its ``attrs`` are the root attributes.

    ``provenance=False`` skips the text columns (origin, prompt, model, parents) for speed.
    """
    attrs = read_attrs(path)
    names = splits or tuple(attrs["splits"])
    missing = [name for name in names if name not in attrs["splits"]]
    if missing:
        raise SplitNotFoundError(f"{path}: no split {missing[0]!r}; it has {', '.join(attrs['splits'])}")
    classes = class_list(attrs["classes"])
    with h5py.File(path, "r") as f:
        return Dataset({name: _read_group(f[name], provenance, classes) for name in names}, attrs=attrs)


def read_split(path: str | os.PathLike, split: str, provenance: bool = True) -> Split:
    """Read one split (see :func:`read`)."""
    return read(path, (split,), provenance)[split]


def iter_split(path: str | os.PathLike, split: str, rows: int = _CHUNK_ROWS) -> Iterator[Split]:
    """One split in chunks of ``rows`` rows, provenance included: for streaming a large file through a writer
    without holding it whole in memory."""
    attrs = read_attrs(path)
    if split not in attrs["splits"]:
        raise SplitNotFoundError(f"{path}: no split {split!r}; it has {', '.join(attrs['splits'])}")
    classes = class_list(attrs["classes"])
    with h5py.File(path, "r") as f:
        n = len(f[split]["labels"])
        for start in range(0, n, rows):
            yield _read_group(f[split], True, classes, slice(start, min(start + rows, n)))
