"""Building a registered model, optionally from a local ``.safetensors`` file of weights."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torch import nn

from fer_models.models._registry import get_spec
from fer_synth.core.errors import FerError, MissingPathError

logger = logging.getLogger(__name__)


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
    from safetensors import SafetensorError

    from fer_models.checkpoint import read_tensors  # here: the checkpoint module builds models through this one

    path = Path(path)
    if not path.exists():
        raise MissingPathError(f"{path}: no such weights file")
    if path.suffix != ".safetensors":
        raise FerError(f"{path}: weights must be a .safetensors file (pickled checkpoints are never loaded)")
    try:
        state = read_tensors(path)[0]
    except (OSError, ValueError, SafetensorError) as e:
        raise FerError(
            f"{path}: not a readable .safetensors file ({str(e).splitlines()[0][:200]}); the file is damaged or "
            "incomplete: download or export it again"
        ) from None
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise FerError(f"{path}: none of its {len(state)} tensors matches {type(model).__name__}'s names and shapes")
    on_meta = any(t.is_meta for t in own.values())  # a check or a count, not the model that will run: no word
    if (skipped := [k for k in state if k not in matched]) and not on_meta:  # on purpose (another head): said
        logger.info(
            f"{path}: {len(matched)} tensors loaded, {len(skipped)} left out (names or shapes this "
            f"{type(model).__name__} lacks), e.g. {', '.join(skipped[:3])}"
        )
    # a model built on the meta device (to count its parameters) has no storage to copy into: it takes the tensors
    model.load_state_dict(matched, strict=False, assign=on_meta)
    return len(matched), len(state) - len(matched)
