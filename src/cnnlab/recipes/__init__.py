"""Recipes: one file per dataset group; importing this package registers them all."""
from .base import (AugmentConfig, EarlyStoppingConfig, RECIPES, Recipe, RecipeError,
                   ReduceLROnPlateauConfig, get_recipe, parse_overrides, register_recipe)

from . import mnist  # noqa: F401,E402

__all__ = ["AugmentConfig", "EarlyStoppingConfig", "RECIPES", "Recipe", "RecipeError",
           "ReduceLROnPlateauConfig", "get_recipe", "parse_overrides", "register_recipe"]
