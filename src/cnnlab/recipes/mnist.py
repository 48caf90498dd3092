"""MNIST recipes: the seed experiments as written (``faithful``), the same networks with a better
schedule (``fast``: at least the seed's accuracy in as little time as we can), and ``mnist-best``
(one model, 99.7%).

Accuracies are test top-1 fractions on the official 10,000-image test split. Where a seed is
silent, Keras' defaults fill in (Adam lr 1e-3, batch 32, callbacks watching val_loss) and 20% of
the training split is held out for validation; each such assumption is marked where it is made.
(``mnist-cnn-wide``, the first recipe written, keeps its 10 epochs, batch 128 and 10% hold-out.)

The epoch counts of the fast and best recipes are our estimate of what reaches the target, from
the networks' known behaviour; RESULTS.md records the full runs that test them.
"""
from .base import (AugmentConfig, EarlyStoppingConfig, Recipe, ReduceLROnPlateauConfig,
                   register_recipe)

register_recipe(Recipe(
    name="mnist-cnn-small",
    source="seed 003 (Keras MNIST CNN; dropout .3, .5 from its author's code): 10 epochs, batch 128",
    expected_accuracy=0.992,
    dataset="mnist", model="mnist-cnn-small",
    # seed 003's table gives neither optimizer nor learning rate: Adam with Keras' 1e-3 is its
    # author's mnist.py (carl-221b/deeplearning), as are the dropout rates
    epochs=10, batch_size=128, optimizer="adam", lr=1e-3,
    val_fraction=0.1,  # not given (the author's code validates on the test split): 10% held out
))

register_recipe(Recipe(
    name="mnist-cnn-wide",
    source="seed 000 §1.2 'My_First_CNN': Adam, categorical cross-entropy (epochs, batch not given)",
    expected_accuracy=0.9897,
    dataset="mnist", model="mnist-cnn-wide",
    # not given: epochs (10), batch (128) and the hold-out (10%); chosen when this first recipe was
    # written and kept, not Keras' batch 32 and 20% of the later ones. Adam's lr is Keras' 1e-3.
    epochs=10, batch_size=128, optimizer="adam", lr=1e-3, val_fraction=0.1,
))

register_recipe(Recipe(
    name="mnist-lenet5",
    source="seed 001 §3 LeNet-5: Adam, CE, 10 epochs, batch 128, 20% validation split",
    expected_accuracy=0.9903,
    dataset="mnist", model="lenet5",
    # The seed ("LeNet-50" in its heading, LeNet-5 in its text) lists 3 conv layers and dense 120
    # and 84: read, as in LeNet-5, with C5 (120 filters of 5x5 on a 5x5 map) as the dense 120
    # (models/lenet.py), an interpretation: a conv C5 followed by another dense 120 would have
    # 76,226 parameters instead of 61,706. Adam's lr is not given: Keras' 1e-3.
    epochs=10, batch_size=128, optimizer="adam", lr=1e-3, val_fraction=0.2,
))


# --- seed 002 (mrmoxon/Deep-Image-Learning): the two high-scoring MNIST models ----------------
# The seed prints two scores per model, "[99.72, 98.93]" and "[99.65, 98.81]", and names neither.
# The first is read as the MNIST test accuracy; the second cannot be (98.93% would be poor for an
# augmented BatchNorm net on MNIST), names some other evaluation and is not used.

