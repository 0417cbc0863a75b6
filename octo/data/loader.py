"""A data loader for data sets that fit on the training device: batches are slices of device tensors.

The small image benchmarks (MNIST: 47 MB, CIFAR-10: 184 MB as uint8) fit on any GPU, so instead of worker
processes, per-sample ``__getitem__`` calls and host-to-device copies every step, the whole set stays on the
device and a batch is an index gather plus a fused scale-and-normalise: a few kernels, no per-sample Python.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor

from octo.data.augment import crop_flip
from octo.utils.errors import ConfigError, check_int

_MASK64 = (1 << 64) - 1


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed for ``(seed, epoch)`` (SplitMix64 finaliser).

    Plain ``seed + epoch`` would make run seed=1 at epoch 0 shuffle exactly like run seed=0 at epoch 1, which
    correlates the runs of a multi-seed comparison.
    """
    z = ((seed & 0xFFFFFFFF) << 32 | (epoch & 0xFFFFFFFF)) + 0x9E3779B97F4A7C15
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1


class DeviceLoader:
    """Iterates over uint8 images and labels held on one device, yielding normalised float batches.

    A train loader (``train=True``) shuffles (a full batch keeps its order), optionally augments, makes
    ``passes`` passes per epoch and yields ``(x, y, pass_idx)``; an eval loader keeps the order, never augments
    and yields ``(x, y)``.
    ``limit`` caps the batches of a training epoch, shared out over the passes (see :attr:`pass_lengths`), so
    that every pass -- every phase of a multi-phase algorithm -- gets its turn however small the limit.
    ``batch_size=-1`` gives the whole set as one batch. The shuffling of epoch ``e`` depends only on
    ``(seed, e)``: Lightning calls :meth:`set_epoch` before each epoch (through :attr:`sampler`), so a resumed
    run sees the same order as an uninterrupted one; without Lightning the epoch counts up once per iteration.
    """

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, mean: Sequence[float],
                 std: Sequence[float], *, train: bool = False, augment: Mapping | None = None,
                 drop_last: bool = False, seed: int = 0, passes: int = 1, limit: int | None = None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {list(images.shape)}")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"labels {list(labels.shape)} do not match {len(images)} images")
        n, c = images.shape[:2]
        if len(mean) != c or len(std) != c:
            raise ConfigError(f"dataset.mean/std need {c} values (one per channel), "
                              f"got {list(mean)} / {list(std)}")
        if batch_size != -1 and not (isinstance(batch_size, int) and batch_size >= 1):
            raise ConfigError(f"batch_size={batch_size!r} must be an int >= 1 or -1 (full batch)")
        augment = dict(augment or {})
        self.crop_padding = int(augment.pop("crop_padding", 0))
        self.hflip = bool(augment.pop("hflip", False))
        if augment:
            raise ConfigError(f"unknown dataset.augment keys {sorted(augment)}; valid: crop_padding, hflip")
        if not train and (self.crop_padding or self.hflip or drop_last or limit is not None):
            raise ConfigError("eval loaders neither augment, drop nor limit batches: they see every image as it is")
        if n == 0:
            raise ValueError("cannot make a loader over 0 images")
        self.images, self.labels = images, labels
        self.batch_size = n if batch_size == -1 else batch_size
        if drop_last and self.batch_size > n:
            raise ConfigError(f"batch_size={batch_size} with drop_last exceeds the {n} images: no batch")
        self.train, self.drop_last, self.seed, self.passes, self.limit = train, drop_last, seed, passes, limit
        self._check_passes()
        # x / 255 then (x - mean) / std, folded into one multiply-add per element
        std_t = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, c, 1, 1)
        mean_t = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, c, 1, 1)
        self.scale, self.shift = 1.0 / (255.0 * std_t), -mean_t / std_t
        self.epoch = 0

    # --- Lightning integration ------------------------------------------------------------------------------
    #: Lightning inspects ``batch_sampler`` when a ``sampler`` exists; None = "no batch sampler"
    batch_sampler = None

    @property
    def sampler(self) -> DeviceLoader:
        """Lightning calls ``dataloader.sampler.set_epoch(epoch)`` at each epoch start: route it to us."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration shuffle as epoch ``epoch``."""
        self.epoch = int(epoch)

    # --- iteration ------------------------------------------------------------------------------------------
    @property
    def batches_per_pass(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def pass_lengths(self) -> list[int]:
        """Batches of each training pass: all of them, or ``limit`` shared out as evenly as possible.

        Passes run one after another, so cutting the epoch at ``limit`` batches would starve the later passes
        (the later phases of a multi-phase algorithm would never train); each pass is cut instead, the earlier
        ones taking the remainder. ``limit`` batches in all, the first batches of each pass's usual order.
        """
        full = self.batches_per_pass
        if self.limit is None or self.limit >= full * self.passes:
            return [full] * self.passes
        share, extra = divmod(self.limit, self.passes)
        return [share + (p < extra) for p in range(self.passes)]

    def __len__(self) -> int:
        return sum(self.pass_lengths) if self.train else self.batches_per_pass

    def _check_passes(self) -> None:
        check_int("train_passes", self.passes, 1)
        if self.limit is not None and not (isinstance(self.limit, int) and self.limit >= self.passes):
            raise ConfigError(f"a limit of {self.limit!r} training batches cannot give each of the "
                              f"{self.passes} passes a batch; it must be an int >= {self.passes}")

    def normalise(self, x: Tensor) -> Tensor:
        """uint8 ``[B, C, H, W]`` -> float32, scaled to [0, 1] and standardised per channel."""
        return torch.addcmul(self.shift, x.float(), self.scale)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor] | tuple[Tensor, Tensor, int]]:
        if not self.train:
            yield from self._eval_batches()
            return
        self._check_passes()  # again here: the training code may set ``passes`` after construction
        gen = torch.Generator(device=self.images.device)
        gen.manual_seed(epoch_seed(self.seed, self.epoch))
        self.epoch += 1
        n, bs = len(self.images), self.batch_size
        for pass_idx, n_batches in enumerate(self.pass_lengths):
            # a full batch keeps its order: its gradient does not depend on it, and per-sample choices made once
            # (the reference FF's negative labels, neg_label=shuffle_once) stay attached to their samples
            perm = (torch.arange(n, device=self.images.device) if bs >= n
                    else torch.randperm(n, device=self.images.device, generator=gen))
            for i in range(n_batches):
                idx = perm[i * bs: (i + 1) * bs]
                x = crop_flip(self.images[idx], self.crop_padding, self.hflip, gen)
                yield self.normalise(x), self.labels[idx], pass_idx

    def _eval_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        bs = self.batch_size
        for i in range(self.batches_per_pass):  # contiguous slices: views, no gather needed
            yield self.normalise(self.images[i * bs: (i + 1) * bs]), self.labels[i * bs: (i + 1) * bs]
