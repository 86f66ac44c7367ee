"""The model registry: ``create_model(name)`` instead of if-chains; one file per architecture.

A model file decorates its builder with :func:`register_model`, naming the input it expects (square size,
channels). Builders take ``num_classes`` and keyword options and return an ``nn.Module`` mapping
``[B, in_chans, input_size, input_size]`` float images to ``[B, num_classes]`` logits.

``timm:<name>`` builds any timm architecture (random init: nothing is ever downloaded), and every model
accepts ``weights=PATH``: a local ``.safetensors`` state dict (e.g. ImageNet weights) loaded by name and
shape, so a classifier head of another size is left at its random init.
"""

# Each architecture registers itself on import; the list below is every model file (timm's way: explicit).
from fer_models.models import builtin, cbam, emonext, patt_lite, resemotenet, rmn, small_cnn, timm_aliases, vgg  # noqa: F401
from fer_models.models._factory import create_model, load_weights
from fer_models.models._registry import TIMM_PREFIX, ModelSpec, UnknownModelError, get_spec, list_models, register_model

__all__ = [
    "TIMM_PREFIX",
    "ModelSpec",
    "UnknownModelError",
    "create_model",
    "get_spec",
    "list_models",
    "load_weights",
    "register_model",
]