register_recipe(Recipe(
    name="mnist-cnn-bn-403k",
    source="seed 002 §1: Keras ImageDataGenerator, Adam 1e-3, label smoothing .1, "
           "ReduceLROnPlateau(20, .2), best checkpoint, EarlyStopping, ~100 epochs",
    expected_accuracy=0.9972,
    dataset="mnist", model="mnist-cnn-bn-403k",
    epochs=100,  # "Train for 100e" / "Trained for ~100 epochs"
    batch_size=32,  # not given: Keras' flow()/fit() default
    optimizer="adam", lr=1e-3, label_smoothing=0.1,
    augment=AugmentConfig(
        rotation=10, width_shift=0.1, height_shift=0.1,
        shear=0.2,  # Keras 2's shear_range is in degrees, so 0.2 means 0.2 degrees (as written;
                    # the author may have meant radians, ~11.5 degrees, but Keras reads degrees)
        zoom=0.1, fill_mode="nearest",
        noise_std=0.05),  # the preprocessing_function: x + N(0, 0.05) on [0, 1] images
    # Keras' callbacks watch val_loss unless told otherwise, and the seed names no metric
    reduce_lr=ReduceLROnPlateauConfig(monitor="val_loss", factor=0.2, patience=20),
    monitor="val_loss",  # ModelCheckpoint(save_best_only=True) with its default monitor
    # EarlyStopping's patience is not given (Keras' default 0 would stop at the first worse
    # epoch, contradicting "~100 epochs"): twice the LR patience, so one LR drop can act first.
    # restore_best_weights=False is Keras' default; the best checkpoint is evaluated anyway.
    early_stopping=EarlyStoppingConfig(monitor="val_loss", patience=40, restore_best_weights=False),
    val_fraction=0.2,  # not given: 20% held out, seeded
))

register_recipe(Recipe(
    name="mnist-cnn-2m",
    source="seed 002 §2: rotation 10, zoom .1, shifts .1; Adam 1e-3; LR x0.9 per epoch; "
           "batch 64; 50 epochs",
    expected_accuracy=0.9965,
    dataset="mnist", model="mnist-cnn-2m",
    epochs=50, batch_size=64, optimizer="adam", lr=1e-3,
    schedule="exponential", gamma=0.9,  # LearningRateScheduler: lr = 1e-3 * 0.9 ** epoch
    augment=AugmentConfig(rotation=10, zoom=0.1, width_shift=0.1, height_shift=0.1),
    val_fraction=0.2,  # not given: 20% held out, seeded
))


# --- fast recipes: same architecture, a better schedule, at least the seed's accuracy ---------
# Shared choices: one-cycle LR (Smith & Topin 2019; 25% warm-up, then cosine annealing to ~0),
# AdamW, label smoothing 0.1, batch 128, 10% validation (only for picking the checkpoint). Small
# affine augmentation (rotation, shift, zoom: the classic MNIST distortions) where the run is
# long enough to profit; runs of 3 epochs or less do not overfit and go without it. Wall times
# are for the 2-core CPU with bf16 and nothing else running (benchmarks/RECIPES.md, which
# derives them from measured throughputs); a shared machine is slower.

_MNIST_AFFINE = AugmentConfig(rotation=8, width_shift=0.08, height_shift=0.08, zoom=0.08)

register_recipe(Recipe(
    name="mnist-cnn-small-fast",
    source="seed 003 model, one-cycle AdamW + light affine augmentation; target: the seed's 99.2%",
    expected_accuracy=0.992, kind="fast",
    dataset="mnist", model="mnist-cnn-small",
    # the faithful 10 flat-LR epochs reached 99.13 ± 0.04% here (benchmarks/RESULTS.md): annealing and
    # small distortions are what this dropout-heavy net needs to pass 99.2%; 8 epochs, ~3 minutes
    epochs=8, batch_size=128, optimizer="adamw", lr=2e-3, weight_decay=0.01,
    schedule="onecycle", label_smoothing=0.1, augment=_MNIST_AFFINE, val_fraction=0.1,
))

register_recipe(Recipe(
    name="mnist-cnn-wide-fast",
    source="seed 000 §1.2 model, one-cycle Adam; target: the seed's 98.97%",
    expected_accuracy=0.9897, kind="fast",
    dataset="mnist", model="mnist-cnn-wide",
    # 98.97% is about one epoch of Adam for this 4-conv net; 3 annealed epochs give a margin
    # (~2.5 minutes at ~1,200 images/s). No BatchNorm: plain Adam, peak 2e-3.
    epochs=3, batch_size=128, optimizer="adam", lr=2e-3, schedule="onecycle",
    label_smoothing=0.1, val_fraction=0.1,
))

