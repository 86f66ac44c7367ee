"""The model registry: ``create_model(name)`` instead of if-chains; one file per architecture.

A model file decorates its builder with :func:`register_model`, naming the input it expects (square size,
channels). Builders take ``num_classes`` and keyword options and return an ``nn.Module`` mapping
``[B, in_chans, input_size, input_size]`` float images to ``[B, num_classes]`` logits.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from fer_synth.errors import FerError


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


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` for a registered name or alias."""
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


def create_model(name: str, num_classes: int = 7, **kwargs) -> nn.Module:
    """Build a registered model. The module gets a ``spec`` attribute with its input size and channels."""
    spec = get_spec(name)
    model = spec.builder(num_classes=num_classes, **kwargs)
    model.spec = spec
    return model
