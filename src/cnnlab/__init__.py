"""cnnlab: train, evaluate and explain image classifiers.

The Python API mirrors the command line::

    import cnnlab
    run = cnnlab.train("mnist-cnn-small", {"epochs": 3}, data_dir="../shared/data")
    run.test_metrics["accuracy"], run.history["val_accuracy"]
    cnnlab.evaluate(run.dir)                    # re-evaluate the best checkpoint
    print(cnnlab.summary("mnist-cnn-small"))    # Keras-style layer table
    cnnlab.explain.explain_run(run.dir)         # Grad-CAM, filters and feature maps as PNGs
    cnnlab.predict(run.dir, ["digit.png"])      # [[("7", 0.98), ("1", 0.01), ...]] per image
    cnnlab.evaluate_folder(run.dir, "my_digits/")   # metrics on your own labelled images

The names are imported on first use (PEP 562), so that ``import cnnlab`` and the ``cnnlab``
command start without importing PyTorch: the command re-executes itself once with its launch
settings (:mod:`cnnlab.launch`) and only that second process needs torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute in it; None for the module itself)
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "DATASETS": (".data", "DATASETS"),
    "load_dataset": (".data", "load_dataset"),
    "MODELS": (".models", "MODELS"),
    "create_model": (".models", "create_model"),
    "RECIPES": (".recipes", "RECIPES"),
    "Recipe": (".recipes", "Recipe"),
    "get_recipe": (".recipes", "get_recipe"),
    "Run": (".runs", "Run"),
    "train": (".runs", "train"),
    "evaluate": (".runs", "evaluate_run"),
    "load_run": (".runs", "load_run"),
    "predict": (".inference", "predict"),
    "evaluate_folder": (".inference", "evaluate_folder"),
    "explain": (".explain", None),
    "transfer": (".transfer", None),
}

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from . import explain, transfer
    from .data import DATASETS, load_dataset
    from .inference import evaluate_folder, predict
    from .models import MODELS, create_model
    from .recipes import RECIPES, Recipe, get_recipe
    from .runs import Run, load_run, train
    from .runs import evaluate_run as evaluate


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562); AttributeError for any other name."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = importlib.import_module(module, __name__)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """The package's names, the lazy ones included (for ``dir(cnnlab)`` and completion)."""
    return sorted(set(globals()) | set(_EXPORTS))


def summary(model, input_size=None, num_classes: int | None = None) -> str:
    """Keras-style summary table of a model or a registered model name (see
    :mod:`cnnlab.report.summary`): layer, output shape ``(None, C, H, W)``, parameter count, and
    the trainable / non-trainable totals.

    ``input_size``: the (C, H, W) of one example, or (H, W) keeping the model's channels;
    default: the model's own (cnnlab's models). A model given by name is built for that size (its
    dense layers sized from it), as ``cnnlab summary NAME --input-size`` does; ``num_classes``
    sets its logits (default: the model's own).

    Raises:
        UnknownNameError: an unknown model name (close matches listed).
        ValueError: no ``input_size`` for a model that is not cnnlab's; a size the model cannot take.
        RuntimeError: a model that is not cnnlab's does not accept ``input_size`` (PyTorch's message).
    """
    from .models import MODELS, create_model
    from .report.summary import summary as _summary
    if isinstance(model, str):
        own = MODELS.get(model).info.input_size
        size = tuple(input_size) if input_size else own
        if len(size) == len(own) - 1:  # H W for an image model: keep its channels
            size = (own[0], *size)
        model = create_model(model, num_classes=num_classes, in_chans=size[0],
                             input_size=size[1:] if size != own else None)
        input_size = size
    return _summary(model, input_size)


__all__ = ["DATASETS", "MODELS", "RECIPES", "Recipe", "Run", "create_model", "evaluate",
           "evaluate_folder", "explain", "get_recipe", "load_dataset", "load_run", "predict",
           "summary", "train", "transfer", "__version__"]