register_recipe(Recipe(
    name="mnist-lenet5-fast",
    source="seed 001 §3 LeNet-5, one-cycle AdamW + light affine augmentation; target: the seed's "
           "~99.03%",
    expected_accuracy=0.9903, kind="fast",
    dataset="mnist", model="lenet5",
    # The faithful 10 flat-LR epochs reached 98.94 ± 0.06% here, short of 99.03% (benchmarks/RESULTS.md):
    # this 62k-parameter net needs the distortions (LeCun et al. 1998's LeNet-5 went from 99.05%
    # to 99.2% with them) and an annealed LR. It steps at ~18,000 images/s, so 15 such epochs
    # take about a minute, against the faithful 25 seconds that miss the target.
    epochs=15, batch_size=128, optimizer="adamw", lr=3e-3, weight_decay=0.01,
    schedule="onecycle", label_smoothing=0.1, augment=_MNIST_AFFINE, val_fraction=0.1,
))

register_recipe(Recipe(
    name="mnist-cnn-bn-403k-fast",
    source="seed 002 §1 model, one-cycle AdamW, the seed's augmentation; target: the seed's 99.72%",
    expected_accuracy=0.9972, kind="fast",
    dataset="mnist", model="mnist-cnn-bn-403k",
    # 99.72% is at the top of what one such net reaches (it is the all-conv design of Deotte's
    # Kaggle MNIST notebook, where an ensemble of 15 scored 99.75%); it takes augmentation and
    # ~30 annealed epochs: ~8 minutes here, against ~30 faithful minutes.
    # Its 2 recorded runs reached 99.63% (a miss). Test-time augmentation by one-pixel shifts (the
    # mean logits of each digit and its 4 shifted copies) was checked on their best checkpoints
    # on the validation split (benchmarks/val_tta.py) and does not help: 99.60 -> 99.57%,
    # 99.45 -> 99.45% (mnist-cnn-2m-fast's: 99.57 -> 99.55%, 99.50 -> 99.50%); not adopted.
    # 50 epochs instead of 30 (RESULTS.md, override table): best validation 99.60 / 99.57%
    # (30 epochs: 99.60 / 99.45%), test 99.65 ± 0.06%, 11 minutes a seed: still a miss, within
    # noise of 30 epochs at 1.7x the time, so the recipe keeps 30.
    # An EMA of the weights (--set ema_decay=0.999, override table, 2 seeds): best validation
    # 99.57 / 99.43% against 99.60 / 99.45% without it, so not adopted (its test top-1, 99.67 ±
    # 0.01%, is recorded but was not used to decide; still a miss).
    # Since 2026-11-27 it trains on all 60,000 training images, as mnist-best does, and keeps the
    # last, annealed epoch: none of the above changes the net's validated accuracy, so the 6,000
    # held-out images serve better as training data. Decided before its runs, on that argument
    # alone; the runs with the 10% hold-out are kept with the override val_fraction=0.1.
    # Its 2 runs (AMD EPYC, 8 minutes a seed): 99.70 and 99.65%, 99.68 ± 0.04%: still a miss.
    # airbench's Lookahead (--set 'lookahead={}' val_fraction=0.1, 2 seeds, override table): best
    # validation 99.60 / 99.47% against 99.60 / 99.45% without it: no gain, not adopted (its test
    # top-1, 99.66 ± 0.03%, recorded, not used to decide).
    # Elastic distortion on top of the affine augmentation (Simard et al. 2003; --set
    # val_fraction=0.1 augment.elastic_alpha=..., seed 0 first, a second seed only if the first
    # beat 99.60% best validation): Simard's alpha 34 / sigma 4 pixels 99.35% (underfits: 98.9%
    # training accuracy at the end), Ciresan et al. 2010's milder 36 / 6 99.60%: no gain, not
    # adopted (test top-1 99.44 / 99.67% recorded in the override table, not used to decide).
    # Three more candidates, with one rule set before any of their runs (10% held out; seed 0,
    # then seed 1 only if seed 0 beat 99.60% best validation; adopt if both seeds reach the
    # baseline's 99.60 / 99.45% and their mean is higher; the highest mean among several):
    # the seed's own Gaussian noise (augment.noise_std=0.05) 99.58%, stop; SGD-Nesterov lr 0.1,
    # momentum 0.9, weight decay 5e-4, 99.60%, stop; batch 64 instead of 128 (lr kept) 99.62 /
    # 99.48%: adopted by that rule, on a margin of 1 and 2 validation images of 6,000, i.e. within
    # noise (test top-1 of those runs 99.66 / 99.56%, recorded, not used to decide). The runs at
    # batch 128 are kept with the override batch_size=128. Its 2 runs at batch 64 on all 60,000
    # images (AMD EPYC, 8.9 minutes a seed): 99.69 and 99.68%, 99.69 ± 0.01%: still a miss, by
    # 3 test images, the same as batch 128's 99.68 ± 0.04% within noise.
    # A second round at batch 64, same rule against its 99.62 / 99.48% (seed 0 must beat 99.62%):
    # 40 epochs 99.60%, weight decay 0.05 99.57%: both stop at seed 0, nothing adopted (test
    # top-1 99.63 / 99.70% recorded, not used; the 40-epoch run's 18.7 minutes are inflated by a
    # test suite sharing the cores).
    # A third round (2026-11-29), same rule, with the training options added since: CutMix
    # (--set cutmix_alpha=1.0 mix_prob=0.5; a box of another digit, on average half the image,
    # pasted into half the batches) 99.35% best validation, stop; MixUp (mixup_alpha=0.2
    # mix_prob=0.5) 99.52%, stop. Nothing adopted (test top-1 99.42 / 99.61% recorded, not used;
    # their ~13 minutes a seed are a slower day of the shared machine, not the mixing, which
    # costs 0.1% of a step: benchmarks/AUGMENT_COST.md).
    # A fourth round (2026-11-29), same rule: weight decay 0.001 (0.05 had scored lower) 99.60%,
    # stop; the seed's own Adam rate, lr 1e-3, as the one-cycle peak 99.62%, the baseline's 5,977
    # of 6,000 validation images exactly: it does not beat 99.62%, stop. Nothing adopted (test
    # top-1 99.64 / 99.72% recorded in the override table, not used to decide; a test figure at
    # the target from a run the validation split did not prefer is noise, not a recipe).
    epochs=30, batch_size=64, optimizer="adamw", lr=3e-3, weight_decay=0.01,
    schedule="onecycle", label_smoothing=0.1,
    augment=AugmentConfig(rotation=10, width_shift=0.1, height_shift=0.1, zoom=0.1),
    val_fraction=0.0,
))

