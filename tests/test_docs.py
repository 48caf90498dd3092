"""Documentation that users read through the tools: docstrings of the public API and the recipe
fields' descriptions (which `--set` errors and `cnnlab show` print)."""
import importlib
import inspect
import pkgutil

import pytest

import cnnlab
from cnnlab.recipes import Recipe
from cnnlab.recipes.base import (AugmentConfig, EarlyStoppingConfig, LookaheadConfig,
                                 ReduceLROnPlateauConfig)


def public_objects():
    """(qualified name, object) for every public function, class and method defined in cnnlab."""
    for info in pkgutil.walk_packages(cnnlab.__path__, "cnnlab."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{info.name}.{name}", obj
            if inspect.isclass(obj):
                for member, fn in vars(obj).items():
                    if not member.startswith("_") and inspect.isfunction(fn):
                        # getdoc: an override documented by its base class (a callback hook) counts
                        yield f"{info.name}.{name}.{member}", getattr(obj, member)


def test_the_walk_sees_the_whole_package():
    names = {n for n, _ in public_objects()}
    assert {"cnnlab.training.loop.Trainer", "cnnlab.training.loop.Trainer.fit",
            "cnnlab.explain.grad_cam", "cnnlab.models.resnet.CifarResNet"} <= names
    assert len(names) > 200


def test_every_public_function_class_and_method_has_a_docstring():
    missing = [n for n, obj in public_objects() if not (inspect.getdoc(obj) or "").strip()]
    assert missing == []


@pytest.mark.parametrize("config", [Recipe, AugmentConfig, LookaheadConfig, EarlyStoppingConfig,
                                    ReduceLROnPlateauConfig])
def test_every_recipe_field_says_what_it_is(config):
    assert [n for n, f in config.model_fields.items() if not f.description] == []


def test_a_bad_override_prints_the_fields_description():
    from cnnlab.recipes import RecipeError, get_recipe, parse_overrides
    with pytest.raises(RecipeError, match="label_smoothing.*Szegedy et al. 2016"):
        get_recipe("mnist-cnn-small", parse_overrides(["label_smoothing=1.5"]))


def test_the_readme_own_loop_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """README's "Your own data and loop" block, executed verbatim (in a scratch folder)."""
    import re
    from pathlib import Path
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = re.search(r"\*\*Your own data and loop\.\*\*.*?```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert len(scope["history"].history["loss"]) >= 1 and (tmp_path / "best.safetensors").exists()
    assert scope["cam"].shape == (4, 32, 32) and scope["run"].dir.parent.name == "runs"
