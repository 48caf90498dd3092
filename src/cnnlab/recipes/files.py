"""Recipes from files: ``cnnlab train my_recipe.toml`` and ``cnnlab train RUN_DIR/recipe.json``.

A recipe file holds the same fields as a registered recipe (``cnnlab list recipes``; the fields
and their meaning are :class:`~cnnlab.recipes.Recipe`'s). With ``base`` it starts from a
registered recipe and changes only what it names, as ``--set`` does::

    # my_lenet.toml
    base = "mnist-lenet5-fast"
    epochs = 20
    label_smoothing = 0.05
    [augment]            # sub-configs change key by key: the base's other augment keys stay
    rotation = 15

Without ``base`` it must name at least ``dataset``, ``model``, ``epochs`` and ``batch_size``;
``name`` defaults to the file's stem. JSON files take the same keys, and the ``recipe.json`` that
every run folder holds is read as the exact recipe of that run, so
``cnnlab train runs/x/recipe.json --set seed=1`` trains it again with another seed.
TOML needs Python 3.11+ (``tomllib``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .base import RECIPES, Recipe, RecipeError, _sub_model, set_all

SUFFIXES = (".toml", ".json")


def is_recipe_file(name: str | Path) -> bool:
    """Whether ``name`` means a recipe file rather than a registered recipe name: it ends in
    ``.toml`` or ``.json`` (recipe names never do)."""
    return str(name).lower().endswith(SUFFIXES)


def load_recipe_file(path: str | Path) -> Recipe:
    """Read a recipe file (TOML or JSON; see the module docstring for its keys).

    Raises:
        FileNotFoundError: no such file.
        RecipeError: the file does not parse (line and column given), an unknown recipe key
            (close matches listed), a value of the wrong type, an unknown ``base`` recipe, or a
            recipe without ``base`` that lacks a required field. Messages start with the path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe file {path} does not exist")
    data = _read(path)
    if "recipe" in data and isinstance(data["recipe"], dict):  # a run folder's recipe.json
        data = data["recipe"]
    base = data.pop("base", None)
    try:
        if base is None:
            changes = {"name": path.stem, "source": f"recipe file {path.name}", **_dotted(data, Recipe)}
            fields: dict[str, Any] = {}
            errors = set_all(fields, changes, Recipe)  # unknown keys at any depth, close matches named
            try:
                recipe = Recipe.model_validate(fields)
            except ValidationError as e:
                errors += [_message(err) for err in e.errors()]
            if errors:
                raise RecipeError("\n  ".join(["", *errors]))
            return recipe
        if not isinstance(base, str):
            raise RecipeError(f"base must be a registered recipe's name, got {base!r}")
        try:
            recipe = RECIPES.get(base)
        except KeyError as e:  # UnknownNameError, with close matches
            raise RecipeError(f"base: {e}") from None
        changes = {"name": path.stem, "source": f"{base}, changed by {path.name}", **_dotted(data, Recipe)}
        return recipe.override(changes)
    except RecipeError as e:
        msg = str(e).replace("--set ", "").removeprefix("invalid recipe override:")
        if msg.count("\n") == 1:  # one problem: one line
            msg = msg.strip()
        raise RecipeError(f"recipe file {path}:{'' if msg.startswith(chr(10)) else ' '}{msg}") from None


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise RecipeError(f"recipe file {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if path.suffix.lower() == ".toml":
        if sys.version_info < (3, 11):
            raise RecipeError(f"recipe file {path}: TOML needs Python 3.11+ (tomllib); write it as JSON")
        import tomllib
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            hint = ("; it looks like JSON (`cnnlab show` writes JSON): name it .json"
                    if text.lstrip().startswith("{") else "")
            raise RecipeError(f"recipe file {path}: not valid TOML: {e}{hint}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecipeError(f"recipe file {path}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"recipe file {path}: expected an object of recipe keys, got {type(data).__name__}")
    return data


def _dotted(data: dict[str, Any], cls: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """``{"augment": {"rotation": 15}}`` -> ``{"augment.rotation": 15}`` for the sub-configs
    (so a base recipe's other augment keys stay); other values, dicts included, are whole."""
    out = {}
    for key, value in data.items():
        sub = _sub_model(cls, key) if key in cls.model_fields else None
        if sub is not None and isinstance(value, dict) and value:
            out.update(_dotted(value, sub, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _message(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
    if err["type"] == "missing":
        return f"{loc} is required (or start from a registered recipe with base = \"NAME\")"
    given = f"={err['input']!r}" if "input" in err and not isinstance(err["input"], dict) else ""
    msg = err['msg'].removeprefix('Value error, ')
    return f"{loc}{given}: {msg}" if loc else msg  # a check across fields names them itself
