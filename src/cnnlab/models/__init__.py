"""The model zoo. Importing this package registers every model family.

Use :func:`create_model` by name; ``MODELS.list("vgg*")`` lists names.
"""
from .base import MODELS, ImageClassifier, ModelInfo, count_params, create_model, register_model

# Each import below registers one family's builders.
from . import (airbench, alexnet, densenet, lenet, mobilenet, resnet,  # noqa: F401,E402
               seed_cnns, seed_mlp, vgg, zfnet)

__all__ = ["MODELS", "ImageClassifier", "ModelInfo", "count_params", "create_model", "register_model"]
