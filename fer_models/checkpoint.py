"""Checkpoints: weights as safetensors, everything else as JSON beside them; never a pickle.

``NAME.safetensors`` holds the model's weights, ``NAME.json`` the model name and options, input size,
classes, training config, metrics and the data file's identity; the JSON is written last and marks the
checkpoint complete. The training state for ``--resume`` (model, optimizer, scheduler, EMA, loss, the epoch and
its history) is ONE file, ``last-state.safetensors``: its tensors, and the rest as JSON in the file's header,
so a kill at any instant leaves either the previous state or the new one, never a mix, and no Python object
is ever unpickled.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load, load_file, save_file
from torch import nn

from fer_models.models import create_model
from fer_models.models.builtin import SHIPPED, shipped_json, shipped_name
from fer_synth.core.atomic import atomic_file
from fer_synth.core.errors import FerError, MissingPathError

CHECKPOINT_FORMAT = "fer-models-checkpoint"
STATE_FORMAT = "fer-models-training-state"
ENSEMBLE_FORMAT = "fer-models-ensemble"
FORMAT_VERSION = 1


def write_json(path: str | os.PathLike, obj) -> Path:
    def write(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(obj, indent=2, default=str) + "\n")

    with atomic_file(path) as tmp:
        write(str(tmp))
    return Path(path)


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp))


def split_tensors(obj, prefix: str, tensors: dict[str, torch.Tensor]):
    """A JSON-able copy of a nested state, its tensors moved into ``tensors`` under path-like keys."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {
            "__dict__": [
                [split_tensors(k, f"{prefix}.k{i}", tensors), split_tensors(v, f"{prefix}.{i}", tensors)]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, (list, tuple)):
        return [split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def join_tensors(obj, tensors: dict[str, torch.Tensor]):
    """The inverse of :func:`split_tensors` (dict keys keep their types, e.g. optimizer's int param ids)."""
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {join_tensors(k, tensors): join_tensors(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [join_tensors(v, tensors) for v in obj]
    return obj


def save_checkpoint(path_stem: str | os.PathLike, model: nn.Module, meta: dict) -> Path:
    """Write ``STEM.safetensors`` and then ``STEM.json``, the file that marks the checkpoint complete."""
    stem = Path(path_stem)
    _save_tensors(stem.with_suffix(".safetensors"), model.state_dict())
    meta = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        **meta,
        "weights": stem.with_suffix(".safetensors").name,
    }
    return write_json(stem.with_suffix(".json"), meta)


STATE_KEY = "fer_models.state"


def save_state(path: str | os.PathLike, state: dict, meta: dict) -> Path:
    """Write a training state and its metadata as one safetensors file, atomically: tensors as tensors, the
    rest of ``state`` and ``meta`` as JSON in the file's header."""
    tensors: dict[str, torch.Tensor] = {}
    header = {
        "format": STATE_FORMAT,
        "format_version": FORMAT_VERSION,
        "meta": meta,
        "state": split_tensors(state, "s", tensors),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata={STATE_KEY: json.dumps(header, default=str)})
    return Path(path)


def _utf8_name(path: Path) -> bool:
    try:
        str(path).encode()
    except UnicodeEncodeError:
        return False
    return True


def read_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, header metadata) of a safetensors file. safetensors opens only names that are valid UTF-8, and a
    folder's name on Linux is bytes (a run folder named in Latin-1, say): such a file is read into memory and
    parsed there. Damage raises OSError, ValueError or SafetensorError."""
    path = Path(path)
    if _utf8_name(path):
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    data = path.read_bytes()
    tensors = load(data)  # checks the whole layout first; the header below is then well formed
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    return tensors, header.get("__metadata__") or {}


def load_state(path: str | os.PathLike) -> tuple[dict, dict]:
    """(state, meta) from a file :func:`save_state` wrote; a damaged or foreign file is a one-line error."""
    path = Path(path)
    try:
        tensors, metadata = read_tensors(path)
        header = json.loads(metadata.get(STATE_KEY, "null"))
    except (OSError, ValueError, SafetensorError) as e:
        raise FerError(
            f"{path}: not a readable training state ({str(e).splitlines()[0]}); start the run again with --overwrite"
        ) from None
    if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
        raise FerError(f"{path}: not a fer-models training state; start the run again with --overwrite")
    return join_tensors(header["state"], tensors), header["meta"]


def read_meta(path: str | os.PathLike) -> dict:
    """The JSON beside a checkpoint (given as its .json, .safetensors or a run folder -> ``best``)."""
    path = resolve_checkpoint(path)
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FerError(
            f"{path}: not a fer-models checkpoint or ensemble file ({e}); give a run folder, a "
            "checkpoint's .json or .safetensors, or an ensemble .json"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") not in (CHECKPOINT_FORMAT, ENSEMBLE_FORMAT):
        raise FerError(f"{path}: not a fer-models checkpoint or ensemble file")
    version = meta.get("format_version")
    if isinstance(version, bool) or version != FORMAT_VERSION:  # JSON's true is no version, though True == 1
        raise FerError(
            f"{path}: checkpoint format version {version!r}, this code reads {FORMAT_VERSION}; the file is "
            "damaged or from another version: train (or build) it again"
        )
    meta["_path"] = str(path)
    return meta


#: Checkpoint suffixes that are pickles: loading one can run arbitrary code, so they are refused.
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl")


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run folder, a checkpoint's ``.json`` or ``.safetensors``, an ensemble ``.json``, or a shipped model's name
    (``builtin``, ``builtin-fer2013``; a folder of that name is ``./builtin``) -> the JSON file."""
    if str(path) in SHIPPED:
        return shipped_json(str(path))
    given = path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise FerError(
            f"{path}: a pickled checkpoint, which is never loaded (it can run code); give a fer-models run "
            "folder, checkpoint .json/.safetensors or ensemble .json"
        )
    if path.is_dir():
        path = path / "best.json"
    elif path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.exists():
        if given.suffix == ".safetensors" and given.exists():
            raise MissingPathError(
                f"{given} has no {path.name} beside it: a fer-models checkpoint is the weights plus "
                "that JSON (a run folder holds both)"
            )
        raise MissingPathError(f"{path}: no such checkpoint (give a run folder, a .json or a .safetensors file)")
    return path


def input_files(spec: str | os.PathLike, _seen: set[Path] | None = None) -> list[Path]:
    """Everything a model spec reads, which no output may overwrite: the spec as given (a run folder), its
    checkpoint JSON and weights, and an ensemble's members' (recursively)."""
    json_file = resolve_checkpoint(spec)
    seen = set() if _seen is None else _seen
    if json_file.resolve() in seen:
        return []
    seen.add(json_file.resolve())
    found = [json_file] if str(spec) in SHIPPED else [Path(spec), json_file]
    try:
        meta = json.loads(json_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return found  # not a checkpoint: loading it will say so
    if not isinstance(meta, dict):
        return found
    if isinstance(meta.get("weights"), str):
        found.append(json_file.parent / meta["weights"])
    members = meta.get("members") if meta.get("format") == ENSEMBLE_FORMAT else None
    for member in members if isinstance(members, list) else []:
        name = member.get("checkpoint") if isinstance(member, dict) else None
        if isinstance(name, str):
            path = name if name in SHIPPED else json_file.parent / name
            try:
                found += input_files(path, seen)
            except FerError:
                found.append(Path(path))
    return found


def report_dir(path: str | os.PathLike) -> Path:
    """Where reports about a checkpoint go by default: beside it, or ``runs/<name>`` for a shipped model (never
    inside the installed package)."""
    json_file = resolve_checkpoint(path)
    name = shipped_name(json_file)
    return Path("runs") / name if name else json_file.parent


def member_checkpoints(meta: dict) -> list[Path]:
    """The JSON files of an ensemble's members (``meta`` from :func:`read_meta`): paths relative to the ensemble
    file's folder, or a shipped model's name."""
    base = Path(meta["_path"]).parent
    return [
        resolve_checkpoint(m["checkpoint"] if m["checkpoint"] in SHIPPED else base / m["checkpoint"])
        for m in meta["members"]
    ]


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a trained model from its checkpoint; returns (model in eval mode, its metadata)."""
    meta = read_meta(path)
    if meta["format"] != CHECKPOINT_FORMAT:
        raise FerError(f"{meta['_path']}: an ensemble file, not a single model's checkpoint")
    if (problem := _checkpoint_problem(meta)) is not None:
        raise FerError(f"{meta['_path']}: a damaged checkpoint ({problem}); train the model again")
    try:
        model = create_model(meta["model"], num_classes=len(meta["classes"]), **meta.get("model_options", {}))
        weights = Path(meta["_path"]).parent / meta["weights"]
    except (KeyError, TypeError) as e:
        raise FerError(f"{meta['_path']}: a damaged checkpoint (missing or wrong {e}); train the model again") from None
    try:
        model.load_state_dict(read_tensors(weights)[0])
    except (OSError, ValueError, SafetensorError, RuntimeError) as e:
        raise FerError(
            f"{weights}: its tensors do not fit {meta['model']} ({str(e).splitlines()[0][:200]}); the "
            "weights file is damaged or belongs to another model"
        ) from None
    return model.to(device).eval(), meta


def _checkpoint_problem(meta: dict) -> str | None:
    """What in a checkpoint's JSON the code that builds and runs its model cannot use, or None. A hand-edited or
    foreign file otherwise fails deep inside that code (a model name that is a number, an input size that is text,
    a negative temperature that silently turns every probability around)."""
    for key, kind in (("model", str), ("weights", str), ("input_size", int), ("in_chans", int)):
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{key!r} is missing or not a {kind.__name__}"
    if meta["input_size"] < 1 or meta["in_chans"] not in (1, 3):
        return f"input {meta['in_chans']}x{meta['input_size']}x{meta['input_size']} is no image size"
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        return "'classes' is missing or not a list of class names"
    if len(set(classes)) != len(classes):
        return "'classes' names a class twice"
    if not isinstance(meta.get("model_options", {}), dict):
        return "'model_options' is not a mapping"
    calibration = meta.get("calibration", {})
    temperatures = calibration.get("temperature", {}) if isinstance(calibration, dict) else None
    if not isinstance(temperatures, dict) or not all(
        isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t > 0
        for t in temperatures.values()
    ):
        return "its calibration temperatures are not positive numbers"
    return None
