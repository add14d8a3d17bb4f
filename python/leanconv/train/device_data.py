"""A whole small dataset held on the training device, augmented there (``python -m leanconv.train
--data-on-device``).

On a GPU a small model at batch 128 steps in a few milliseconds; DataLoader workers decoding and cropping single
images on the CPU cannot keep up, and each batch's copy to the device waits on them. Fashion-MNIST is 47 MB as
uint8 (CIFAR 150 MB, SVHN 180 MB): it is copied to the device once, and every batch is gathered, cropped, flipped
and normalised there in a few kernels.

The augmentations are those of :mod:`leanconv.train.datasets` (zero padding then a random crop, a horizontal flip
where the dataset has one), drawn for a whole epoch at its start from a generator seeded by the run's seed and the
epoch: a resumed run redraws the same ones, so a resume stays exact.
"""
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import torch
from torch import Tensor


@dataclass(frozen=True)
class Augmentation:
    pad: int = 0          # zero padding added around every image (train and test), e.g. 28 -> 32
    crop_padding: int = 0  # training: a random crop of the padded size from this much more padding
    flip: bool = False     # training: a horizontal flip with probability 1/2
    # training: with this probability a rectangle of 2-33% of the image, aspect ratio 0.3-3.3, is set to the mean
    # (0 after normalisation), as torchvision's RandomErasing (Zhong et al.) after Normalize
    erasing: float = 0.0


class DeviceImages:
    """``images`` (N, C, H, W) uint8 and ``labels`` (N,) int64 on ``device``; batches come out as normalised float
    images of size H + 2 * pad, augmented when ``train``."""

    def __init__(self, images: Tensor, labels: Tensor, mean: Sequence[float], std: Sequence[float],
                 augmentation: Augmentation, train: bool, device):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"leanconv: device images must be (N, C, H, W) uint8, got {tuple(images.shape)} "
                             f"{images.dtype}")
        if len(images) != len(labels):
            raise ValueError(f"leanconv: {len(images)} images but {len(labels)} labels")
        self.images, self.labels = images.to(device), labels.to(device=device, dtype=torch.int64)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255
        self.augmentation, self.train = augmentation, train
        self.size = images.shape[-1] + 2 * augmentation.pad

    def __len__(self) -> int:
        return len(self.labels)

    def first(self, count: int) -> "DeviceImages":
        """The first ``count`` images (``--train-subset``), sharing this one's storage."""
        subset = object.__new__(DeviceImages)
        subset.__dict__.update(self.__dict__)
        subset.images, subset.labels = self.images[:count], self.labels[:count]
        return subset

    def epoch_draws(self, seed: int, epoch: int) -> Optional[Tuple[Tensor, ...]]:
        """Every image's crop offsets (rows, columns), flip and erased rectangle (top, left, height, width; height 0:
        none) for one epoch, or None without augmentation."""
        a = self.augmentation
        if not self.train or (a.crop_padding == 0 and not a.flip and a.erasing == 0):
            return None
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7_919)
        count = len(self)
        rows = torch.randint(0, 2 * a.crop_padding + 1, (count,), generator=generator)
        cols = torch.randint(0, 2 * a.crop_padding + 1, (count,), generator=generator)
        flips = torch.rand(count, generator=generator) < 0.5 if a.flip else torch.zeros(count, dtype=torch.bool)
        erased = self._erased_rectangles(count, generator)
        device = self.images.device
        return tuple(t.to(device) for t in (rows, cols, flips, *erased))

    def _erased_rectangles(self, count: int, generator) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """RandomErasing's draws for every image: an area of 2-33% of the image, a log-uniform aspect ratio in
        [0.3, 3.3], a position inside the image; height 0 where the image is not erased (or nothing fits)."""
        size = self.size
        erase = torch.rand(count, generator=generator) < self.augmentation.erasing
        area = size * size * (0.02 + 0.31 * torch.rand(count, generator=generator))
        ratio = torch.exp(torch.empty(count).uniform_(-1.2040, 1.1939, generator=generator))  # log 0.3, log 3.3
        height = torch.sqrt(area * ratio).round().long().clamp(max=size)
        width = torch.sqrt(area / ratio).round().long().clamp(max=size)
        top = (torch.rand(count, generator=generator) * (size - height + 1)).long()
        left = (torch.rand(count, generator=generator) * (size - width + 1)).long()
        height = torch.where(erase, height, torch.zeros_like(height))
        return top, left, height, width

    def batch(self, indices: Tensor, draws=None) -> Tuple[Tensor, Tensor]:
        """The images at ``indices`` (a CPU or device int64 tensor), augmented with their draws, and their labels."""
        indices = indices.to(self.images.device)
        x = self.images[indices].float()
        margin = self.augmentation.pad + (self.augmentation.crop_padding if draws is not None else 0)
        if margin:
            x = torch.nn.functional.pad(x, (margin,) * 4)
        if draws is not None:  # each image's crop (rows, then columns, flipped where drawn) as two gathers
            rows, cols, flips, top, left, height, width = (d[indices] for d in draws)
            n, channels, _, padded_width = x.shape
            steps = torch.arange(self.size, device=x.device)
            row_index = (rows[:, None] + steps)[:, None, :, None].expand(n, channels, self.size, padded_width)
            col_index = cols[:, None] + steps
            col_index = torch.where(flips[:, None], col_index.flip(1), col_index)
            x = x.gather(2, row_index).gather(3, col_index[:, None, None, :].expand(n, channels, self.size, self.size))
            x = (x - self.mean) / self.std
            inside_rows = (steps >= top[:, None]) & (steps < (top + height)[:, None])
            inside_cols = (steps >= left[:, None]) & (steps < (left + width)[:, None])
            erased = inside_rows[:, None, :, None] & inside_cols[:, None, None, :]
            return x.masked_fill(erased, 0.0), self.labels[indices]
        return (x - self.mean) / self.std, self.labels[indices]

    def batches(self, order: Sequence[int], batch_size: int, seed: int = 0,
                epoch: int = 0) -> Iterator[Tuple[Tensor, Tensor]]:
        """The batches of ``order`` (sample indices) in order, augmented with the epoch's draws; the last one may be
        partial (an EpochOrder holds whole batches only)."""
        draws = self.epoch_draws(seed, epoch)
        order = torch.as_tensor(order, dtype=torch.int64)
        for first in range(0, len(order), batch_size):
            yield self.batch(order[first:first + batch_size], draws)
