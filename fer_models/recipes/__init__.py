"""Recipes: a paper's training hyper-parameters as a YAML data file in this folder.

A recipe is a mapping of :class:`fer_models.training.config.TrainConfig` fields (``augment`` a mapping of
:class:`fer_models.data.Augment` fields) plus ``description``, ``paper`` and, for an ensemble recipe, ``ensemble``. Any
command-line flag overrides a recipe value. The schema is documented in docs/training.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from fer_synth.core.errors import FerError, MissingPathError

RECIPE_DIR = Path(__file__).parent
#: Keys that describe a recipe rather than set a training field; ``ensemble``: the balance methods of the data its
#: members train on, one model each, averaged (``fer-models compare`` adds that ensemble as an arm).
INFO_KEYS: tuple[str, ...] = ("description", "paper", "ensemble")


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    """A recipe by name (a file in this package) or by path to a .yaml file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise MissingPathError(f"{path}: no such recipe file")
        return path
    path = RECIPE_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        names = ", ".join(list_recipes())
        raise FerError(
            f"unknown recipe {name_or_path!r}; `fer-models list-recipes` shows them ({names}), "
            "or give a path to a .yaml file"
        )
    return path


def load_recipe(name_or_path: str | os.PathLike) -> dict:
    """The recipe's mapping, as written (validated against the config by ``fer_models.training.config``)."""
    path = recipe_path(name_or_path)
    try:
        recipe = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise FerError(f"{path}: not valid YAML ({str(e).splitlines()[0]}); fix the recipe file") from None
    if not isinstance(recipe, dict):
        raise FerError(f"{path}: a recipe must be a YAML mapping of config fields")
    recipe.setdefault("name", path.stem)
    return recipe


def list_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))
