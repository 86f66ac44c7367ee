"""Checkpoints: weights as safetensors, everything else as JSON beside them; never a pickle.

``NAME.safetensors`` holds the model's weights, ``NAME.json`` the model name and options, input size,
classes, training config, metrics and the data file's identity. Training state for ``--resume``
(optimizer, scheduler, EMA, loss) is a nested dict split into its tensors (``NAME-state.safetensors``) and the
rest (inside ``NAME.json``), so no Python object is ever unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fer_models.models import create_model
from fer_synth.core.atomic import atomic_file
from fer_synth.core.errors import FerError, MissingPathError

CHECKPOINT_FORMAT = "fer-models-checkpoint"
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
        return {"__dict__": [[split_tensors(k, f"{prefix}.k{i}", tensors), split_tensors(v, f"{prefix}.{i}", tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
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


def save_checkpoint(path_stem: str | os.PathLike, model: nn.Module, meta: dict, state: dict | None = None) -> Path:
    """Write ``STEM.safetensors`` (+ ``STEM-state.safetensors`` when ``state``) and then ``STEM.json``.

    The JSON is written last: it is what marks a checkpoint complete.
    """
    stem = Path(path_stem)
    _save_tensors(stem.with_suffix(".safetensors"), model.state_dict())
    meta = {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, **meta,
            "weights": stem.with_suffix(".safetensors").name}
    if state is not None:
        tensors: dict[str, torch.Tensor] = {}
        meta["state"] = split_tensors(state, "s", tensors)
        meta["state_tensors"] = f"{stem.name}-state.safetensors"
        _save_tensors(stem.parent / meta["state_tensors"], tensors)
    return write_json(stem.with_suffix(".json"), meta)


def read_meta(path: str | os.PathLike) -> dict:
    """The JSON beside a checkpoint (given as its .json, .safetensors or a run folder -> ``best``)."""
    path = resolve_checkpoint(path)
    meta = json.loads(path.read_text())
    if meta.get("format") not in (CHECKPOINT_FORMAT, ENSEMBLE_FORMAT):
        raise FerError(f"{path}: not a fer-models checkpoint or ensemble file")
    if int(meta.get("format_version", -1)) != FORMAT_VERSION:
        raise FerError(f"{path}: checkpoint format version {meta.get('format_version')}, this code reads {FORMAT_VERSION}")
    meta["_path"] = str(path)
    return meta


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / "best.json"
    elif path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.exists():
        raise MissingPathError(f"{path}: no such checkpoint (give a run folder, a .json or a .safetensors file)")
    return path


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a trained model from its checkpoint; returns (model in eval mode, its metadata)."""
    meta = read_meta(path)
    if meta["format"] != CHECKPOINT_FORMAT:
        raise FerError(f"{meta['_path']}: an ensemble file, not a single model's checkpoint")
    model = create_model(meta["model"], num_classes=len(meta["classes"]), **meta.get("model_options", {}))
    weights = Path(meta["_path"]).parent / meta["weights"]
    model.load_state_dict(load_file(str(weights)))
    return model.to(device).eval(), meta


def load_state(meta: dict) -> dict:
    """The training state saved with a checkpoint (for resume)."""
    tensors = load_file(str(Path(meta["_path"]).parent / meta["state_tensors"]))
    return join_tensors(meta["state"], tensors)
