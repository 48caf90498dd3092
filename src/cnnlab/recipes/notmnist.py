"""notMNIST recipes: seed 000 §1.1's MLP as written, and its fast variant.

notMNIST small has no official split: the ``notmnist-small`` dataset removes its exact duplicates
and fixes a seeded, stratified 90/10 split (16,406 / 1,824 images); "test" below means those
1,824 letters. Results recorded before 2026-12-03 used a split of all 18,724 images, duplicates
included (70 test images had a copy in training): they are kept, marked superseded. The seed reports no
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
    # Those figures are of the earlier split (duplicates included). On the current split, the
    # rule written before its runs: 20 or 40 epochs, whichever has the higher mean best
    # validation top-1 over seeds 0 and 1, 20 unless 40 is ahead by more than 0.05 points.
    # 20 epochs: 93.47 and 93.84% (mean 93.66); 40 epochs: 94.20 and 93.90% (mean 94.05): 40.
    epochs=40, batch_size=128, optimizer="adamw", lr=3e-3, weight_decay=0.01,
    schedule="onecycle", label_smoothing=0.1,
    augment=AugmentConfig(rotation=5, width_shift=0.05, height_shift=0.05, zoom=0.05),
    val_fraction=0.1,
    test_informed="20 vs 40 epochs was compared (on validation) after 20 epochs scored 92.62% "
                  "on the test split of the earlier, duplicate-holding split (target 93%)",
))
