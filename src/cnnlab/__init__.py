"""cnnlab: train, evaluate and explain image classifiers.

The Python API mirrors the command line::

    import cnnlab
    run = cnnlab.train("mnist-cnn-small", {"epochs": 3}, data_dir="../shared/data")
    run.test_metrics["accuracy"], run.history["val_accuracy"]
    cnnlab.evaluate(run.dir)                    # re-evaluate the best checkpoint
    print(cnnlab.summary("mnist-cnn-small"))    # Keras-style layer table
    cnnlab.explain.explain_run(run.dir)         # Grad-CAM, filters and feature maps as PNGs
    cnnlab.predict(run.dir, ["digit.png"])      # [[("7", 0.98), ("1", 0.01), ...]] per image
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import explain, transfer
from .data import DATASETS, load_dataset
from .models import MODELS, create_model
from .recipes import RECIPES, Recipe, get_recipe
from .predict import predict
from .runs import Run, evaluate_run as evaluate, load_run, train


def summary(model, input_size=None) -> str:
    """Keras-style summary table of a model or a registered model name (see :mod:`cnnlab.summary`)."""
    from .summary import summary as _summary
    if isinstance(model, str):
        model = create_model(model)
    return _summary(model, input_size)


__all__ = ["DATASETS", "MODELS", "RECIPES", "Recipe", "Run", "create_model", "evaluate", "explain", "transfer",
           "get_recipe", "load_dataset", "load_run", "predict", "summary", "train", "__version__"]
