"""``builtin``: the pretrained FER2013 model shipped inside the package (no download, ever).

Its files are ``weights/builtin.safetensors`` and ``weights/builtin.json``: a checkpoint in the same format as
a training run's ``best.*`` (:mod:`fer_models.checkpoint`), so ``builtin`` works wherever a run or checkpoint
is accepted (``evaluate``, ``ensemble``, ``predict``, ``export``, the judge), and ``create_model("builtin")``
builds its architecture with the shipped weights loaded (a starting point for fine-tuning, too). What it is,
how it was trained and how well it does: docs/builtin-model.md; ``python bench/train_builtin.py`` retrains it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from torch import nn

from fer_models.models._registry import register_model

logger = logging.getLogger(__name__)

BUILTIN = "builtin"
WEIGHTS_DIR = Path(__file__).parent / "weights"
BUILTIN_JSON = WEIGHTS_DIR / "builtin.json"
BUILTIN_WEIGHTS = WEIGHTS_DIR / "builtin.safetensors"


def builtin_meta() -> dict:
    """The shipped checkpoint's metadata (architecture, options, classes, TTA, training record)."""
    return json.loads(BUILTIN_JSON.read_text())


@register_model(
    BUILTIN, input_size=40, in_chans=1, paper="the shipped pretrained model: docs/builtin-model.md", recipe=BUILTIN
)
def builtin(num_classes: int = 7, **kwargs) -> nn.Module:
    from fer_models.models._factory import create_model

    meta = builtin_meta()
    # Another class count (e.g. FER+'s eight, to fine-tune on) keeps the shipped features and starts a new
    # classifier: load_weights skips tensors of another shape, as timm does for a pretrained model.
    if num_classes != len(meta["classes"]):
        logger.info(
            "built-in model: %d classes asked for, it was trained on %d; its classifier starts afresh",
            num_classes,
            len(meta["classes"]),
        )
    return create_model(
        meta["model"], num_classes=num_classes, weights=BUILTIN_WEIGHTS, **{**meta.get("model_options", {}), **kwargs}
    )
