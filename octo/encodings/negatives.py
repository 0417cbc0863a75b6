"""Negative data for FF-style losses: wrong labels and hybrid images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: ``shuffle_once`` / ``uniform_once`` are ``shuffle`` / ``uniform`` with the same draw at every step (FF; see
#: ``octo.algorithms.ff.FF``): the base FF reference's static shuffled labels / its extension's static wrong labels
WRONG_LABEL_MODES = ("uniform", "shuffle", "shuffle_once", "hardest", "uniform_once")


def wrong_labels(y: Tensor, num_classes: int, mode: str = "uniform", generator=None) -> Tensor:
    """Labels for negatives.

    ``uniform``: uniform over the C-1 wrong classes (never the true one): (y + U{1..C-1}) mod C. This is the FF
    extension repository's "guaranteed-wrong" negative label (arseniivanov/pytorch_forward_forward).
    ``shuffle``: the reference FF code's batch permutation of the labels; about 1/C of these equal the true label
    (mpezeshki/pytorch_forward_forward#8) - kept only to reproduce its 6.85 % result.
    ``hardest`` needs model scores: use :func:`hardest_wrong_labels`.
    """
    if mode == "uniform":
        offset = torch.randint(1, num_classes, y.shape, device=y.device, generator=generator)
        return (y + offset) % num_classes
    if mode == "shuffle":
        return y[torch.randperm(y.shape[0], device=y.device, generator=generator)]
    raise ValueError(f"wrong-label mode {mode!r} needs model scores or is unknown; valid: {WRONG_LABEL_MODES}")


def hardest_wrong_labels(scores: Tensor, y: Tensor, sample: bool = False) -> Tensor:
    """The wrong label the model currently likes most (``sample=True``: drawn from softmax over wrong labels,
    as Hinton suggests). ``scores`` is ``[B, C]``; the true label is never returned."""
    masked = scores.masked_fill(F.one_hot(y, scores.shape[1]).bool(), float("-inf"))
    if sample:
        return torch.multinomial(torch.softmax(masked, dim=1), 1).squeeze(1)
    return masked.argmax(dim=1)


_BLUR = torch.tensor([1.0, 2.0, 1.0]) / 4


def smooth_masks(n: int, height: int, width: int, blur_iterations: int = 5, device=None, generator=None) -> Tensor:
    """``[n, 1, H, W]`` boolean masks: uniform noise blurred ``blur_iterations`` times with the 3x3 binomial kernel
    (zero padding, so borders darken as in the reference) and thresholded at 0.5."""
    bits = torch.rand(n, 1, height, width, device=device, generator=generator)
    kernel = torch.outer(_BLUR, _BLUR).to(bits).view(1, 1, 3, 3)
    for _ in range(blur_iterations):
        bits = F.conv2d(bits, kernel, padding=1)
    return bits > 0.5


def hybrid_images(x: Tensor, mask: Tensor, partner: Tensor | None = None) -> Tensor:
    """x * m + partner * (1 - m), with ``partner`` a batch permutation of ``x`` by default.

    ``mask`` broadcasts against ``x`` ([B or 1, 1, H, W]); a fresh mask per sample is the paper's reading, one mask
    for all negatives is the extension repository's.
    """
    if partner is None:
        partner = x[torch.randperm(x.shape[0], device=x.device)]
    m = mask.to(x.dtype)
    return x * m + partner * (1 - m)
