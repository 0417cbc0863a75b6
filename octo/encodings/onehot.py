"""Hinton's label overlay: the label is written into the first pixels of the flattened image."""

from __future__ import annotations

import torch
from torch import Tensor


def onehot_overlay(x: Tensor, y: Tensor, num_classes: int, label_value: float | None = None) -> Tensor:
    """Return a copy of ``x`` whose first ``num_classes`` flattened pixels encode ``y`` one-hot.

    The first ``num_classes`` values of each flattened sample are set to 0 and the one at index ``y`` to
    ``label_value``. ``label_value=None`` reproduces the reference code: the maximum of the *whole batch tensor*
    (about 2.8215 for standardised MNIST). The result keeps the shape of ``x``.
    """
    if num_classes > x[0].numel():
        raise ValueError(f"cannot overlay {num_classes} labels on images of {x[0].numel()} values")
    flat = x.reshape(x.shape[0], -1).clone()
    value = flat.max() if label_value is None else torch.as_tensor(label_value, dtype=flat.dtype)
    flat[:, :num_classes] = 0
    # scatter instead of a Python loop: one kernel for the whole batch
    flat.scatter_(1, y.view(-1, 1), value.to(flat.dtype).expand(flat.shape[0], 1).contiguous())
    return flat.view_as(x)


def onehot_split(x: Tensor, num_classes: int, label_value: float | None = None) -> tuple[Tensor, Tensor]:
    """:func:`onehot_overlay` as an image part and per-label maps: ``onehot_overlay(x, y) == image + maps[y]``.

    ``image`` is ``x`` with its first ``num_classes`` flattened values set to 0; ``maps`` is ``[C, *x.shape[1:]]``,
    map c holding the label value at flattened index c and 0 elsewhere. The sum is bit-exact: every position adds
    an exact 0 to one of its two terms. The label value is the same as the overlay's (``None``: the batch max).
    """
    if num_classes > x[0].numel():
        raise ValueError(f"cannot overlay {num_classes} labels on images of {x[0].numel()} values")
    flat = x.reshape(x.shape[0], -1).clone()
    value = flat.max() if label_value is None else label_value
    flat[:, :num_classes] = 0
    maps = torch.eye(num_classes, x[0].numel(), dtype=flat.dtype, device=flat.device) * value
    return flat.view_as(x), maps.view(num_classes, *x.shape[1:])