register_recipe(Recipe(
    name="mnist-cnn-2m-fast",
    source="seed 002 §2 model, one-cycle AdamW, the seed's augmentation; target: the seed's 99.65%",
    expected_accuracy=0.9965, kind="fast",
    dataset="mnist", model="mnist-cnn-2m",
    # the seed's LR x0.9 per epoch leaves 1e-3 * 0.9**25 = 7e-5 after 25 of its 50 epochs: half
    # the run learns little. One-cycle anneals on purpose instead. 15 epochs gave 99.62% (2
    # seeds, just under the target) with the best validation accuracy at epochs 14 and 15, still
    # rising: 25 epochs, ~9 minutes here.
    epochs=25, batch_size=128, optimizer="adamw", lr=3e-3, weight_decay=0.01,
    schedule="onecycle", label_smoothing=0.1,
    augment=AugmentConfig(rotation=10, width_shift=0.1, height_shift=0.1, zoom=0.1),
    val_fraction=0.1,
    test_informed="epochs 15 -> 25 after 15 epochs scored 99.62% on test (target 99.65%), "
                  "though validation, still rising at the last epochs, argued the same",
))


# --- best: one model, as accurate as we can make it on the CPU -------------------------------

register_recipe(Recipe(
    name="mnist-best",
    source="airbench94 net (Jordan 2024) on MNIST, SGD-Nesterov, warm-up + cosine, affine "
           "augmentation; target: 99.7% with one model",
    expected_accuracy=0.997, kind="best",
    dataset="mnist", model="airbench94",  # 28x28x1: 28 -> 27 -> 13 -> 6 -> 3 -> global max-pool
    # airbench's hyperparameters in PyTorch's mean-loss units at batch 512: lr 11.5 per 1024
    # examples with Nesterov momentum 0.85 -> lr 0.75; decoupled weight decay 0.0153 per 1024
    # examples -> 1.33e-3 as SGD's L2 coefficient. Warm-up 20% (airbench: 23%), then cosine.
    # Augmentation: the classic MNIST distortions instead of airbench's flips (a mirrored digit
    # is another symbol). 20 epochs: ~16 minutes at ~1,250 images/s.
    epochs=20, batch_size=512, optimizer="sgd", lr=0.75, momentum=0.85, nesterov=True,
    weight_decay=1.33e-3, schedule="cosine", warmup_epochs=4, label_smoothing=0.1,
    augment=AugmentConfig(rotation=10, width_shift=0.1, height_shift=0.1, zoom=0.1),
    # all 60,000 training images, as airbench uses all of CIFAR's: with no validation split the
    # best checkpoint is chosen by training accuracy, in practice the last (annealed) epoch
    val_fraction=0.0,
))


