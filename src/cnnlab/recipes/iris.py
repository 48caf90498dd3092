"""Iris recipes: seed 004's Conv1D on the four measurements, as written, and a fast variant.

The seed trains on its 120-row teaching copy (``iris.csv``): the ``iris-teaching`` dataset, a
seeded stratified 97/23 split, so "test" is 23 flowers (one error = 4.3 points). The seed gives
neither training settings nor a score: ``expected_accuracy`` is None.
"""
from .base import Recipe, register_recipe

register_recipe(Recipe(
    name="iris-conv1d",
    source="seed 004: Keras Conv1D(4, 3, relu) on input shape (4, 1), then a classifier "
           "(no training settings, no score)",
    expected_accuracy=None,  # none given, and the issue sets none
    dataset="iris-teaching", model="iris-conv1d",
    # Not given: optimizer (Adam, lr 1e-3: Keras' default), batch (32, Keras' fit default),
    # epochs (200, an assumption: a 43-parameter net at lr 1e-3 takes a few hundred steps, and
    # 77 training rows make 3 steps an epoch), validation (20%: 20 of the 97 rows).
    epochs=200, batch_size=32, optimizer="adam", lr=1e-3, val_fraction=0.2,
    precision="fp32",  # 4 numbers per example: bf16's 8-bit mantissa would only add rounding
))

register_recipe(Recipe(
    name="iris-conv1d-fast",
    source="seed 004 Conv1D, one-cycle AdamW at a 10x learning rate, batch 16 (no target given)",
    expected_accuracy=None, kind="fast",
    dataset="iris-teaching", model="iris-conv1d",
    # A tiny, well-conditioned problem: a 10x higher peak LR, 5 steps an epoch and annealing
    # converge in a quarter of the faithful epochs. Seconds either way.
    epochs=50, batch_size=16, optimizer="adamw", lr=1e-2, weight_decay=0.01,
    schedule="onecycle", val_fraction=0.2, precision="fp32",
))
