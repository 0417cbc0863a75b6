"""Supervised Forward-Forward (Hinton 2022) on an MLP; see docs/algorithms/ff.md.

Each layer is a block with its own loss: positives are images with the true label overlaid, negatives the same
images with a wrong label; a layer learns to give positives goodness above theta and negatives below. Layer inputs
are detached, so no gradient crosses a layer. Prediction overlays every candidate label and picks the one with the
highest goodness summed over layers, in one batched pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from octo.algorithms.base import LocalAlgorithm
from octo.algorithms.goodness import GOODNESS, ff_loss, goodness
from octo.encodings.negatives import WRONG_LABEL_MODES, hardest_wrong_labels, wrong_labels
from octo.nn.mlp import MLP
from octo.utils.errors import ConfigError, check_choice


class FF(LocalAlgorithm):
    """Forward-Forward with Hinton's one-hot label overlay.

    Args:
        model: the MLP whose layers are trained.
        threshold: theta (per unit with ``goodness="mean"``, the reference's 2.0).
        goodness: ``mean`` (reference code) or ``sum`` (paper); scale theta accordingly.
        neg_label: ``uniform`` wrong label (never the true one; default), ``shuffle`` (the reference's batch
            permutation drawn afresh each step; ~10 % of negatives carry the true label), ``shuffle_once`` (the
            reference exactly: one permutation for the whole run, so with a full batch, which keeps its order,
            every image keeps the same negative label), ``uniform_once`` (the FF extension repository exactly:
            guaranteed-wrong labels drawn once, so each image keeps its wrong label) or ``hardest`` (the wrong label
            the current model scores highest). The shuffle modes are only for reproducing the reference's numbers.
        predict_skip_first: leave the first layer out of the prediction goodness (paper) or not (reference).
        label_value: value written at the label pixel; None = max of the batch (reference).
    """

    def __init__(self, model: MLP, num_classes: int, threshold: float = 2.0, goodness: str = "mean",
                 neg_label: str = "uniform", predict_skip_first: bool = False,
                 label_value: float | None = None) -> None:
        super().__init__(num_classes)
        check_choice("algorithm.goodness", goodness, GOODNESS)
        check_choice("algorithm.neg_label", neg_label, WRONG_LABEL_MODES)
        if predict_skip_first and len(model.layers) < 2:
            raise ConfigError("algorithm.predict_skip_first=true needs at least 2 layers")
        self.model = model
        self.threshold = float(threshold)
        self.goodness_reduction = goodness
        self.neg_label = neg_label
        # shuffle_once / uniform_once: re-drawn from this seed at every step, hence identical each time
        self._once_seed = torch.initial_seed() % (2**63)
        self.predict_skip_first = predict_skip_first
        self.label_value = label_value

    def blocks(self) -> dict[str, nn.Module]:
        return {f"layer{i}": layer for i, layer in enumerate(self.model.layers)}

    def _negative_labels(self, x: Tensor, y: Tensor) -> Tensor:
        if self.neg_label == "hardest":
            with torch.no_grad():
                return hardest_wrong_labels(self.predict(x), y)
        if self.neg_label in ("shuffle_once", "uniform_once"):
            gen = torch.Generator(device=y.device).manual_seed(self._once_seed)
            return wrong_labels(y, self.num_classes, self.neg_label.removesuffix("_once"), generator=gen)
        return wrong_labels(y, self.num_classes, self.neg_label)

    def _label_value(self, x: Tensor) -> Tensor | float:
        # None = the reference's choice: the maximum of the whole (unlabelled) batch
        return x.max() if self.label_value is None else self.label_value

    def _first_layer(self, x: Tensor, labels: Tensor) -> Tensor:
        """Layer 0 on ``x`` overlaid with each row of ``labels`` ([K, B]), as [K * B, width], from one matmul."""
        return self.model.layers[0].forward_labelled(x, labels, self.num_classes, self._label_value(x))

    def local_losses(self, x: Tensor, y: Tensor, phase: str, active: Sequence[str]) -> dict[str, Tensor]:
        names = list(self.blocks())
        last = max((names.index(a) for a in active), default=-1)
        labels = torch.stack([y, self._negative_labels(x, y)])    # positives, then negatives
        b = x.shape[0]
        losses = {}
        h = None
        for i, layer in enumerate(self.model.layers[: last + 1]):
            # detach: layer i learns only from its own loss; frozen layers below run without a graph
            with torch.set_grad_enabled(names[i] in active and torch.is_grad_enabled()):
                h = self._first_layer(x, labels) if i == 0 else layer(h.detach())
            if names[i] in active:
                g = goodness(h, self.goodness_reduction)
                losses[names[i]] = ff_loss(g[:b], g[b:], self.threshold)
        return losses

    def layer_goodness(self, x: Tensor) -> Tensor:
        """``[L, B, C]``: goodness of every layer for every sample with every candidate label, in one pass."""
        b, c = x.shape[0], self.num_classes
        candidates = torch.arange(c, device=x.device).view(c, 1).expand(c, b)   # label-major: all of label 0 first
        h = self._first_layer(x, candidates)
        gs = [goodness(h, self.goodness_reduction)]
        for layer in self.model.layers[1:]:
            h = layer(h)
            gs.append(goodness(h, self.goodness_reduction))
        return torch.stack([g.view(c, b).T for g in gs])

    def _scores(self, g: Tensor) -> Tensor:
        """Class scores ``[B, C]`` from :meth:`layer_goodness`: the goodness summed over the prediction layers."""
        return g[1:].sum(0) if self.predict_skip_first else g.sum(0)

    def predict(self, x: Tensor) -> Tensor:
        return self._scores(self.layer_goodness(x))

    def _block_metrics(self, g: Tensor, y: Tensor) -> dict[str, Tensor]:
        true = torch.nn.functional.one_hot(y, self.num_classes).bool()
        out = {}
        for i, gl in enumerate(g):
            out[f"layer{i}/acc"] = (gl.argmax(1) == y).float().mean()
            out[f"layer{i}/separation"] = gl[true].mean() - gl[~true].mean()
        return out

    def block_metrics(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Per layer: accuracy of that layer's goodness alone, and mean goodness separation (true - wrong)."""
        return self._block_metrics(self.layer_goodness(x), y)

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """The base class's metrics (``acc`` and :meth:`block_metrics`) from one batched goodness pass over every
        candidate label, instead of one pass for the prediction and another for the per-layer metrics."""
        g = self.layer_goodness(x)
        return {"acc": (self._scores(g).argmax(dim=1) == y).float().mean(), **self._block_metrics(g, y)}
