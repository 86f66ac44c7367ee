"""The model registry: ``register_model`` in each model file, ``get_spec``/``list_models`` to look models up.

``timm:<name>`` resolves to any timm architecture (random init: nothing is ever downloaded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
TIMM_PREFIX = "timm:"


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


def _timm_spec(name: str) -> ModelSpec:
    import timm

    arch = name[len(TIMM_PREFIX) :]
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
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise UnknownModelError(
            f"unknown model {name!r}; `fer-models list-models` shows them all ({', '.join(sorted(_REGISTRY))}), "
            "and timm:<name> builds any timm architecture"
        )
    return _REGISTRY[key]


def list_models() -> list[ModelSpec]:
    """Every registered model, sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
