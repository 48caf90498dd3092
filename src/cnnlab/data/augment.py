"""Batch augmentation: a handful of functions ``(x, generator) -> x`` on whole batches.

Every function takes ``x`` float ``(B, C, H, W)`` in pixel units 0-255 (before normalisation, as
``BatchLoader`` calls it; any C, CPU or GPU), returns a new tensor of the same shape, dtype and
device, never modifies ``x``, and draws independent parameters per sample from ``generator``, a
CPU ``torch.Generator``: the random numbers are made on the CPU and moved to ``x.device``, so a
seed gives the same batch on every device.

The affine part has the meaning of Keras' ``ImageDataGenerator`` (keras-preprocessing's
``get_random_transform`` + ``apply_affine_transform``, whose scipy ``ndimage`` version works in
(row, col) coordinates): rotation, shifts, shear and zoom are combined into one matrix per sample
and the batch is resampled once (``F.affine_grid`` + ``F.grid_sample``, bilinear, like Keras'
``interpolation_order=1``). It turns about the true centre ``((h - 1) / 2, (w - 1) / 2)``, as
keras-preprocessing does since its October 2020 fix (PR #314); releases before it (up to 1.1.2)
turned about ``(h / 2 + 0.5, w / 2 + 0.5)``, one pixel below and right of the centre. Otherwise it
is keras-preprocessing's matrix, pixel for pixel; later versions (tf.keras 2.9+, Keras 3's
legacy ``ImageDataGenerator``) swap the matrix's axes, so there rotation turns the other way, the
height shift moves sideways and the shear acts along the other axis. With the ranges the seeds
use on square images (equal shifts, one zoom range, symmetric rotation) only the shear's axis
differs.

Elastic distortion (Simard, Steinkraus & Platt 2003, "Best Practices for Convolutional Neural
Networks Applied to Visual Document Analysis"), not a Keras option, adds a smooth random
displacement field to the same sampling grid, so it too costs no extra pass.
Random crop with padding and cutout are the CIFAR practice of airbench and DeVries & Taylor 2017
("Improved Regularization of CNNs with Cutout").
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # only for annotations: data/ does not import recipes/ at run time
    from ..recipes.base import AugmentConfig

# Keras/scipy fill modes -> grid_sample padding modes. 'nearest' repeats the edge pixel (scipy
# 'nearest'); 'reflect' mirrors about the image border (scipy 'reflect', d c b a | a b c d);
# 'constant' fills with 0 (Keras' cval=0, black in pixel units) and, like scipy 'grid-constant',
# blends the outermost pixels with the fill for sample points within one pixel outside the image,
# where scipy 'constant' (Keras) gives the fill for any point outside the outer pixel centres.
FILL_MODES = {"nearest": "border", "constant": "zeros", "reflect": "reflection"}


def affine_matrices(size: tuple[int, int], rotation: torch.Tensor, shift_y: torch.Tensor,
                    shift_x: torch.Tensor, shear: torch.Tensor, zoom_y: torch.Tensor,
                    zoom_x: torch.Tensor) -> torch.Tensor:
    """``F.affine_grid`` matrices for given per-sample Keras transform parameters.

    Keras' matrix maps an output pixel to the input pixel it samples, about the image centre:
    ``M = R(rotation) @ T(shift) @ Shear @ Zoom`` in (row, col) coordinates, so positive
    ``rotation`` moves the top-centre pixel to the right-centre, a positive shift moves content
    up/left and zoom > 1 shrinks the content. Keras' ``tx, ty, zx, zy`` are this function's
    ``shift_y, shift_x, zoom_y, zoom_x`` (its ``tx`` is the height shift).

    Args:
        size: image (height, width) in pixels.
        rotation, shear: float ``(B,)``, degrees. shift_y, shift_x: float ``(B,)``, pixels.
        zoom_y, zoom_x: float ``(B,)``, scale factors (1 = none).

    Returns:
        float ``(B, 2, 3)`` on the parameters' device, in affine_grid's normalised (x, y)
        coordinates with ``align_corners=False``, whose origin is the image's true centre
        (pixel ``(h - 1) / 2``, keras-preprocessing's ``h / 2 - 0.5`` since its PR #314).
    """
    h, w = size
    t, s = torch.deg2rad(rotation), torch.deg2rad(shear)
    one, zero = torch.ones_like(t), torch.zeros_like(t)

    def mat(a, b, c, d):  # (B,) x 4 -> (B, 2, 2)
        return torch.stack([a, b, c, d], -1).view(-1, 2, 2)

    rot = mat(t.cos(), -t.sin(), t.sin(), t.cos())
    lin = rot @ mat(one, -s.sin(), zero, s.cos()) @ mat(zoom_y, zero, zero, zoom_x)
    off = rot @ torch.stack([shift_y, shift_x], -1).unsqueeze(-1)  # Keras shifts before rotating
    # (row, col) pixels -> (x, y) normalised: swap both axes, then scale pixels by 2 / size
    lin, off = lin.flip(-1).flip(-2), off.flip(-2)
    d = torch.tensor([2.0 / w, 2.0 / h], dtype=lin.dtype, device=lin.device)
    return torch.cat([lin * d[:, None] / d, off * d[:, None]], -1)


def apply_affine(x: torch.Tensor, matrices: torch.Tensor, fill_mode: str = "nearest",
                 displacement: torch.Tensor | None = None) -> torch.Tensor:
    """Resample ``x`` (B, C, H, W) once with per-sample ``matrices`` (B, 2, 3), bilinearly.

    ``displacement`` (optional, float ``(B, H, W, 2)``, pixels, (x, y) order: an
    :func:`elastic_field`) moves each output pixel's sample point after the affine map.

    Raises:
        ValueError: unknown ``fill_mode`` (nearest, constant or reflect).
    """
    if fill_mode not in FILL_MODES:
        raise ValueError(f"unknown fill_mode {fill_mode!r}; choose one of {', '.join(FILL_MODES)}")
    # in float32 at least: a bf16 grid is off by up to 0.6 px and CPU bf16 grid_sample gives NaN
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    grid = F.affine_grid(matrices.to(x.device, work.dtype), list(x.shape), align_corners=False)
    if displacement is not None:  # pixels -> affine_grid's normalised units
        h, w = x.shape[-2:]
        grid = grid + (displacement * torch.tensor([2.0 / w, 2.0 / h])).to(x.device, work.dtype)
    return F.grid_sample(work, grid, mode="bilinear", padding_mode=FILL_MODES[fill_mode],
                         align_corners=False).to(x.dtype)


def elastic_field(b: int, size: tuple[int, int], g: torch.Generator, alpha: float,
                  sigma: float) -> torch.Tensor:
    """Simard et al. (2003)'s random displacement fields, in pixels (Simard, Steinkraus & Platt,
    "Best practices for convolutional neural networks applied to visual document analysis", ICDAR).

    Per sample and axis, a displacement uniform in [-1, 1) per pixel is smoothed by a Gaussian of
    standard deviation ``sigma`` pixels (separable, truncated at 4 sigma, zero beyond the image
    as scipy's ``gaussian_filter(mode="constant")``) and scaled by ``alpha`` pixels. Simard et
    al. used sigma 4, alpha 34 on MNIST: displacements with a standard deviation of about 1.2
    pixels (on 28x28 images) that vary smoothly over the image.

    Args:
        b: number of fields. size: image (height, width). g: CPU generator.
        alpha: scale, pixels (> 0). sigma: smoothing, pixels (> 0).

    Returns:
        float32 ``(B, H, W, 2)`` on the CPU: (x, y) displacement of each output pixel's sample
        point, in pixels (``grid_sample``'s last-axis order).

    Raises:
        ValueError: ``alpha`` or ``sigma`` not positive.
    """
    if not (alpha > 0 and sigma > 0):
        raise ValueError(f"elastic distortion needs alpha > 0 and sigma > 0 (pixels), got "
                         f"alpha={alpha!r}, sigma={sigma!r}")
    h, w = size
    radius = int(4 * sigma + 0.5)
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, -1)
    d = torch.rand(b * 2, 1, h, w, generator=g) * 2 - 1  # (x, y) fields of every sample
    d = F.conv2d(d, k.view(1, 1, 1, -1), padding=(0, radius))  # smooth along rows ...
    d = F.conv2d(d, k.view(1, 1, -1, 1), padding=(radius, 0))  # ... then along columns
    return (d * alpha).view(b, 2, h, w).permute(0, 2, 3, 1)


def random_affine(x: torch.Tensor, g: torch.Generator, rotation: float = 0.0,
                  width_shift: float = 0.0, height_shift: float = 0.0, shear: float = 0.0,
                  zoom: float = 0.0, horizontal_flip: bool = False,
                  fill_mode: str = "nearest", elastic_alpha: float = 0.0,
                  elastic_sigma: float = 4.0) -> torch.Tensor:
    """Keras ``ImageDataGenerator`` rotation/shift/shear/zoom (+ flip), one resampling per batch.

    Per sample, uniformly: rotation in [-rotation, rotation] degrees (``rotation_range``); shifts
    in [-width_shift, width_shift] * W and [-height_shift, height_shift] * H pixels
    (``width/height_shift_range`` < 1); shear in [-shear, shear] degrees (Keras 2's
    ``shear_range`` is in degrees); zoom_y and zoom_x independently in [1 - zoom, 1 + zoom]
    (``zoom_range``). With ``horizontal_flip`` half the samples are mirrored after the transform,
    as Keras does, folded into the same matrix (negated x column) so there is no extra pass.
    With ``elastic_alpha`` > 0 an :func:`elastic_field` is added to the sampling grid: each output
    pixel samples the affine-transformed point moved by its smooth random displacement.

    Args:
        x: float ``(B, C, H, W)``, pixel units. g: CPU generator for the random parameters.
        fill_mode: ``nearest`` (repeat the edge), ``constant`` (0), ``reflect``.
        elastic_alpha, elastic_sigma: elastic distortion scale and smoothing, pixels (alpha 0:
            none).

    Raises:
        ValueError: unknown ``fill_mode``; ``elastic_sigma`` not positive with ``elastic_alpha``.
    """
    b, _, h, w = x.shape
    u = torch.rand(6, b, generator=g, dtype=torch.float64) * 2 - 1  # U[-1, 1), one row per param
    m = affine_matrices((h, w), u[0] * rotation, u[1] * height_shift * h, u[2] * width_shift * w,
                        u[3] * shear, 1 + u[4] * zoom, 1 + u[5] * zoom)
    if horizontal_flip:  # flipping output columns == sampling at x -> -x
        m[:, :, 0] *= torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0).double()[:, None]
    field = elastic_field(b, (h, w), g, elastic_alpha, elastic_sigma) if elastic_alpha else None
    return apply_affine(x, m, fill_mode, field)


def random_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Mirror left-right the samples where ``torch.rand(B, generator=g) < 0.5`` (Keras
    ``horizontal_flip``); ``x`` float ``(B, C, H, W)``."""
    flip = (torch.rand(x.shape[0], generator=g) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_crop(x: torch.Tensor, g: torch.Generator, padding: int,
                padding_mode: str = "reflect") -> torch.Tensor:
    """Pad by ``padding`` px on each side, crop back to (H, W) at a random offset per sample.

    Each sample is shifted by whole pixels, dy and dx uniform in [-padding, padding]. The default
    ``reflect`` padding (d c b | a b c d, airbench's choice) keeps the borders natural;
    ``zeros`` is torchvision's ``RandomCrop(size, padding)`` (black borders in pixel units).

    Args:
        x: float ``(B, C, H, W)``. g: CPU generator for the offsets.

    Raises:
        ValueError: ``padding_mode`` not reflect/zeros, or reflect padding >= H or W.
    """
    b, c, h, w = x.shape
    if padding_mode not in ("reflect", "zeros"):
        raise ValueError(f"padding_mode must be 'reflect' or 'zeros', got {padding_mode!r}")
    if padding_mode == "reflect" and padding >= min(h, w):
        raise ValueError(f"reflect padding {padding} needs images larger than it, got {h}x{w}")
    p = padding
    xp = F.pad(x, (p, p, p, p), mode="reflect" if padding_mode == "reflect" else "constant")
    off = torch.randint(0, 2 * p + 1, (2, b, 1), generator=g).to(x.device)  # top, left per sample
    rows = off[0] + torch.arange(h, device=x.device)  # (B, H) rows of the padded image
    cols = off[1] + torch.arange(w, device=x.device)  # (B, W)
    # one gather of the flattened padded image: no Python loop over samples
    idx = (rows[:, :, None] * (w + 2 * p) + cols[:, None, :]).view(b, 1, h * w)
    return xp.flatten(2).gather(2, idx.expand(b, c, h * w)).view(b, c, h, w)


def cutout(x: torch.Tensor, g: torch.Generator, size: int) -> torch.Tensor:
    """Zero a ``size`` x ``size`` pixel square per sample, all channels (cutout: DeVries & Taylor 2017,
    "Improved regularization of convolutional neural networks with cutout", arXiv:1708.04552).

    The centre is uniform over the image and the square is clipped at the borders, as in the
    paper's code, so a square near an edge has a smaller area; rows ``cy - size // 2`` to
    ``cy - size // 2 + size - 1`` (likewise columns) are zeroed. The paper zeroes after
    normalisation, i.e. fills with the dataset mean; here 0 is a black pixel (in pixel units,
    before normalisation), the simplest fill that needs no dataset statistics.

    Args:
        x: float ``(B, C, H, W)``. g: CPU generator for the centres.
    """
    b, _, h, w = x.shape
    start = (torch.stack([torch.randint(0, h, (b,), generator=g),
                          torch.randint(0, w, (b,), generator=g)]) - size // 2).to(x.device)
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_y = (ys >= start[0, :, None]) & (ys < start[0, :, None] + size)  # (B, H)
    in_x = (xs >= start[1, :, None]) & (xs < start[1, :, None] + size)  # (B, W)
    return x.masked_fill(in_y[:, None, :, None] & in_x[:, None, None, :], 0.0)


def gaussian_noise(x: torch.Tensor, g: torch.Generator, std: float) -> torch.Tensor:
    """Add N(0, (std * 255)^2) per pixel: ``std`` is in [0, 1] image units, ``x`` in 0-255.

    Equals Keras ``GaussianNoise(std)`` / the seed's ``x + tf.random.normal(stddev=std)`` on
    [0, 1]-scaled images. Like them, the result is not clipped to the pixel range.
    """
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    return noise.mul_(std * 255.0).add_(x)


class Augment:
    """The enabled parts of an ``AugmentConfig``, applied in order; ``repr`` names them.

    Called as ``augment(x, generator)`` with ``x`` float ``(B, C, H, W)`` in pixel units.

    Raises:
        ValueError (on call): ``x`` not a 4-D floating-point tensor.
    """

    def __init__(self, parts: list[tuple[Callable, dict]]):
        self.parts = parts

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if x.dim() != 4 or not x.is_floating_point():
            raise ValueError(f"augment expects float (B, C, H, W) images, got {x.dtype} "
                             f"{tuple(x.shape)}")
        for fn, kw in self.parts:
            x = fn(x, g, **kw)
        return x

    def __repr__(self) -> str:
        parts = (f"{fn.__name__}({', '.join(f'{k}={v!r}' for k, v in kw.items())})"
                 for fn, kw in self.parts)
        return f"Augment({', '.join(parts)})"


def build_augment(cfg: AugmentConfig | None) -> Augment | None:
    """The batch function for ``cfg``, or None when every magnitude is 0 (or ``cfg`` is None).

    Order: random crop, affine (+ flip, + elastic distortion), flip (when there is no affine to
    fold it into), noise (Keras applies ``preprocessing_function`` after the transform), cutout
    (last, as in DeVries & Taylor, so the square stays exactly 0). Disabled parts are left out, costing nothing. With
    ``alternate_flip`` there is no flip here: :class:`~cnnlab.data.loader.BatchLoader` mirrors
    the images by epoch (``alternate_flip=True``) before this function sees them.
    """
    if cfg is None:
        return None
    parts: list[tuple[Callable, dict]] = []
    if cfg.crop_padding:
        parts.append((random_crop, {"padding": cfg.crop_padding, "padding_mode": cfg.crop_mode}))
    affine = {k: getattr(cfg, k) for k in ("rotation", "width_shift", "height_shift", "shear",
                                          "zoom", "elastic_alpha") if getattr(cfg, k)}
    if cfg.elastic_alpha:
        affine["elastic_sigma"] = cfg.elastic_sigma
    coin_flip = cfg.horizontal_flip and not cfg.alternate_flip  # alternate: the loader flips
    if affine:
        if coin_flip:
            affine["horizontal_flip"] = True
        parts.append((random_affine, {**affine, "fill_mode": cfg.fill_mode}))
    elif coin_flip:
        parts.append((random_flip, {}))
    if cfg.noise_std:
        parts.append((gaussian_noise, {"std": cfg.noise_std}))
    if cfg.cutout:
        parts.append((cutout, {"size": cfg.cutout}))
    return Augment(parts) if parts else None
