"""The in-memory batch loader: batches are sliced from uint8 tensors, normalised on the fly.

No per-sample Python and no worker processes: for datasets that fit in memory (all the seed
datasets do, many times over) an index-select of a uint8 tensor plus one fused scale-and-shift is
far cheaper than a DataLoader. With a GPU, the uint8 tensors are moved to it once and every batch
is made there.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class BatchLoader:
    """Iterate over ``(x, y)`` batches of an in-memory dataset.

    Args:
        images: uint8 ``(N, C, H, W)`` (pixels 0-255) or float32 ``(N, C, L)`` signals.
        labels: int64 ``(N,)``.
        batch_size: examples per batch; the last batch may be smaller unless ``drop_last``.
        mean, std: per-channel normalisation, in [0, 1] units for uint8 images.
        shuffle: draw a new permutation every epoch (from ``seed`` and the epoch number, so a
            resumed run sees the same order as an uninterrupted one).
        augment: optional batch function ``(x float32 (B, C, H, W) in pixel units 0-255,
            generator) -> x``, applied before normalisation (training loaders only); float
            images are passed in their own units (an Augment with noise is refused for them:
            its std is in units of 0-255 pixels).
        device: where batches are produced (the data is moved there once).
        channels_last: return image batches in channels_last memory format.
        alternate_flip: mirror image ``i`` in epoch ``e`` exactly when ``phase[i] != e % 2``, with
            ``phase`` a fixed random half of the images (drawn from ``seed``): every image is seen
            mirrored in every other epoch (airbench's alternating flip, Jordan 2024,
            arXiv:2404.00498, which beats a coin toss per epoch in short runs). Done before
            ``augment``, on the uint8 images.
        rank, world_size: data-parallel training (:mod:`cnnlab.distributed`): every batch of the
            epoch's permutation (the same on every process) is cut into ``world_size`` equal
            parts and process ``rank`` gets part ``rank``, of ``batch_size // world_size``
            examples; the last incomplete batch is dropped. Each process draws its own
            augmentation stream.

    Yields:
        ``x`` float32 ``(B, C, H, W)`` normalised, ``y`` int64 ``(B,)``.

    Raises:
        ValueError: ``batch_size`` < 1 or not divisible by ``world_size``; images and labels
            of different lengths; ``rank`` outside ``0..world_size-1``; images that are not
            uint8 ``(N, C, H, W)`` or float ``(N, C, L)`` / ``(N, C, H, W)`` (NHWC named as such);
            ``mean``/``std`` with neither 1 nor C entries, or, for uint8 images, above 1 (0-255
            units); NaN or infinite float images; labels that are not class indices ``(N,)``
            (bool and whole-number float labels are taken, as int64); an ``augment`` with
            Gaussian noise for float images.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 mean: Sequence[float], std: Sequence[float], shuffle: bool = False, seed: int = 0,
                 augment: Augment | None = None, device: torch.device | str = "cpu",
                 channels_last: bool = False, drop_last: bool = False, alternate_flip: bool = False,
                 rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} does not divide into {world_size} processes' "
                             f"equal parts; use a multiple of {world_size}, e.g. "
                             f"{batch_size - batch_size % world_size or world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.rank, self.world_size = rank, world_size
        drop_last = drop_last or world_size > 1
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        _check_batch_inputs(images, labels, mean, std)
        if augment is not None and images.dtype != torch.uint8 and _adds_noise(augment):
            raise ValueError("augment adds Gaussian noise, whose std is in [0, 1] units of 0-255 "
                             f"pixels, but the images are {images.dtype} of no known range: pass "
                             "uint8 pixels, or leave the noise out")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.augment, self.drop_last = augment, drop_last
        self.channels_last = channels_last and images.dim() == 4
        shape = (1, -1) + (1,) * (images.dim() - 2)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(shape)
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(shape)
        # x_norm = (x / 255 - mean) / std  ==  x * scale + shift: one fused multiply-add per batch
        pixel = 255.0 if images.dtype == torch.uint8 else 1.0
        self.scale = 1.0 / (pixel * std_t)
        self.shift = -mean_t / std_t
        self.epoch = 0
        self.generator = torch.Generator(device="cpu")
        self.flip_phase = None
        if alternate_flip:
            g = torch.Generator().manual_seed(seed * 1_000_003 + 999_983)
            self.flip_phase = (torch.rand(len(labels), generator=g) < 0.5).to(self.device)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation and augmentation stream the next pass uses."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        self.generator.manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=self.generator).to(self.device) if self.shuffle else None
        if self.rank:  # the permutation is shared; the augmentation stream is this process's own
            self.generator.manual_seed(((self.seed * 1_000_003 + self.epoch) * 65_537 + self.rank) % 2 ** 64)
        stop = len(self) * self.batch_size
        part = self.batch_size // self.world_size  # this process's share of each batch
        for i in range(0, min(n, stop), self.batch_size):
            i += self.rank * part  # (world_size 1: rank 0, part = batch_size: the whole batch)
            idx = slice(i, i + part) if order is None else order[i:i + part]  # a view when in order
            xb, yb = self.images[idx], self.labels[idx]
            if self.flip_phase is not None:
                flip = self.flip_phase[idx]
                flip = flip != bool(self.epoch % 2)
                xb = torch.where(flip.view(-1, *[1] * (xb.dim() - 1)), xb.flip(-1), xb)
            if self.augment is not None:
                # augment in pixel units, so a constant fill of 0 means black, as in Keras
                x = torch.addcmul(self.shift, self.augment(xb.float(), self.generator), self.scale)
            else:
                x = torch.addcmul(self.shift, xb.float(), self.scale)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, yb
        self.epoch += 1


