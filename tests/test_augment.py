"""Batch augmentation: Keras semantics, per-sample independence, reproducibility, off = identity."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.data import augment as augment_module
from cnnlab.data.augment import (Augment, affine_matrices, apply_affine, build_augment, cutout,
                                 elastic_field, gaussian_noise, random_affine, random_crop,
                                 random_flip)
from cnnlab.recipes import AugmentConfig

MNIST = AugmentConfig(rotation=10, width_shift=0.1, height_shift=0.1, shear=0.2, zoom=0.1,
                      noise_std=0.05)
CIFAR = AugmentConfig(crop_padding=4, horizontal_flip=True, cutout=8)
ALL = AugmentConfig(rotation=10, width_shift=0.1, height_shift=0.1, shear=5, zoom=0.1,
                    horizontal_flip=True, crop_padding=2, cutout=6, noise_std=0.05,
                    elastic_alpha=8)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(b=8, c=3, h=16, w=16, seed=1):
    return torch.rand(b, c, h, w, generator=gen(seed)) * 255


def params(b, **kw):
    """Per-sample affine parameters as (B,) float64 tensors, identity unless given."""
    base = dict(rotation=0.0, shift_y=0.0, shift_x=0.0, shear=0.0, zoom_y=1.0, zoom_x=1.0)
    return {k: torch.full((b,), float(kw.get(k, v)), dtype=torch.float64) for k, v in base.items()}


@pytest.mark.parametrize("cfg", [MNIST, CIFAR, ALL])
@pytest.mark.parametrize("c", [1, 3])
def test_deterministic_and_keeps_shape_dtype(cfg, c):
    aug, x = build_augment(cfg), images(c=c)
    x0 = x.clone()
    a, b = aug(x, gen(5)), aug(x, gen(5))
    assert torch.equal(a, b) and not torch.equal(a, aug(x, gen(6)))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(x, x0)  # the input is never modified


def test_build_none_when_all_off_and_repr_names_parts():
    assert build_augment(None) is None
    assert build_augment(AugmentConfig()) is None
    assert build_augment(AugmentConfig(fill_mode="reflect")) is None  # a mode alone is not a part
    r = repr(build_augment(CIFAR))
    assert r == "Augment(random_crop(padding=4, padding_mode='reflect'), random_flip(), cutout(size=8))"
    r = repr(build_augment(MNIST))
    assert r.startswith("Augment(random_affine(rotation=10.0") and "gaussian_noise(std=0.05)" in r


@pytest.mark.parametrize("field,value,fn", [
    ("rotation", 20.0, random_affine), ("width_shift", 0.2, random_affine),
    ("height_shift", 0.2, random_affine), ("shear", 20.0, random_affine),
    ("zoom", 0.2, random_affine), ("elastic_alpha", 34.0, random_affine),
    ("horizontal_flip", True, random_flip),
    ("crop_padding", 3, random_crop), ("cutout", 6, cutout), ("noise_std", 0.05, gaussian_noise)])
def test_each_part_changes_images_alone(field, value, fn):
    aug = build_augment(AugmentConfig(**{field: value}))
    assert [f for f, _ in aug.parts] == [fn]
    x = images()
    assert not torch.equal(aug(x, gen()), x)


def test_affine_with_zero_parameters_is_identity():
    x = images()
    out = apply_affine(x, affine_matrices((16, 16), **params(8)))
    torch.testing.assert_close(out, x, atol=1e-3, rtol=0)
    torch.testing.assert_close(random_affine(x, gen()), x, atol=1e-3, rtol=0)


def test_rotation_by_known_angle_maps_pixel_where_keras_does():
    # Keras (row, col) convention: +90 degrees moves the top-centre pixel to the right-centre
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 2] = 1.0
    out = apply_affine(x, affine_matrices((5, 5), **params(1, rotation=90)), "constant")
    expected = torch.zeros_like(x)
    expected[0, 0, 2, 4] = 1.0
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_shift_by_whole_pixels_moves_content_up_left():
    x = images(b=1, c=1)
    out = apply_affine(x, affine_matrices((16, 16), **params(1, shift_y=2, shift_x=3)))
    torch.testing.assert_close(out[..., :-2, :-3], x[..., 2:, 3:], atol=1e-3, rtol=0)


@pytest.mark.parametrize("mode,scipy_mode", [("nearest", "nearest"), ("reflect", "reflect"),
                                             ("constant", "grid-constant")])
def test_matches_keras_scipy_apply_affine_transform(mode, scipy_mode):
    # keras-preprocessing (since its PR #314; before it, about h/2+.5): scipy.ndimage.affine_transform
    # with M = R T Sh Z about the true centre (h/2-.5, w/2-.5)
    ndi = pytest.importorskip("scipy.ndimage")
    theta, tx, ty, shear, zx, zy = 7.0, 1.5, -2.0, 15.0, 0.9, 1.1
    t, s = np.deg2rad(theta), np.deg2rad(shear)
    m = (np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
         @ np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
         @ np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]]) @ np.diag([zx, zy, 1]))
    h, w = 20, 28
    c = np.array([[1, 0, h / 2 - .5], [0, 1, w / 2 - .5], [0, 0, 1]])
    m = c @ m @ np.linalg.inv(c)
    img = np.random.default_rng(0).random((h, w)) * 255
    ref = ndi.affine_transform(img, m[:2, :2], m[:2, 2], order=1, mode=scipy_mode, cval=0.0)
    mats = affine_matrices((h, w), **params(1, rotation=theta, shift_y=tx, shift_x=ty,
                                            shear=shear, zoom_y=zx, zoom_x=zy))
    out = apply_affine(torch.tensor(img, dtype=torch.float32)[None, None], mats, mode)
    np.testing.assert_allclose(out[0, 0].numpy(), ref, atol=0.01)


def test_bf16_input_is_resampled_in_float32():
    # a bf16 grid is off by up to 0.6 px and PyTorch's CPU bf16 grid_sample gave NaN on an identity
    x = torch.rand(2, 3, 64, 64) * 255
    mats = affine_matrices((64, 64), **params(2, rotation=10.0))
    out = apply_affine(x.bfloat16(), mats, "nearest")
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    torch.testing.assert_close(out, apply_affine(x.bfloat16().float(), mats, "nearest").bfloat16())


def test_fill_nearest_leaves_no_black_border_constant_does():
    x = torch.full((4, 1, 16, 16), 200.0)
    kw = dict(rotation=45, width_shift=0.2, height_shift=0.2, zoom=0.3)
    near = random_affine(x, gen(), fill_mode="nearest", **kw)
    torch.testing.assert_close(near, x)
    const = random_affine(x, gen(), fill_mode="constant", **kw)
    assert (const == 0).any(dim=(1, 2, 3)).all()
    with pytest.raises(ValueError, match="fill_mode"):
        random_affine(x, gen(), rotation=5, fill_mode="wrap")


def test_flip_flips_exactly_the_drawn_samples_and_folds_into_affine():
    x = images(b=32)
    out = random_flip(x, gen(3))
    chosen = torch.rand(32, generator=gen(3)) < 0.5
    assert 0 < chosen.sum() < 32
    assert torch.equal(out[chosen], x[chosen].flip(-1)) and torch.equal(out[~chosen], x[~chosen])
    # folded into the affine matrix, the flip equals Keras' flip after the transform
    g1, g2 = gen(4), gen(4)
    folded = random_affine(x, g1, rotation=15, zoom=0.1, horizontal_flip=True)
    plain = random_affine(x, g2, rotation=15, zoom=0.1)
    flipped = torch.rand(32, generator=g2) < 0.5
    plain[flipped] = plain[flipped].flip(-1)
    torch.testing.assert_close(folded, plain, atol=1e-3, rtol=0)


@pytest.mark.parametrize("mode", ["reflect", "zeros"])
def test_crop_with_padding_shifts_content_by_whole_pixels(mode):
    p, x = 3, images(b=16, c=2)
    out = random_crop(x, gen(), p, padding_mode=mode)
    shifts = set()
    for o, i in zip(out, x):  # find the integer shift under which the overlap matches exactly
        found = [(dy, dx) for dy in range(-p, p + 1) for dx in range(-p, p + 1)
                 if torch.equal(o[:, max(dy, 0):16 + min(dy, 0), max(dx, 0):16 + min(dx, 0)],
                                i[:, max(-dy, 0):16 + min(-dy, 0), max(-dx, 0):16 + min(-dx, 0)])]
        assert found, "a crop is not an integer shift of its input"
        shifts.add(found[0])
    assert len(shifts) > 4  # independent offsets per sample
    if mode == "zeros":
        assert (out == 0).any()
    with pytest.raises(ValueError, match="reflect padding"):
        random_crop(x, gen(), 16)


def test_cutout_zeroes_one_clipped_square_per_sample():
    x, size = torch.full((64, 3, 20, 20), 7.0), 8
    out = cutout(x, gen(), size)
    full = 0
    for o in out:
        zero = o[0] == 0
        assert torch.equal(zero, (o == 0).all(0))  # all channels together
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert zero[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # a rectangle
        assert len(rows) <= size and len(cols) <= size
        area = int(zero.sum())
        clipped = rows.min() == 0 or cols.min() == 0 or rows.max() == 19 or cols.max() == 19
        assert area == size * size or clipped
        full += area == size * size
    assert full > 16 and (out[out != 0] == 7).all()


def test_noise_has_the_right_std_in_pixel_units():
    x = torch.full((64, 1, 32, 32), 100.0)
    d = gaussian_noise(x, gen(), 0.05) - x
    assert abs(d.mean().item()) < 0.2
    assert d.std().item() == pytest.approx(0.05 * 255, rel=0.02)


def test_samples_get_independent_parameters():
    x = images(b=1).expand(16, -1, -1, -1).contiguous()  # one image, repeated
    for aug in (build_augment(MNIST), build_augment(CIFAR)):
        out = aug(x, gen()).flatten(1)
        assert (torch.cdist(out, out) + torch.eye(16) * 1e9).min() > 0  # no two samples alike


def test_rejects_non_float_or_non_4d():
    aug = build_augment(CIFAR)
    with pytest.raises(ValueError, match="float"):
        aug(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), gen())
    with pytest.raises(ValueError, match="float"):
        aug(torch.zeros(1, 8, 8), gen())
    assert isinstance(aug, Augment)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_batch_matches_cpu():
    x = images()
    for cfg in (MNIST, CIFAR, ALL):
        aug = build_augment(cfg)
        out = aug(x.cuda(), gen())
        assert out.is_cuda
        torch.testing.assert_close(out.cpu(), aug(x, gen()), atol=0.05, rtol=0)


def test_batch_loader_epochs_are_reproducible_with_augmentation():
    from cnnlab.data.loader import BatchLoader
    imgs = torch.randint(0, 256, (20, 3, 12, 12), generator=gen(), dtype=torch.uint8)
    loader = BatchLoader(imgs, torch.zeros(20, dtype=torch.long), 8, mean=[0.5] * 3,
                         std=[0.25] * 3, shuffle=True, augment=build_augment(ALL))
    loader.set_epoch(3)
    first = [x for x, _ in loader]
    loader.set_epoch(3)
    again = [x for x, _ in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], next(iter(loader))[0])  # epoch 4 draws afresh


@pytest.mark.parametrize("shuffle", [True, False])
def test_alternate_flip_mirrors_each_image_in_every_other_epoch(shuffle):
    from cnnlab.data.loader import BatchLoader
    n = 40
    imgs = torch.randint(0, 256, (n, 1, 6, 6), generator=gen(), dtype=torch.uint8)
    labels = torch.arange(n)  # the label names the image
    loader = BatchLoader(imgs, labels, 16, mean=[0.0], std=[1 / 255], shuffle=shuffle,
                         alternate_flip=True)  # identity normalisation: x == pixels
    mirrored = []
    for epoch in range(4):
        loader.set_epoch(epoch)
        seen = torch.zeros(n, dtype=torch.bool)
        for x, y in loader:
            flipped = (x == imgs[y].flip(-1).float()).flatten(1).all(1)
            assert (flipped | (x == imgs[y].float()).flatten(1).all(1)).all()  # only mirrored or as is
            seen[y] = flipped
        mirrored.append(seen)
    assert torch.equal(mirrored[0], ~mirrored[1]) and torch.equal(mirrored[0], mirrored[2])
    assert 10 <= int(mirrored[0].sum()) <= 30  # a random half, not all or none
    # the recipe field: alternate flips replace the augmentation's coin toss, and need flips at all
    assert "flip" not in repr(build_augment(AugmentConfig(horizontal_flip=True, alternate_flip=True,
                                                          crop_padding=2)))
    with pytest.raises(ValueError, match="needs horizontal_flip"):
        AugmentConfig(alternate_flip=True)


# --- elastic distortion (Simard et al. 2003) --------------------------------------------------

def test_elastic_field_is_smoothed_uniform_noise_as_scipy_gaussian_filter():
    ndi = pytest.importorskip("scipy.ndimage")
    alpha, sigma, (h, w) = 34.0, 4.0, (28, 20)
    field = elastic_field(3, (h, w), gen(7), alpha, sigma)
    assert field.shape == (3, h, w, 2) and field.dtype == torch.float32
    raw = (torch.rand(3 * 2, 1, h, w, generator=gen(7)) * 2 - 1).view(3, 2, h, w).numpy()
    for i in range(3):
        for axis in range(2):  # x then y displacement
            want = alpha * ndi.gaussian_filter(raw[i, axis].astype(np.float64), sigma,
                                               mode="constant", truncate=4.0)
            np.testing.assert_allclose(field[i, :, :, axis].numpy(), want, atol=1e-4)


def test_elastic_field_is_smooth_and_scales_with_alpha():
    f = elastic_field(64, (28, 28), gen(), 34.0, 4.0)
    # a typical displacement of ~1.2 pixels, varying little from one pixel to the next
    assert 0.8 < f.std().item() < 1.8
    assert (f[:, 1:] - f[:, :-1]).abs().mean() < 0.2 * f.abs().mean()
    torch.testing.assert_close(elastic_field(64, (28, 28), gen(), 17.0, 4.0), f / 2)
    with pytest.raises(ValueError, match="sigma=0"):
        elastic_field(1, (8, 8), gen(), 34.0, 0)


def test_elastic_displacement_in_pixels_moves_content_like_a_shift(monkeypatch):
    # a field of +3 px in x and +2 px in y everywhere samples each output pixel 3 columns right
    # and 2 rows down: the same image as an affine shift of (2, 3) pixels
    x = images(b=2, c=1)
    const = torch.tensor([3.0, 2.0]).expand(2, 16, 16, 2)
    monkeypatch.setattr(augment_module, "elastic_field", lambda b, size, g, a, s: const)
    out = random_affine(x, gen(), elastic_alpha=1.0)
    torch.testing.assert_close(out, apply_affine(x, affine_matrices((16, 16), **params(
        2, shift_y=2, shift_x=3))), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="fill_mode"):
        random_affine(x, gen(), elastic_alpha=1.0, fill_mode="wrap")


def test_elastic_config_reaches_the_affine_pass():
    aug = build_augment(AugmentConfig(rotation=5, elastic_alpha=34, elastic_sigma=6))
    assert aug.parts == [(random_affine, {"rotation": 5.0, "elastic_alpha": 34.0,
                                          "elastic_sigma": 6.0, "fill_mode": "nearest"})]
    assert build_augment(AugmentConfig(elastic_sigma=6)) is None  # sigma alone is not a part
    with pytest.raises(ValueError, match="elastic_sigma"):
        AugmentConfig(elastic_alpha=34, elastic_sigma=0)


def test_noise_on_float_images_of_unknown_range_is_refused():
    """noise_std is in [0, 1] units of 0-255 pixels: on 0-1 float images it was 255x too large."""
    from cnnlab.data.loader import BatchLoader
    aug = build_augment(AugmentConfig(noise_std=0.05))
    labels = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match="Gaussian noise.*torch.float32 of no known range"):
        BatchLoader(torch.rand(4, 1, 8, 8), labels, 2, mean=(0.5,), std=(0.2,), augment=aug)
    BatchLoader(torch.rand(4, 1, 8, 8), labels, 2, mean=(0.5,), std=(0.2,),  # no noise: fine
                augment=build_augment(AugmentConfig(rotation=10)))
    BatchLoader(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), labels, 2, mean=(0.5,), std=(0.2,), augment=aug)


@pytest.mark.parametrize("overrides", [{"augment.rotation": 10.0}, {"augment.noise_std": 0.05},
                                       {"augment.horizontal_flip": True, "augment.alternate_flip": True}])
def test_augment_on_1d_signals_is_refused_before_training(tmp_path, overrides):
    # the loader's alternate flip reversed the order of a signal's values, silently; the other parts
    # failed on the first batch, after the run folder was made
    import cnnlab
    from cnnlab.data.core import ImageDataset
    from cnnlab.recipes import RecipeError
    sig = ImageDataset("signals", torch.rand(40, 1, 4, generator=gen()), torch.arange(40) % 2,
                       torch.rand(10, 1, 4, generator=gen(1)), torch.arange(10) % 2, ["a", "b"])
    recipe = cnnlab.get_recipe("iris-conv1d-fast", {"epochs": 1, **overrides})
    with pytest.raises(RecipeError, match=r"augment needs images \(C, H, W\); the examples of dataset "
                                          r"'signals' have shape \(1, 4\): use augment=null"):
        cnnlab.train(recipe, dataset=sig, run_dir=tmp_path / "r", log=lambda m: None, device="cpu")
    assert not (tmp_path / "r").exists()
    # settings that augment nothing are no augmentation: the run trains
    run = cnnlab.train(recipe.override({"augment": {"fill_mode": "constant"}}), dataset=sig,
                       run_dir=tmp_path / "n", log=lambda m: None, device="cpu")
    assert len(run.history) == 1
