"""Unsupervised Forward-Forward with hybrid-image negatives and a linear read-out.

See docs/algorithms/ff_unsupervised.md.

Positives are the images themselves; negatives are hybrid images ``x * m + x_perm * (1 - m)`` built from
smooth random masks, so they share local statistics with real digits but not their long-range shape. Each
hidden layer is a block trained without labels with the FF loss (detached inputs). A separate block
``readout`` - one linear layer - learns the labels with cross-entropy on the **detached**, normalised
activities of some hidden layers (by default all but the first, i.e. "the last three of four" in the paper).
Prediction is one pass of the raw image through the layers and the read-out.

Published-code behaviour (arseniivanov/pytorch_forward_forward, the "extension") has named switches; the
defaults are the corrected / paper behaviour:

=========================  ==========================  =======================================================
switch                     default (corrected)         published extension code
=========================  ==========================  =======================================================
``mask``                   ``per_sample_fresh``        ``single_fixed`` (one mask for every negative, forever)
``readout_norm``           ``per_sample``              ``frobenius_batch`` (norm of the whole batch matrix)
``readout_double_softmax`` ``false`` (CE on logits)    ``true`` (CE applied to softmax outputs)
=========================  ==========================  =======================================================

The extension's latent-shape bug (head width = widths of layers 1..L-1 instead of the layers actually read) is
fixed: the head's input width is the sum of the widths of ``readout_layers``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from octo.algorithms.base import LocalAlgorithm
from octo.algorithms.goodness import GOODNESS, ff_loss, goodness
from octo.encodings.negatives import hybrid_images, smooth_masks
from octo.nn.mlp import MLP, length_normalize
from octo.utils.errors import ConfigError, check_choice, check_int, check_positive

MASK_MODES = ("per_sample_fresh", "single_fixed")
READOUT_NORMS = ("per_sample", "frobenius_batch")


def readout_features(hs: Sequence[Tensor], norm: str = "per_sample", eps: float = 1e-4) -> Tensor:
    """Concatenate normalised activities ``[B, d_l]`` into ``[B, sum d_l]``.

    ``per_sample``: each sample's activity vector of each layer over its L2 norm (+ eps, as in the FF layers).

    ``frobenius_batch``: each layer's whole batch matrix divided by its Frobenius norm (the extension code): a
    sample's features then depend on the batch it is evaluated in and shrink like 1/sqrt(batch size).
    """
    if norm == "per_sample":
        return torch.cat([length_normalize(h, eps) for h in hs], dim=1)
    return torch.cat([h / h.norm() for h in hs], dim=1)


class FFUnsupervised(LocalAlgorithm):
    """Unsupervised FF layers + a supervised linear read-out block.

    Args:
        model: the :class:`~octo.nn.mlp.MLP` whose layers are trained (its ``input_shape`` gives the mask
        size).
        threshold: theta (per unit with ``goodness="mean"``, the reference's 2.0).
        goodness: ``mean`` (reference code) or ``sum`` (paper; scale theta by the width).
        mask: ``per_sample_fresh`` (a new smooth mask for every negative, every step; paper reading) or
            ``single_fixed`` (one mask drawn at construction and used for every negative; extension code).
        blur_iterations: binomial blurs of the mask noise (5 in the extension).
        readout_layers: indices of the hidden layers the read-out sees; ``null`` = all but the first (all if
            the net has one layer).
        readout_norm: ``per_sample`` (corrected) or ``frobenius_batch`` (extension).
        readout_double_softmax: apply cross-entropy to softmax outputs (extension) instead of logits.
    """

    def __init__(self, model: MLP, num_classes: int, threshold: float = 2.0, goodness: str = "mean",
                 mask: str = "per_sample_fresh", blur_iterations: int = 5,
                 readout_layers: Sequence[int] | None = None, readout_norm: str = "per_sample",
                 readout_double_softmax: bool = False) -> None:
        super().__init__(num_classes)
        check_choice("algorithm.goodness", goodness, GOODNESS)
        check_choice("algorithm.mask", mask, MASK_MODES)
        check_choice("algorithm.readout_norm", readout_norm, READOUT_NORMS)
        check_positive("algorithm.threshold", threshold, allow_zero=True)
        check_int("algorithm.blur_iterations", blur_iterations, 0)
        if len(model.input_shape) != 3:
            raise ConfigError(f"algorithm=ff_unsupervised needs image inputs [C, H, W], "
                              f"got {model.input_shape}")
        n_layers = len(model.layers)
        if readout_layers is None:
            readout_layers = list(range(1, n_layers)) if n_layers > 1 else [0]
        readout_layers = [int(i) for i in readout_layers]
        if not readout_layers or any(i < 0 or i >= n_layers for i in readout_layers) \
                or len(set(readout_layers)) != len(readout_layers):
            raise ConfigError(f"algorithm.readout_layers={readout_layers!r} must be distinct hidden-layer "
                              f"indices in 0..{n_layers - 1}")
        self.model = model
        self.threshold = float(threshold)
        self.goodness_reduction = goodness
        self.mask_mode = mask
        self.blur_iterations = blur_iterations
        self.readout_layers = sorted(readout_layers)
        self.readout_norm = readout_norm
        self.readout_double_softmax = bool(readout_double_softmax)
        # the latent-shape fix: the head reads exactly the chosen layers' widths
        in_features = sum(model.layers[i].linear.out_features for i in self.readout_layers)
        self.readout = nn.Linear(in_features, num_classes)
        _, height, width = model.input_shape
        # single_fixed: drawn once (after the run's seed is set) and saved with the checkpoint
        fixed = smooth_masks(1, height, width, blur_iterations) if mask == "single_fixed" else torch.zeros(0)
        self.register_buffer("fixed_mask", fixed)

    # --- blocks --------------------------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        return [f"layer{i}" for i in range(len(self.model.layers))]

    def blocks(self) -> dict[str, nn.Module]:
        return {**{f"layer{i}": layer for i, layer in enumerate(self.model.layers)}, "readout": self.readout}

    # --- data -----------------------------------------------------------------------------------------------
    def negatives(self, x: Tensor) -> Tensor:
        """Hybrid images of the batch with a permutation of itself."""
        if self.mask_mode == "single_fixed":
            mask = self.fixed_mask
        else:
            mask = smooth_masks(x.shape[0], x.shape[-2], x.shape[-1], self.blur_iterations, device=x.device)
        return hybrid_images(x, mask)

    # --- losses ---------------------------------------------------------------------------------------------
    def readout_logits(self, hs: Sequence[Tensor]) -> Tensor:
        feats = readout_features([hs[i].detach() for i in self.readout_layers], self.readout_norm)
        return self.readout(feats)

    def readout_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        if self.readout_double_softmax:
            # the extension's CrossEntropyLoss on softmax outputs: log_softmax of probabilities
            return F.cross_entropy(torch.softmax(logits, dim=1), y)
        return F.cross_entropy(logits, y)

    def local_losses(self, x: Tensor, y: Tensor, phase: str, active: Sequence[str]) -> dict[str, Tensor]:
        names = self.layer_names()
        active_layers = [names.index(a) for a in active if a in names]
        want_readout = "readout" in active
        # how deep the positives must go; negatives only as deep as the deepest active layer
        need = max([*active_layers, *(self.readout_layers if want_readout else [])], default=-1)
        last_ff = max(active_layers, default=-1)
        b = x.shape[0]
        h = self.model.flatten(torch.cat([x, self.negatives(x)]) if last_ff >= 0 else x)
        losses, pos_hs = {}, []
        for i, layer in enumerate(self.model.layers[: need + 1]):
            if i > last_ff and h.shape[0] != b:
                h = h[:b]  # beyond the deepest active layer only the read-out's positives are needed
            # detach: layer i learns only from its own loss; frozen layers run without a graph
            with torch.set_grad_enabled(names[i] in active and torch.is_grad_enabled()):
                h = layer(h.detach())
            pos_hs.append(h[:b])
            if names[i] in active:
                g = goodness(h, self.goodness_reduction)
                losses[names[i]] = ff_loss(g[:b], g[b:], self.threshold)
        if want_readout:
            losses["readout"] = self.readout_loss(self.readout_logits(pos_hs), y)
        return losses

    # --- evaluation -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """One pass of the raw image; read-out logits (argmax = prediction; softmax would not change it)."""
        return self.readout_logits(self.model(x))

    @torch.no_grad()
    def block_metrics(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Per layer: mean goodness of positives minus that of (random) hybrid negatives."""
        b = x.shape[0]
        hs = self.model(torch.cat([x, self.negatives(x)]))
        out = {}
        for i, h in enumerate(hs):
            g = goodness(h, self.goodness_reduction)
            out[f"layer{i}/separation"] = g[:b].mean() - g[b:].mean()
        return out
