"""A small generated image classification task for tests and CI: no files, deterministic, learnable.

Each class has a prototype image made of a Gaussian blob at a class-specific place plus a stripe pattern with
a class-specific orientation (so both dense and convolutional models can pick it up); samples are the
prototype of their class plus Gaussian pixel noise, stored as uint8 like the real data sets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from octo.utils.errors import ConfigError, check_int, check_positive

#: stream ids for numpy's SeedSequence: prototypes and each split draw from independent streams, so the test
#: set does not change when n_train does
_STREAMS = {"prototypes": 0, "train": 1, "test": 2}


def _prototypes(shape: Sequence[int], num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``[num_classes, C, H, W]`` patterns in [0, 1]."""
    c, h, w = shape
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    protos = np.empty((num_classes, c, h, w))
    for k in range(num_classes):  # a loop over classes (a handful), never over samples
        cy, cx = rng.uniform(0.2, 0.8, size=2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 0.18**2))
        angle = np.pi * k / num_classes
        freq = rng.uniform(1.5, 2.5)
        phase = rng.uniform(0, 2 * np.pi, size=(c, 1, 1))
        stripes = 0.5 + 0.5 * np.cos(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
        protos[k] = 0.5 * blob + 0.5 * stripes
    return protos


def make_synthetic(split: str, n_train: int = 512, n_test: int = 256, shape: Sequence[int] = (1, 8, 8),
                   num_classes: int = 4, seed: int = 0, noise: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, C, H, W]`` uint8 and balanced labels ``[N]`` int64 of ``split`` ("train" or "test").

    The same arguments always give the same arrays (numpy's PCG64 streams are platform independent).
    """
    for key, value in (("n_train", n_train), ("n_test", n_test), ("num_classes", num_classes)):
        check_int(f"dataset.synthetic.{key}", value, 1)
    check_positive("dataset.synthetic.noise", noise, allow_zero=True)
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise ConfigError(f"dataset.input_shape={list(shape)} must be three positive ints [C, H, W]")
    shape = tuple(int(s) for s in shape)
    protos = _prototypes(shape, num_classes, np.random.default_rng([seed, _STREAMS["prototypes"]]))
    n = n_train if split == "train" else n_test
    rng = np.random.default_rng([seed, _STREAMS[split]])
    labels = rng.permutation(np.arange(n) % num_classes)  # balanced: every class appears
    x = 0.15 + 0.7 * protos[labels] + noise * rng.standard_normal((n, *shape))
    images = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)
