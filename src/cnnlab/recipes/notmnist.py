"""notMNIST recipes: seed 000 §1.1's MLP as written, and its fast variant.

notMNIST small has no official split: the ``notmnist-small`` dataset fixes a seeded, stratified
90/10 split (16,854 / 1,870 images); "test" below means those 1,870 letters. The seed reports no
accuracy; the issue's target is 93%. Wall times: 2-core CPU, bf16 (benchmarks/RECIPES.md).
"""
from .base import AugmentConfig, Recipe, register_recipe

register_recipe(Recipe(
    name="notmnist-mlp",
    source="seed 000 §1.1 notMNIST small MLP: Adam, categorical cross-entropy (no epochs, batch or "
           "score given)",
    expected_accuracy=0.93,  # the seed gives none: the target
    dataset="notmnist-small", model="notmnist-mlp",
    # Not given: epochs (20, an assumption), batch (32, Keras' fit default), lr (Keras' Adam
    # default 1e-3), validation (20% held out, seeded).
    epochs=20, batch_size=32, optimizer="adam", lr=1e-3, val_fraction=0.2,
))

register_recipe(Recipe(
    name="notmnist-mlp-fast",
    source="seed 000 §1.1 MLP, one-cycle AdamW, light affine augmentation; target: 93%",
    expected_accuracy=0.93, kind="fast",
    dataset="notmnist-small", model="notmnist-mlp",
    # An MLP has no built-in tolerance to shifts: small random shifts, rotations and zooms teach
    # it (the letters come in many fonts and placements), and one-cycle anneals. Chosen on the
    # validation split (3 seeds each, mean best val top-1): 20 epochs 94.42%, 40 epochs 94.52%,
    # 40 without label smoothing 94.50%, 40 with twice the augmentation 94.38%, 20 without
    # augmentation 93.67%. 40 epochs take about a minute (>20,000 images/s, most of it augmentation).
    epochs=40, batch_size=128, optimizer="adamw", lr=3e-3, weight_decay=0.01,
    schedule="onecycle", label_smoothing=0.1,
    augment=AugmentConfig(rotation=5, width_shift=0.05, height_shift=0.05, zoom=0.05),
    val_fraction=0.1,
))
