"""Recurrent Forward-Forward (and-rewsmith/RecurrentForwardForward; docs/algorithms/recurrent_ff.md).

A recurrent net (:class:`octo.nn.recurrent.RecurrentNet`) with bottom-up, top-down and lateral maps runs for a
few synchronous time steps with the image clamped below and a label vector clamped above the top layer. During
the first ``prelabel_steps`` the label is neutral (1/C everywhere) and the update is undamped; then the label
is clamped (true label for the positive stream, a wrong one for the negative stream) for ``steps`` damped
steps ``h <- (1 - damping) h + damping h_hat``.

Blocks and locality
-------------------
A block is one hidden layer: its forward, backward and lateral maps. Every state a layer reads (its own and
its neighbours' previous states) is **detached**, so layer l's loss at step t has gradient only through its
own new activity h_hat_l^t, i.e. only on its own three maps ("one-step" credit, no backprop through time, no
gradient across layers). The pre-label steps run without a graph.

Objective
---------
Badness beta(h) = mean_j h_j^2 per sample. ``objective: inverted`` (the repository) pushes positives *below*
theta and negatives above it and predicts the label of lowest badness; ``objective: hinton`` is the paper's
sign (positives high goodness, argmax). Each layer's loss at a labelled step is the FF softplus loss; the
block loss is the mean over the labelled steps.

Updates per batch
-----------------
The repository steps every layer's optimiser after **every labelled time step** (T updates per layer per
batch, the states of step t+1 computed with the weights updated at step t). ``updates: per_step`` (default)
does the same through the module's :meth:`local_loss_steps` hook; ``updates: per_batch`` averages the T
per-step losses into one update per batch (T times fewer updates - on MNIST it learns far slower, see
results/rff/README.md).

Prediction
----------
All C labels in one batched pass: the pre-label steps do not depend on the label and are computed once for the
batch, then replicated C times (label-major); the badness of every layer is averaged over the labelled steps
of ``eval_window`` (default ``[T//2 - T//10, T//2 + T//10]``, 0-based, inclusive) and over the layers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from octo.algorithms.base import LocalAlgorithm
from octo.algorithms.goodness import ff_loss
from octo.encodings.negatives import hardest_wrong_labels, wrong_labels
from octo.nn.recurrent import RecurrentNet
from octo.utils.errors import ConfigError, check_choice, check_int, check_positive, check_range

OBJECTIVES = ("inverted", "hinton")
UPDATES = ("per_batch", "per_step")
NEG_LABELS = ("uniform", "hardest")


def badness(h: Tensor) -> Tensor:
    """Mean of squares over units, per sample -> ``[B]``."""
    return h.pow(2).flatten(1).mean(1)


def default_window(steps: int) -> tuple[int, int]:
    """The repository's evaluation window over the labelled steps: T//2 -+ T//10, inclusive, 0-based."""
    return steps // 2 - steps // 10, min(steps // 2 + steps // 10, steps - 1)


