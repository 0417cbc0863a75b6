"""The network of Recurrent Forward-Forward: bottom-up, top-down and lateral maps.

Hidden layers H_1..H_L sit between the input x (below) and a label vector (above the top layer). Every layer
owns three linear maps - forward F_l (from the layer below), backward B_l (from the layer above; the top
layer's reads the label) and lateral R_l (from its own previous state) - and all layers update synchronously
from the previous step's states. This module only computes one time step; which states are detached, when
damping applies and what the loss is belongs to :class:`octo.algorithms.recurrent_ff.RecurrentFF`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from octo.utils.errors import check_choice, check_int_list

ACTIVATIONS = ("leaky_relu", "relu")
NORMALIZATIONS = ("rms", "l2")


def rms_normalize(v: Tensor, eps: float = 1e-8) -> Tensor:
    """v / sqrt(mean_j v_j^2 + eps) per sample: unit mean square (length sqrt(d)), as the RFF code."""
    return v / torch.sqrt(v.pow(2).mean(dim=1, keepdim=True) + eps)


def l2_normalize(v: Tensor, eps: float = 1e-8) -> Tensor:
    """v / sqrt(sum_j v_j^2 + eps) per sample: unit length, as in Hinton's / the base FF code's layers."""
    return v / torch.sqrt(v.pow(2).sum(dim=1, keepdim=True) + eps)


class RecurrentLayer(nn.Module):
    """One hidden layer: its forward, backward and (optional) lateral maps."""

    def __init__(self, d_below: int, d: int, d_above: int, bias: bool = True, lateral: bool = True,
                 top: bool = False, num_classes: int = 10) -> None:
        super().__init__()
        self.forward_map = nn.Linear(d_below, d, bias=bias)
        self.backward_map = nn.Linear(d_above, d, bias=bias)
        self.lateral_map = nn.Linear(d, d, bias=bias) if lateral else None
        # the repository's init: Kaiming-uniform forward, U(+-0.05) backward ("amplified" N(0, (3 sqrt(2/C))^2)
        # for the label map of the top layer), orthogonal with gain sqrt(2) lateral; biases keep PyTorch's init
        nn.init.kaiming_uniform_(self.forward_map.weight, nonlinearity="relu")
        if top:
            nn.init.normal_(self.backward_map.weight, 0.0, 3.0 * math.sqrt(2.0 / num_classes))
        else:
            nn.init.uniform_(self.backward_map.weight, -0.05, 0.05)
        if self.lateral_map is not None:
            nn.init.orthogonal_(self.lateral_map.weight, gain=math.sqrt(2.0))

    def pre_activation(self, below: Tensor, above: Tensor, own: Tensor | None) -> Tensor:
        """F·below - (B·above + b) + R·own: the minus covers the whole top-down term, bias included."""
        a = self.forward_map(below) - self.backward_map(above)
        if self.lateral_map is not None and own is not None:
            a = a + self.lateral_map(own)
        return a


class RecurrentNet(nn.Module):
    """A stack of :class:`RecurrentLayer` s between a flattened input and a label vector.

    Args:
        input_shape: shape of one input sample (flattened).
        hidden: widths of the hidden layers, e.g. ``[2000, 2000, 2000]``.
        num_classes: length of the label vector the top layer reads.
        bias: biases on every map (current repository) or none (the README-claim commit ``86f6d29``).
        lateral: same-layer recurrent maps (repository) or none (Hinton's Fig. 3 net).
        activation: ``leaky_relu`` (slope 0.01, what the code runs whatever its config says) or ``relu``.
        normalization: ``rms`` (unit mean square, repository) or ``l2`` (unit length) for the hidden states a
            layer reads; raw pixels and the raw label vector are never normalised.
        eps: inside the square root of the normalisation (1e-8).
    """

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int], num_classes: int, bias: bool = True,
                 lateral: bool = True, activation: str = "leaky_relu", normalization: str = "rms",
                 eps: float = 1e-8) -> None:
        super().__init__()
        check_int_list("model.hidden", list(hidden), 1, hint="positive ints")
        check_choice("model.activation", activation, ACTIVATIONS)
        check_choice("model.normalization", normalization, NORMALIZATIONS)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.hidden = [int(h) for h in hidden]
        self.activation, self.normalization, self.eps = activation, normalization, float(eps)
        self.bias, self.lateral = bool(bias), bool(lateral)
        dims = [math.prod(self.input_shape), *self.hidden, self.num_classes]
        self.layers = nn.ModuleList(
            RecurrentLayer(dims[i], dims[i + 1], dims[i + 2], bias=bias, lateral=lateral,
                           top=i == len(self.hidden) - 1, num_classes=self.num_classes)
            for i in range(len(self.hidden)))
        self.out_features = self.hidden[-1]

    def flatten(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)

    def normalize(self, v: Tensor) -> Tensor:
        return rms_normalize(v, self.eps) if self.normalization == "rms" else l2_normalize(v, self.eps)

    def act(self, a: Tensor) -> Tensor:
        return F.leaky_relu(a, 0.01) if self.activation == "leaky_relu" else torch.relu(a)

    def zero_states(self, batch: int, device=None, dtype=None) -> list[Tensor]:
        return [torch.zeros(batch, d, device=device, dtype=dtype) for d in self.hidden]

    def layer_step(self, i: int, x: Tensor, label: Tensor, prev: Sequence[Tensor],
                   normed: Sequence[Tensor] | None = None) -> Tensor:
        """Undamped new activity of layer ``i`` from the step-(t-1) states ``prev`` (detach them yourself).

        ``normed`` = ``[self.normalize(p) for p in prev]`` if already computed (a synchronous step needs each
        normalised state up to three times).
        """
        if normed is None:
            normed = [self.normalize(p) for p in prev]
        below = x if i == 0 else normed[i - 1]
        above = label if i == len(self.layers) - 1 else normed[i + 1]
        return self.act(self.layers[i].pre_activation(below, above, normed[i]))

    def step(self, x: Tensor, label: Tensor, prev: Sequence[Tensor]) -> list[Tensor]:
        """One synchronous undamped step of every layer."""
        normed = [self.normalize(p) for p in prev]
        return [self.layer_step(i, x, label, prev, normed) for i in range(len(self.layers))]