# --- seed 001 §1 (a PyTorch notebook: no layers given, only a test line in the style of
# pytorch/examples' MNIST script, "Average loss: 0.0296, Accuracy 9793/10000 (98%)"). An
# assumption: these recipes take that script's network and defaults; fashion.py's §2 too. §2's
# line cannot be the script's own test(): its 1,943 errors alone would make the mean NLL at least
# 1943 * ln 2 / 10000 = 0.135, not 0.0331, so the notebooks changed at least the loss averaging ---
# the script trains on all 60,000 images and reports the last epoch; here 10% is held out to
# choose the best checkpoint, as in the other recipes
PYTORCH_EXAMPLE = dict(model="mnist-cnn-torch", epochs=14, batch_size=64, optimizer="adadelta", lr=1.0,
                       schedule="exponential", gamma=0.7, val_fraction=0.1)
# the seeds' figures are low for this net (an assumption: their notebooks' may differ): two
# one-cycle epochs, the least that anneals
PYTORCH_EXAMPLE_FAST = dict(model="mnist-cnn-torch", kind="fast", epochs=2, batch_size=128, optimizer="adamw",
                            lr=3e-3, weight_decay=0.01, schedule="onecycle", val_fraction=0.1)
PYTORCH_EXAMPLE_SOURCE = ("(layers not given; assumed: pytorch/examples mnist/main.py's net and defaults, "
                          "whose test line it resembles): Adadelta lr 1.0, LR x0.7 each epoch, 14 epochs, batch 64")

register_recipe(Recipe(
    name="mnist-cnn-torch", source=f"seed 001 §1 {PYTORCH_EXAMPLE_SOURCE}; test 97.93%",
    expected_accuracy=0.9793, dataset="mnist", **PYTORCH_EXAMPLE))

register_recipe(Recipe(
    name="mnist-cnn-torch-fast", source="seed 001 §1 model (pytorch/examples' MNIST net), one-cycle AdamW; "
                                        "target: the seed's 97.93%",
    expected_accuracy=0.9793, dataset="mnist", **PYTORCH_EXAMPLE_FAST))
