"""Real MNIST from ../shared/data/mnist (skipped loudly where absent)."""
import pytest

import cnnlab
from cnnlab.data import load_dataset
from cnnlab.data.mnist import MNIST_MD5, verify_md5
from conftest import real_data

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist", real_data("mnist"), download=False)


def test_official_counts_and_stats(mnist):
    assert mnist.train_images.shape == (60000, 1, 28, 28)
    assert mnist.test_images.shape == (10000, 1, 28, 28)
    assert mnist.mean == pytest.approx((0.1307,), abs=1e-4)
    assert mnist.std == pytest.approx((0.3081,), abs=1e-4)
    assert mnist.train_labels.bincount().tolist()[:2] == [5923, 6742]  # the official class counts


def test_files_are_the_official_ones():
    assert all(verify_md5(real_data("mnist"), MNIST_MD5).values())


def test_short_real_training_is_well_above_chance(mnist, tmp_path):
    run = cnnlab.train("mnist-cnn-small", {"epochs": 1, "val_fraction": 0.1}, dataset=mnist,
                       run_dir=tmp_path / "run", limit=6000, log=lambda m: None)
    assert run.test_metrics["total"] == 6000
    assert run.test_metrics["accuracy"] > 0.85  # chance is 0.10; a full run reaches 0.99
    # and a look inside it, on the real test digits: the heat lies on the strokes, not the border
    from cnnlab.explain import explain_run, grad_cam
    out = explain_run(run.dir, images=16, select="worst", data_dir=real_data(""))
    assert out["layer"] == "features.relu2" and len(out["test_indices"]) == 16
    x = (mnist.test_images[:64].float() / 255 - mnist.mean[0]) / mnist.std[0]
    cam, _, _ = grad_cam(run.model.float(), x)
    ink = mnist.test_images[:64, 0] > 0
    assert cam[ink].mean() > 2 * cam[~ink].mean()
