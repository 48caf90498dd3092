"""MNIST recipes: the seed experiments as written.

Accuracies are test top-1 fractions on the official 10,000-image test split.
"""
from .base import Recipe, register_recipe

register_recipe(Recipe(
    name="mnist-cnn-small",
    source="seed 003 (Keras MNIST CNN, keras-io mnist_convnet pattern): 10 epochs, batch 128",
    expected_accuracy=0.992,
    dataset="mnist", model="mnist-cnn-small",
    epochs=10, batch_size=128, optimizer="adam", lr=1e-3,
    val_fraction=0.1,  # keras-io's validation_split=0.1
))

register_recipe(Recipe(
    name="mnist-cnn-wide",
    source="seed 000 §1.2 'My_First_CNN': Adam, categorical cross-entropy (epochs, batch not given)",
    expected_accuracy=0.9897,
    dataset="mnist", model="mnist-cnn-wide",
    epochs=10, batch_size=128, optimizer="adam", lr=1e-3, val_fraction=0.1,
))

register_recipe(Recipe(
    name="mnist-lenet5",
    source="seed 001 §3 LeNet-5: Adam, CE, 10 epochs, batch 128, 20% validation split",
    expected_accuracy=0.9903,
    dataset="mnist", model="lenet5",
    epochs=10, batch_size=128, optimizer="adam", lr=1e-3, val_fraction=0.2,
))
