"""Recipes: one file per dataset group; importing this package registers them all."""
from .base import (AugmentConfig, EarlyStoppingConfig, LookaheadConfig, RECIPES, Recipe, RecipeError,
                   ReduceLROnPlateauConfig, get_recipe, parse_overrides, register_recipe)

# each import registers one dataset group's recipes
from . import cifar10, fashion, iris, mnist, notmnist, transfer  # noqa: F401,E402

__all__ = ["AugmentConfig", "EarlyStoppingConfig", "LookaheadConfig", "RECIPES", "Recipe", "RecipeError",
           "ReduceLROnPlateauConfig", "get_recipe", "parse_overrides", "register_recipe"]
