"""The pretrained models shipped inside the package (no download, ever).

* ``builtin``: the default model everywhere (``predict``, the judge, the demo). Trained on FER+'s crowd votes
  (Barsoum et al., ICMI 2016, arXiv:1608.01041) as soft targets, eight classes (FER2013's seven, then contempt),
  with photo-domain augmentation, so that it judges generated photographs, not only 48 px web crops.
* ``builtin-fer2013``: the same architecture trained on FER2013's original seven-class labels.

Each is ``weights/<name>.safetensors`` plus ``weights/<name>.json``: a checkpoint in the same format as a training
run's ``best.*`` (:mod:`fer_models.checkpoint`), calibration included, so the name works wherever a run or
checkpoint is accepted (``evaluate``, ``ensemble``, ``predict``, ``export``, the judge), and ``create_model(name)``
builds its architecture with the shipped weights loaded (a starting point for fine-tuning, too). What they are, how
they were trained and how well they do: docs/builtin-model.md; ``python bench/train_builtin.py`` retrains them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from torch import nn

from fer_models.models._registry import register_model

logger = logging.getLogger(__name__)

BUILTIN = "builtin"
BUILTIN_FER2013 = "builtin-fer2013"
SHIPPED: tuple[str, ...] = (BUILTIN, BUILTIN_FER2013)
WEIGHTS_DIR = Path(__file__).parent / "weights"


def shipped_json(name: str = BUILTIN) -> Path:
    """The metadata file of a shipped model."""
    return WEIGHTS_DIR / f"{name}.json"


def shipped_weights(name: str = BUILTIN) -> Path:
    """The weights file of a shipped model."""
    return WEIGHTS_DIR / f"{name}.safetensors"


def shipped_name(path: str | os.PathLike) -> str | None:
    """The name of the shipped model whose metadata file ``path`` is, else None."""
    resolved = Path(path).resolve()
    return next((name for name in SHIPPED if shipped_json(name).resolve() == resolved), None)


def shipped_meta(name: str = BUILTIN) -> dict:
    """A shipped checkpoint's metadata (architecture, options, classes, TTA, calibration, training record)."""
    return json.loads(shipped_json(name).read_text())


def _build_shipped(name: str, num_classes: int | None, **kwargs) -> nn.Module:
    from fer_models.models._factory import create_model

    meta = shipped_meta(name)
    # Another class count keeps the shipped features and starts a new classifier: load_weights skips tensors of
    # another shape, as timm does for a pretrained model.
    if num_classes is not None and num_classes != len(meta["classes"]):
        logger.info(
            "%s: %d classes asked for, it was trained on %d; its classifier starts afresh",
            name,
            num_classes,
            len(meta["classes"]),
        )
    return create_model(
        meta["model"],
        num_classes=num_classes or len(meta["classes"]),
        weights=shipped_weights(name),
        **{**meta.get("model_options", {}), **kwargs},
    )


@register_model(
    BUILTIN,
    input_size=40,
    in_chans=1,
    recipe=BUILTIN,
    paper="the shipped pretrained model, FER+ votes (eight classes): docs/builtin-model.md",
)
def builtin(num_classes: int | None = None, **kwargs) -> nn.Module:
    return _build_shipped(BUILTIN, num_classes, **kwargs)


@register_model(
    BUILTIN_FER2013,
    input_size=40,
    in_chans=1,
    recipe=BUILTIN_FER2013,
    paper="the shipped pretrained model, FER2013 labels (seven classes): docs/builtin-model.md",
)
def builtin_fer2013(num_classes: int | None = None, **kwargs) -> nn.Module:
    return _build_shipped(BUILTIN_FER2013, num_classes, **kwargs)