def _adds_noise(augment) -> bool:
    from .augment import gaussian_noise
    return any(fn is gaussian_noise for fn, _ in getattr(augment, "parts", ()))


def _check_batch_inputs(images: torch.Tensor, labels: torch.Tensor, mean, std) -> None:
    """The mistakes PyTorch would report later as a shape or dtype clash deep in a model."""
    if images.dim() not in (3, 4) or not (images.dtype == torch.uint8 or images.is_floating_point()):
        raise ValueError(f"images must be uint8 (N, C, H, W) or float (N, C, L), got {images.dtype} "
                         f"{tuple(images.shape)}")
    c = images.shape[1]
    if len(mean) != len(std) or len(mean) not in (1, c):
        nhwc = (images.dim() == 4 and images.shape[-1] in (len(mean), len(std))
                and images.shape[-1] != c)
        hint = ("; the images look NHWC (channels last): images.permute(0, 3, 1, 2)" if nhwc else "")
        raise ValueError(f"{c}-channel images (shape {tuple(images.shape)}, NCHW) but {len(mean)} "
                         f"mean and {len(std)} std values; give 1 or {c} of each{hint}")
    if images.dtype == torch.uint8 and max(map(abs, (*mean, *std))) > 1:
        raise ValueError(f"mean {tuple(mean)} and std {tuple(std)} are in [0, 1] units for uint8 "
                         "images (the loader divides by 255 first); divide them by 255")
    check_finite(images)
    class_indices(labels)


def check_finite(images: torch.Tensor, what: str = "images") -> None:
    """Raise ValueError naming the first example of float ``images`` that holds NaN or inf."""
    if images.is_floating_point() and not bool(torch.isfinite(images).all()):
        bad = int((~torch.isfinite(images)).flatten(1).any(1).nonzero()[0])
        raise ValueError(f"{what} hold NaN or infinite values, e.g. example {bad}")


def class_indices(labels: torch.Tensor, what: str = "labels") -> torch.Tensor:
    """``labels`` as int64 class indices ``(N,)``: integer, bool or whole-number float labels
    (a binary task's 0./1.) are converted.

    Raises:
        ValueError: labels of another shape (one-hot: said) or with fractions.
    """
    whole = not labels.is_floating_point() or bool((labels == labels.round()).all())
    if labels.dim() != 1 or not whole or labels.is_complex():
        hint = "; one-hot? labels.argmax(1) gives the indices" if labels.dim() == 2 else ""
        raise ValueError(f"{what} must be integer class indices (N,), got {labels.dtype} "
                         f"{tuple(labels.shape)}{hint}")
    return labels.long()
