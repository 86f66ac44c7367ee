"""The model registry: ``create_model(name)`` instead of if-chains; one file per architecture.

A model file decorates its builder with :func:`register_model`, naming the input it expects (square size,
channels). Builders take ``num_classes`` and keyword options and return an ``nn.Module`` mapping
``[B, in_chans, input_size, input_size]`` float images to ``[B, num_classes]`` logits.

``timm:<name>`` builds any timm architecture (random init: nothing is ever downloaded), and every model
accepts ``weights=PATH``: a local ``.safetensors`` state dict (e.g. ImageNet weights) loaded by name and
shape, so a classifier head of another size is left at its random init.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from fer_synth.core.errors import FerError


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about a model before building it."""

    name: str
    builder: Callable[..., nn.Module]
    input_size: int
    in_chans: int
    paper: str = ""
    recipe: str | None = None  # the recipe that reproduces the paper, if any
    aliases: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}


class UnknownModelError(FerError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return self.args[0]


def register_model(
    name: str,
    *,
    input_size: int,
    in_chans: int = 1,
    paper: str = "",
    recipe: str | None = None,
    aliases: tuple[str, ...] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder(num_classes=7, **kwargs) -> nn.Module`` under ``name`` (and ``aliases``)."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY or name in _ALIASES:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(name, builder, input_size, in_chans, paper, recipe, tuple(aliases))
        for alias in aliases:
            _ALIASES[alias] = name
        return builder

    return decorator


def _load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


TIMM_PREFIX = "timm:"


def _timm_spec(name: str) -> ModelSpec:
    import timm

    arch = name[len(TIMM_PREFIX):]
    if not timm.is_model(arch):
        raise UnknownModelError(f"unknown timm architecture {arch!r}; `timm.list_models()` names them")
    cfg = timm.get_pretrained_cfg(arch)
    input_size = int(cfg.input_size[-1]) if cfg is not None and cfg.input_size else 224

    def builder(num_classes: int = 7, **kwargs) -> nn.Module:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)

    return ModelSpec(name, builder, input_size, 3, paper=f"timm {arch}")


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` for a registered name or alias, or ``timm:<architecture>``."""
    if name.startswith(TIMM_PREFIX):
        return _timm_spec(name)
    _load_all()
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise UnknownModelError(
            f"unknown model {name!r}; `fer-models list-models` shows them all ({', '.join(sorted(_REGISTRY))}), "
            "and timm:<name> builds any timm architecture"
        )
    return _REGISTRY[key]


def list_models() -> list[ModelSpec]:
    """Every registered model, sorted by name."""
    _load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def create_model(name: str, num_classes: int = 7, weights: str | os.PathLike | None = None, **kwargs) -> nn.Module:
    """Build a registered model. The module gets a ``spec`` attribute with its input size and channels.

    ``weights``: a local ``.safetensors`` file to initialise from (see :func:`load_weights`).
    """
    spec = get_spec(name)
    model = spec.builder(num_classes=num_classes, **kwargs)
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
        raise FileNotFoundError(f"{path}: no such weights file")
    if path.suffix != ".safetensors":
        raise FerError(f"{path}: weights must be a .safetensors file (pickled checkpoints are never loaded)")
    state = load_file(str(path))
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise FerError(f"{path}: none of its {len(state)} tensors matches {type(model).__name__}'s names and shapes")
    model.load_state_dict(matched, strict=False)
    return len(matched), len(state) - len(matched)
