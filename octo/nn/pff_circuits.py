"""The two circuits of Predictive Forward-Forward: plain modules, no losses, no optimisers.

Row-vector convention as in the reference TF code: a state ``z`` is ``[..., n]`` and a weight ``W`` is
``[n_in, n_out]``, so a layer computes ``z @ W``. Every helper works on any leading shape, so the classifier
can run all candidate labels at once as ``[C, B, n]`` tensors.

Representation circuit (two recurrent hidden layers + softmax head)::

    z1 <- (1 - a) phi(n(x) W1 + n(z2) V2 + b1 + eps - g z1 Lam1) + a z1
    z2 <- (1 - a) phi(n(z1) W2 + (s y) V  + b2 + eps - g z2 Lam2) + a z2      (synchronous: old z1, z2)
    z3 <- softmax(n(z2) W + b)

Generative circuit (predictive coding from a 20-d top latent z_g, a state, not a parameter)::

    z2_hat = phi(n(phi(z_g)) Gy);  z1_hat = phi(n(phi(z2 + eta)) G2);  x_hat = clip01(n(phi(z1 + eta)) G1)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from octo.utils.errors import ConfigError, check_int

#: the reference's normaliser epsilon (octo.nn.mlp.length_normalize uses 1e-4, Hinton's FF value)
NORM_EPS = 1e-8


def normalize(v: Tensor, eps: float = NORM_EPS) -> Tensor:
    """n(v) = v / (||v||_2 + eps) over the last dimension.

    At v = 0 the norm's subgradient is 0 in PyTorch, so the Jacobian there is I / eps (= 1e8 I): the first
    z_g step from z_g = 0 is huge. TF's sqrt gradient is 0 where its upstream gradient is 0, so the reference
    should behave the same (not checked by running it).
    """
    return v / (v.norm(dim=-1, keepdim=True) + eps)


class _SteReLU(torch.autograd.Function):
    """ReLU forward, identity backward (the reference's ``_relu``: derivative 1 everywhere, also v < 0)."""

    @staticmethod
    def forward(ctx, v: Tensor) -> Tensor:  # noqa: D102
        return v.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: D102
        return grad


def ste_relu(v: Tensor) -> Tensor:
    """Straight-through ReLU: ReLU forward, derivative 1 everywhere (the reference's; switch ``ste_relu``)."""
    return _SteReLU.apply(v)


def activation(ste: bool):
    """phi: the straight-through ReLU (reference) or the standard ReLU."""
    return ste_relu if ste else torch.relu


def competition_mask(n_units: int, group_size: int) -> Tensor:
    """The reference's fixed ``n x n`` mask M: block-diagonal ones, blocks of ``group_size`` units."""
    groups = torch.arange(n_units) // group_size
    return (groups[:, None] == groups[None, :]).float()


class Lateral(nn.Module):
    """Learnable lateral competition inside fixed groups of units.

    Effective matrix Lam = relu(L) * M * (1 - I) - relu(L) * I: the other units of a group inhibit a unit, the
    unit excites itself (the state update subtracts ``gamma * z @ Lam``). Only the block-diagonal entries of
    the reference's dense ``n x n`` L can ever act or receive gradient, so they are stored as
    ``[groups, g, g]`` and applied as a grouped product: the same numbers, without the dense ``n x n`` matmul.
    """

    def __init__(self, n_units: int, group_size: int) -> None:
        super().__init__()
        if group_size < 1 or n_units % group_size:
            raise ConfigError(f"model.n_units={n_units} must be a multiple of model.group_size={group_size}")
        self.group_size = group_size
        self.weight = nn.Parameter(torch.empty(n_units // group_size, group_size, group_size))
        self.register_buffer("sign", 1.0 - 2.0 * torch.eye(group_size), persistent=False)

    def matrix(self) -> Tensor:
        """``[groups, g, g]`` blocks of Lam."""
        return torch.relu(self.weight) * self.sign

    def dense(self) -> Tensor:
        """The full ``n x n`` Lam of the reference (for tests and inspection)."""
        return torch.block_diag(*self.matrix())

    def forward(self, z: Tensor) -> Tensor:
        """``z @ Lam`` for ``z`` of shape ``[..., n]``."""
        g = self.group_size
        zg = z.reshape(*z.shape[:-1], z.shape[-1] // g, g)
        return torch.einsum("...gi,gij->...gj", zg, self.matrix()).reshape(z.shape)


class RecurrentLayer(nn.Module):
    """A hidden layer of the representation circuit: bottom-up W, top-down V, bias b, lateral L (a block)."""

    def __init__(self, d_in: int, d_top: int, n_units: int, group_size: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(d_in, n_units))
        self.V = nn.Parameter(torch.empty(d_top, n_units))
        self.b = nn.Parameter(torch.empty(1, n_units))
        self.lateral = Lateral(n_units, group_size)

    def pre_activation(self, drive: Tensor, top: Tensor, z_prev: Tensor, gamma: float) -> Tensor:
        """``drive + top @ V + b - gamma * z_prev @ Lam``; ``drive`` = n(bottom) @ W (precomputable)."""
        return drive + top @ self.V + self.b - gamma * self.lateral(z_prev)


class PFFNet(nn.Module):
    """Both PFF circuits. Blocks: ``rep1``, ``rep2``, ``head`` (representation), ``gen2``, ``gen1``, ``gen0``
    (generative; ``gen<l>`` predicts layer l, layer 0 being the image).

    Args:
        input_shape: one sample's shape (flattened; 784 for MNIST).
        num_classes: label units y (the label drives z2 through V, the head reads z2).
        n_units: width of both hidden layers (reference 2000).
        g_units: width of the generative top latent z_g (reference 20).
        group_size: units per lateral-competition group (reference 10).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, n_units: int = 2000, g_units: int = 20,
                 group_size: int = 10) -> None:
        super().__init__()
        for key, value in (("n_units", n_units), ("g_units", g_units), ("group_size", group_size)):
            check_int(f"model.{key}", value, 1)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.in_features = math.prod(self.input_shape)
        self.num_classes, self.n_units, self.g_units = int(num_classes), n_units, g_units
        d, n = self.in_features, n_units
        self.rep1 = RecurrentLayer(d, n, n, group_size)                      # W1, V2, b1, L1
        self.rep2 = RecurrentLayer(n, self.num_classes, n, group_size)      # W2, V, b2, L2
        self.head = nn.ParameterDict({"W": nn.Parameter(torch.empty(n, self.num_classes)),
                                      "b": nn.Parameter(torch.zeros(1, self.num_classes))})
        self.gen2 = nn.ParameterDict({"G": nn.Parameter(torch.empty(g_units, n))})   # Gy
        self.gen1 = nn.ParameterDict({"G": nn.Parameter(torch.empty(n, n))})         # G2
        self.gen0 = nn.ParameterDict({"G": nn.Parameter(torch.empty(n, d))})         # G1
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The reference init: orthogonal W1, W2, V2, V, W and b1, b2 (a random unit-norm row),
        zero b, U(0, 0.05) for the laterals and every generative matrix (all positive)."""
        for p in (self.rep1.W, self.rep1.V, self.rep1.b, self.rep2.W, self.rep2.V, self.rep2.b,
                  self.head["W"]):
            nn.init.orthogonal_(p)
        self.head["b"].zero_()
        for p in (self.rep1.lateral.weight, self.rep2.lateral.weight, self.gen2["G"], self.gen1["G"],
                  self.gen0["G"]):
            nn.init.uniform_(p, 0.0, 0.05)

    def flatten(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)

    # --- representation circuit -----------------------------------------------------------------------------
    def bottom_up(self, x: Tensor, phi) -> tuple[Tensor, Tensor, Tensor]:
        """Initial state: one sweep without label or lateral term -> z1, z2, z3 (``x`` flat ``[..., d]``)."""
        z1 = phi(normalize(x) @ self.rep1.W + self.rep1.b)
        z2 = phi(normalize(z1) @ self.rep2.W + self.rep2.b)
        return z1, z2, self.head_probs(z2)

    def head_logits(self, z2: Tensor) -> Tensor:
        return normalize(z2) @ self.head["W"] + self.head["b"]

    def head_probs(self, z2: Tensor) -> Tensor:
        return torch.softmax(self.head_logits(z2), dim=-1)

    def step(self, x_drive: Tensor, y_scaled: Tensor, z1: Tensor, z2: Tensor, *, alpha: float, gamma: float,
             phi, noise1: Tensor | float = 0.0, noise2: Tensor | float = 0.0) -> tuple[Tensor, Tensor]:
        """One synchronous update of (z1, z2) from the previous (z1, z2), which the caller detaches.

        ``x_drive`` = n(x) @ W1 (computed by :meth:`x_drive`, label- and step-independent for fixed weights);
        ``y_scaled`` = s_y * y (one-hot or soft labels, ``[..., C]``).
        """
        pre1 = self.rep1.pre_activation(x_drive, normalize(z2), z1, gamma) + noise1
        pre2 = self.rep2.pre_activation(normalize(z1) @ self.rep2.W, y_scaled, z2, gamma) + noise2
        return (1 - alpha) * phi(pre1) + alpha * z1, (1 - alpha) * phi(pre2) + alpha * z2

    def x_drive(self, x: Tensor, normalized: bool = False) -> Tensor:
        """n(x) @ W1 (pass ``normalized=True`` with n(x) precomputed, e.g. once per batch)."""
        return (x if normalized else normalize(x)) @ self.rep1.W

    # --- generative circuit ---------------------------------------------------------------------------------
    def predict_z2(self, z_g: Tensor, phi) -> Tensor:
        """z2_hat = phi(n(phi(z_g)) Gy)."""
        return phi(normalize(phi(z_g)) @ self.gen2["G"])

    def predict_z1(self, z2: Tensor, phi) -> Tensor:
        """z1_hat = phi(n(phi(z2)) G2); ``z2`` already detached (and noisy in training)."""
        return phi(normalize(phi(z2)) @ self.gen1["G"])

    def predict_x(self, z1: Tensor, phi) -> Tensor:
        """x_hat = clip_[0,1](n(phi(z1)) G1); zero gradient outside [0, 1], like TF's clip_by_value."""
        return torch.clamp(normalize(phi(z1)) @ self.gen0["G"], 0.0, 1.0)

    def decode(self, z2: Tensor, phi) -> Tensor:
        """Top-down chain from a z2 state to an image (the reference ``sample``): phi(z2) -> z1 -> x."""
        return self.predict_x(self.predict_z1(z2, phi), phi)


def goodness_logit(z: Tensor, threshold: float, sign: float) -> Tensor:
    """Logit of P(positive): ``sign * (sum_j z_j^2 - theta)``; reference sign -1: theta - sum z^2."""
    return sign * (z.pow(2).sum(-1) - threshold)


def goodness_loss(z: Tensor, is_positive: Tensor, threshold: float, sign: float) -> Tensor:
    """mean_b BCE-with-logits(logit_b, lab_b) (the reference's stable CE formula is the same)."""
    return F.binary_cross_entropy_with_logits(goodness_logit(z, threshold, sign), is_positive.to(z.dtype))
