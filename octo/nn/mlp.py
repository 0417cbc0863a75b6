"""The fully connected network FF and its backprop baseline share."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from octo.utils.errors import ConfigError


LENGTH_EPS = 1e-4


def length_normalize(x: Tensor, eps: float = LENGTH_EPS) -> Tensor:
    """x / (||x||_2 + eps) per sample: Hinton's "layer norm without mean subtraction".

    Only the direction of the previous layer's activity is passed on; its length (that layer's goodness) is hidden
    from the next layer, so a layer cannot be good just because the one below it was. eps is added to the norm, as
    in the reference code.
    """
    return x / (x.norm(dim=1, keepdim=True) + eps)


class NormLinear(nn.Module):
    """(optional) length normalisation of the input -> Linear -> ReLU."""

    def __init__(self, d_in: int, d_out: int, normalize_input: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.normalize_input = normalize_input

    def forward(self, x: Tensor) -> Tensor:
        if self.normalize_input:
            x = length_normalize(x)
        return torch.relu(self.linear(x))

    def forward_labelled(self, x: Tensor, labels: Tensor, num_classes: int, value: Tensor | float) -> Tensor:
        """``self(onehot_overlay(x, labels[k]))`` for every row ``k`` of ``labels`` (``[K, B]``), as ``[K * B, d_out]``.

        The one-hot overlay rewrites only the first ``num_classes`` inputs (one of them to ``value``, the rest to
        0), so every labelled copy of an image has the same length and the same image part. Its pre-activation is
        ``(W[:, C:] x[C:] + value * W[:, label]) / n + b`` with one ``n`` per image: one matmul per image instead
        of one per (image, label) pair. FF's positives and negatives, and its scoring of all C labels, cost the
        first layer one image's worth of compute. Equal to the overlay-then-forward path up to float rounding
        (tests/test_rules.py).
        """
        c, w = num_classes, self.linear.weight
        flat = x.reshape(x.shape[0], -1)
        if c > flat.shape[1]:
            raise ValueError(f"cannot overlay {c} labels on inputs of {flat.shape[1]} values")
        img = flat[:, c:]
        value = torch.as_tensor(value, dtype=flat.dtype, device=flat.device)
        # per image: scale = 1 / (||x|| + eps) as in length_normalize, with ||x||^2 = ||img||^2 + value^2
        scale = 1 / ((img.pow(2).sum(1) + value * value).sqrt() + LENGTH_EPS) if self.normalize_input \
            else torch.ones_like(flat[:, 0])
        base = torch.addmm(self.linear.bias, img * scale[:, None], w[:, c:].T)          # [B, d_out], shared
        coef = nn.functional.one_hot(labels, c).to(flat.dtype) * (value * scale)[None, :, None]  # [K, B, C]
        # one fused kernel adds each label's column to the shared part ([K, B, d_out]); memory-bound work on the
        # K-times larger tensor is what dominates on a CPU, so it is kept to this op, the ReLU and the goodness
        out = torch.relu(torch.baddbmm(base.unsqueeze(0), coef, w[:, :c].T.unsqueeze(0).expand(len(labels), c, -1)))
        return out.reshape(-1, out.shape[-1])


class MLP(nn.Module):
    """A stack of :class:`NormLinear` layers on flattened inputs.

    Args:
        input_shape: shape of one input sample (e.g. ``[1, 28, 28]``); it is flattened.
        hidden: widths of the hidden layers, e.g. ``[500, 500]``.
        normalize_input_layer: length-normalise the raw input too (the reference FF code does; harmless).
        normalize_hidden: length-normalise the input of every later layer.
    """

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int], normalize_input_layer: bool = True,
                 normalize_hidden: bool = True) -> None:
        super().__init__()
        if not hidden or any((not isinstance(h, int)) or h <= 0 for h in hidden):
            raise ConfigError(f"model.hidden={list(hidden)!r} must be a non-empty list of positive ints")
        self.input_shape = tuple(int(s) for s in input_shape)
        dims = [math.prod(self.input_shape), *hidden]
        self.layers = nn.ModuleList(
            NormLinear(dims[i], dims[i + 1], normalize_input_layer if i == 0 else normalize_hidden)
            for i in range(len(hidden))
        )
        self.out_features = dims[-1]

    def flatten(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)

    def forward(self, x: Tensor) -> list[Tensor]:
        """All hidden activities, first to last (gradients flow through; detaching is the algorithm's choice)."""
        h, out = self.flatten(x), []
        for layer in self.layers:
            h = layer(h)
            out.append(h)
        return out
