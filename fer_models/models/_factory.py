"""Building a registered model, optionally from a local ``.safetensors`` file of weights."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from fer_models.models._registry import get_spec
from fer_synth.core.errors import FerError, MissingPathError


def create_model(
    name: str, num_classes: int | None = None, weights: str | os.PathLike | None = None, **kwargs
) -> nn.Module:
    """Build a registered model. The module gets a ``spec`` attribute with its input size and channels.

    ``num_classes``: None builds the model's own default (FER2013's seven; a shipped model's own classes).
    ``weights``: a local ``.safetensors`` file to initialise from (see :func:`load_weights`).
    """
    spec = get_spec(name)
    model = spec.builder(**({} if num_classes is None else {"num_classes": num_classes}), **kwargs)
    model.spec = spec
    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model: nn.Module, path: str | os.PathLike) -> tuple[int, int]:
    """Copy every tensor of a ``.safetensors`` file whose name and shape match into ``model``.

    Returns (loaded, skipped). Heads of another class count are skipped on purpose (fine-tuning from
    ImageNet); a file that matches nothing is an error, since it is surely the wrong file.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise MissingPathError(f"{path}: no such weights file")
    if path.suffix != ".safetensors":
        raise FerError(f"{path}: weights must be a .safetensors file (pickled checkpoints are never loaded)")
    state = load_file(str(path))
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise FerError(f"{path}: none of its {len(state)} tensors matches {type(model).__name__}'s names and shapes")
    # a model built on the meta device (to count its parameters) has no storage to copy into: it takes the tensors
    model.load_state_dict(matched, strict=False, assign=any(t.is_meta for t in own.values()))
    return len(matched), len(state) - len(matched)