class RecurrentFF(LocalAlgorithm):
    """Recurrent FF with per-layer local losses.

    Args:
        model: a :class:`~octo.nn.recurrent.RecurrentNet` (its ``num_classes`` must equal the data set's).
        threshold: theta on the mean-square badness (1.5 in ``config.toml``; 1.0 in ci/smoke).
        damping: delta in ``h <- (1 - delta) h + delta h_hat`` during the labelled steps (0.7).
        prelabel_steps: P undamped steps with the neutral label before the label is shown (10 current default,
            3 in the README-claim commit, 0 = Hinton: label from the start).
        steps: T labelled (damped) steps, each with a loss (15 current, 10 README-claim commit).
        objective: ``inverted`` (repository: positives low) or ``hinton`` (positives high).
        eval_window: ``[first, last]`` labelled steps (0-based, inclusive) whose badness prediction averages;
            ``null`` = the repository's ``T//2 -+ T//10``.
        predict_skip_first: leave layer 1 out of the prediction score (repository: false).
        neg_label: ``uniform`` over the wrong labels, re-drawn for every batch (repository) or ``hardest``
            (the wrong label the current model scores best; the repository's optional hard negatives use a
            separate linear classifier instead and are off in every shipped config).
        updates: ``per_step`` (one optimiser step per layer after every labelled step, the repository) or
            ``per_batch`` (one step per layer per batch on the mean of the T per-step losses).
    """

    def __init__(self, model: RecurrentNet, num_classes: int, threshold: float = 1.5, damping: float = 0.7,
                 prelabel_steps: int = 10, steps: int = 15, objective: str = "inverted",
                 eval_window: Sequence[int] | None = None, predict_skip_first: bool = False,
                 neg_label: str = "uniform", updates: str = "per_step") -> None:
        super().__init__(num_classes)
        check_choice("algorithm.updates", updates, UPDATES)
        check_choice("algorithm.objective", objective, OBJECTIVES)
        check_choice("algorithm.neg_label", neg_label, NEG_LABELS)
        check_positive("algorithm.threshold", threshold, allow_zero=True)
        check_range("algorithm.damping", damping, 0, 1, low_open=True)
        check_int("algorithm.prelabel_steps", prelabel_steps, 0)
        check_int("algorithm.steps", steps, 1)
        if getattr(model, "num_classes", num_classes) != num_classes:
            raise ConfigError(f"model.num_classes={model.num_classes} differs from the data set's "
                              f"{num_classes}")
        window = default_window(steps) if eval_window is None else tuple(int(v) for v in eval_window)
        if len(window) != 2 or not 0 <= window[0] <= window[1] < steps:
            raise ConfigError(f"algorithm.eval_window={list(window)!r} must be [first, last] with "
                              f"0 <= first <= last < steps={steps}")
        if predict_skip_first and len(model.layers) < 2:
            raise ConfigError("algorithm.predict_skip_first=true needs at least 2 layers")
        self.model = model
        self.threshold = float(threshold)
        self.damping = float(damping)
        self.prelabel_steps = prelabel_steps
        self.steps = steps
        self.objective = objective
        self.eval_window = window
        self.predict_skip_first = predict_skip_first
        self.neg_label = neg_label
        self.updates = updates

    # --- blocks --------------------------------------------------------------------------------------------
    def blocks(self) -> dict[str, nn.Module]:
        return {f"layer{i}": layer for i, layer in enumerate(self.model.layers)}

    # --- dynamics -------------------------------------------------------------------------------------------
    def neutral_label(self, batch: int, like: Tensor) -> Tensor:
        return torch.full((batch, self.num_classes), 1.0 / self.num_classes, device=like.device,
                          dtype=like.dtype)

    def onehot(self, y: Tensor, like: Tensor) -> Tensor:
        return F.one_hot(y, self.num_classes).to(like.dtype)

    @torch.no_grad()
    def prelabel(self, x: Tensor) -> list[Tensor]:
        """States after the P undamped neutral-label steps from zero states (no graph: they carry no loss)."""
        states = self.model.zero_states(x.shape[0], x.device, x.dtype)
        label = self.neutral_label(x.shape[0], x)
        for _ in range(self.prelabel_steps):
            states = self.model.step(x, label, states)
        return states

    def damped_step(self, x: Tensor, label: Tensor, states: Sequence[Tensor],
                    grad_layers: Sequence[int] = ()) -> list[Tensor]:
        """One synchronous labelled step; only layers in ``grad_layers`` keep a graph (to their own maps)."""
        prev = [s.detach() for s in states]  # every state a layer reads is from step t-1 and detached
        normed = [self.model.normalize(p) for p in prev]  # no parameters: computing them once is safe
        out = []
        for i in range(len(prev)):
            with torch.set_grad_enabled(i in grad_layers and torch.is_grad_enabled()):
                h_hat = self.model.layer_step(i, x, label, prev, normed)
                out.append((1 - self.damping) * prev[i] + self.damping * h_hat)
        return out

    def layer_loss(self, bad_pos: Tensor, bad_neg: Tensor) -> Tensor:
        if self.objective == "inverted":  # positives below theta, negatives above
            return ff_loss(bad_neg, bad_pos, self.threshold)
        return ff_loss(bad_pos, bad_neg, self.threshold)

    def _negative_labels(self, x: Tensor, y: Tensor) -> Tensor:
        if self.neg_label == "hardest":
            with torch.no_grad():
                return hardest_wrong_labels(self.predict(x), y)
        return wrong_labels(y, self.num_classes, "uniform")

    # --- losses ---------------------------------------------------------------------------------------------
    def labelled_step_losses(self, x: Tensor, y: Tensor, active: Sequence[str]
                             ) -> Iterator[dict[str, Tensor]]:
        """Per labelled time step, the loss of every active layer (the repository steps after each one).

        Positive and negative streams are one batch of 2B (positives first) with separate states; they share
        the pre-label states, which do not depend on the label.
        """
        names = list(self.blocks())
        grad_layers = [names.index(a) for a in active if a in names]
        b = x.shape[0]
        xf = self.model.flatten(x)
        y_neg = self._negative_labels(x, y)
        states = [torch.cat([s, s]) for s in self.prelabel(xf)]
        x2 = torch.cat([xf, xf])
        label = torch.cat([self.onehot(y, xf), self.onehot(y_neg, xf)])
        for _ in range(self.steps):
            states = self.damped_step(x2, label, states, grad_layers)
            losses = {}
            for i in grad_layers:
                bad = badness(states[i])
                losses[names[i]] = self.layer_loss(bad[:b], bad[b:])
            yield losses
            states = [s.detach() for s in states]

    def local_losses(self, x: Tensor, y: Tensor, phase: str, active: Sequence[str]) -> dict[str, Tensor]:
        """Mean over the labelled steps of each active layer's per-step loss (one update per batch, with the
        weights of the batch's start; what ``updates: per_batch`` steps on and what the locality check
        reads)."""
        total: dict[str, Tensor] = {}
        for losses in self.labelled_step_losses(x, y, active):
            for k, v in losses.items():
                total[k] = total[k] + v if k in total else v
        return {k: v / self.steps for k, v in total.items()}

    def local_loss_steps(self, x: Tensor, y: Tensor, phase: str, active: Sequence[str]
                         ) -> Iterator[dict[str, Tensor]]:
        """``per_step``: the module steps after each labelled step, before the next one is computed
        (repository); ``per_batch``: one step on the mean."""
        if self.updates == "per_step":
            yield from self.labelled_step_losses(x, y, active)
        else:
            yield self.local_losses(x, y, phase, active)

    # --- evaluation -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def layer_badness(self, x: Tensor) -> Tensor:
        """``[L, B, C]``: every layer's badness averaged over the eval window, for every candidate label, in
        one batched run (pre-label steps computed once and replicated)."""
        b, c = x.shape[0], self.num_classes
        xf = self.model.flatten(x)
        states = [s.repeat(c, 1) for s in self.prelabel(xf)]  # label-major: row c * B + j
        xs = xf.repeat(c, 1)
        label = self.onehot(torch.arange(c, device=x.device).repeat_interleave(b), xf)
        first, last = self.eval_window
        acc = torch.zeros(len(states), c * b, device=x.device, dtype=xf.dtype)
        for t in range(last + 1):
            states = self.damped_step(xs, label, states)
            if t >= first:
                acc += torch.stack([badness(s) for s in states])
        acc /= last - first + 1
        return acc.view(len(states), c, b).transpose(1, 2)

    def scores_from_badness(self, bad: Tensor) -> Tensor:
        """``[..., B, C]`` badness -> class scores (argmax = prediction)."""
        return -bad if self.objective == "inverted" else bad

    def predict(self, x: Tensor) -> Tensor:
        bad = self.layer_badness(x)
        return self.scores_from_badness(bad[1:].mean(0) if self.predict_skip_first else bad.mean(0))

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Accuracy and, per layer, the accuracy of that layer's badness alone - from one batched run."""
        bad = self.layer_badness(x)
        score = self.scores_from_badness(bad[1:].mean(0) if self.predict_skip_first else bad.mean(0))
        out = {"acc": (score.argmax(1) == y).float().mean()}
        true = F.one_hot(y, self.num_classes).bool()
        for i, bl in enumerate(bad):
            sl = self.scores_from_badness(bl)
            out[f"layer{i}/acc"] = (sl.argmax(1) == y).float().mean()
            out[f"layer{i}/separation"] = sl[true].mean() - sl[~true].mean()  # true minus wrong label score
        return out

    def describe(self) -> dict:
        """Derived facts only (the switches are the recorded config): the resolved evaluation window and the
        network's recurrence settings."""
        m = self.model
        return {"eval_window": list(self.eval_window), "lateral": m.lateral, "bias": m.bias,
                "activation": m.activation, "normalization": m.normalization}
