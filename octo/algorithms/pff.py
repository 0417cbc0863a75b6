"""Predictive Forward-Forward (Ororbia & Mali 2023); network in ``octo/nn/pff_circuits.py``.

A recurrent representation circuit (two hidden layers with top-down input, lateral competition and noise)
learns with an FF goodness loss per layer, a softmax head learns with cross-entropy, and a generative circuit
learns to predict each layer from the one above (predictive coding, top latent z_g inferred by gradient
descent). Every batch runs K inference steps from a bottom-up sweep; the reference takes an Adam step on both
circuits at every one of them ("intertwined inference and learning").

Blocks and their local losses (states from the previous step, predictor inputs and targets are detached, so no
gradient crosses a block):

============  =========================  ===============================================
block         parameters                 loss
============  =========================  ===============================================
``rep1``      W1, V2, b1, L1             BCE(sign * (sum z1^2 - theta), positive?)
``rep2``      W2, V, b2, L2              BCE(sign * (sum z2^2 - theta), positive?)
``head``      W, b                       s_y * cross-entropy of softmax(n(z2_prev) W + b), positives only
``gen2``      Gy                         E2 = mean_b sum (z2_hat - z2)^2   (also drives z_g)
``gen1``      G2                         E1 = mean_b sum (z1_hat - z1)^2
``gen0``      G1                         E0 = mean_b sum (x_hat - x)^2
============  =========================  ===============================================

Prediction runs the noise-free dynamics with every candidate label clamped (all labels in one batched
``[C, B, n]`` pass) and picks the label with the best goodness over a window of steps (the reference: lowest
sum of squares over steps 5 and 6 of 7).

One optimiser step per inference step needs the training module to step between the K steps. This class offers
that as :meth:`local_loss_steps` (a generator: the caller backpropagates and steps after each yielded dict).
While ``octo.algorithms.base.LocalAlgorithm`` has no such hook, the module calls :meth:`local_losses`, which
takes ONE step per batch on the mean of the K per-step losses (settle-then-update); ``describe()`` records
which one ran.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from octo.algorithms.base import LocalAlgorithm
from octo.encodings.negatives import wrong_labels
from octo.nn.pff_circuits import PFFNet, activation, goodness_logit, goodness_loss, normalize
from octo.utils.errors import ConfigError, check_choice, check_int, check_positive

log = logging.getLogger(__name__)

GOODNESS_SIGNS = {"low_is_positive": -1.0, "high_is_positive": 1.0}
REP_BLOCKS = ("rep1", "rep2", "head")
GEN_BLOCKS = ("gen2", "gen1", "gen0")
#: whether the training module steps the optimisers between the yields of ``local_loss_steps`` (proposed hook)
MODULE_STEPS_PER_YIELD = "local_loss_steps" in vars(LocalAlgorithm)


class PFF(LocalAlgorithm):
    """Predictive Forward-Forward.

    Args:
        model: a :class:`~octo.nn.pff_circuits.PFFNet`.
        num_classes: number of labels.
        steps: K inference steps per training batch (reference 12).
        threshold: goodness threshold theta in training (sum over units; reference 10; 0 at classification).
        alpha: leak / damping of the state update (0.3).
        gamma: strength of the lateral term (``rec_gamma``, 1.0).
        y_scale: label scale s_y for the top-down label input and the head loss weight (5.0).
        eps_r: std of the Gaussian noise on representation pre-activations in training (0.01).
        eps_g: std of the noise on the generative predictors' inputs in training (0.025).
        beta: z_g step size (0.025).
        reg_lambda / g_reg_lambda: weight of the (non-squared, as coded) Frobenius norms of W1, W2, V2, V, W /
            G1, G2, Gy (0 / 0); each norm joins the loss of the block that owns the matrix.
        eval_steps: K_high, steps of the label-clamped classification run (null = K // 2 + 1 = 7).
        eval_window_start: K_low, first step whose goodness counts (null = K // 2 - 1 = 5); steps
            K_low .. K_high - 1 count (bug #2: the code's comments say "3..5").
        goodness_sign: ``low_is_positive`` (reference: positives have LOW sum of squares, logit
            theta - sum z^2) or ``high_is_positive`` (Hinton's FF). Bug/doubt #1.
        update_every_step: reference true: an optimiser step after each of the K steps (needs the module hook,
            see the module docstring); false: one step per batch on the mean of the K step losses. Bug #3.
        ste_relu: straight-through ReLU (reference, derivative 1 everywhere) or the standard ReLU. Bug #4.
        gen_on_negatives: the generative circuit also learns from (and infers z_g for) the negative rows
            (reference true). Bug #5.
        stable_log: head cross-entropy via log_softmax (corrected, default) or log(softmax) without epsilon as
            coded (can give inf/NaN). Bug #6.
        gmm_train_images: the sample GMM of :meth:`save_images` is fitted, as in the reference, on the z_g codes
            of *training* images: the last ``gmm_train_images`` training images seen (a ring buffer filled by
            every training batch, so after the last epoch a uniform random subset of the training set; kept in
            memory, not in checkpoints), encoded with the weights being tested. 0 = no buffer (the codes of the
            images handed to ``save_images`` are used, with a warning).
    """

    def __init__(self, model: PFFNet, num_classes: int, steps: int = 12, threshold: float = 10.0,
                 alpha: float = 0.3, gamma: float = 1.0, y_scale: float = 5.0, eps_r: float = 0.01,
                 eps_g: float = 0.025, beta: float = 0.025, reg_lambda: float = 0.0,
                 g_reg_lambda: float = 0.0, eval_steps: int | None = None,
                 eval_window_start: int | None = None, goodness_sign: str = "low_is_positive",
                 update_every_step: bool = True, ste_relu: bool = True, gen_on_negatives: bool = True,
                 stable_log: bool = True, gmm_train_images: int = 2000) -> None:
        super().__init__(num_classes)
        if not isinstance(model, PFFNet):
            raise ConfigError(f"algorithm=pff needs model=pff (octo.nn.pff_circuits.PFFNet), got "
                              f"{type(model).__name__}")
        if model.num_classes != self.num_classes:
            raise ConfigError(f"model.num_classes={model.num_classes} != dataset.num_classes={num_classes}")
        check_choice("algorithm.goodness_sign", goodness_sign, tuple(GOODNESS_SIGNS))
        check_int("algorithm.steps", steps, 1)
        for key, value in (("alpha", alpha), ("gamma", gamma), ("y_scale", y_scale), ("eps_r", eps_r),
                           ("eps_g", eps_g), ("beta", beta), ("reg_lambda", reg_lambda),
                           ("g_reg_lambda", g_reg_lambda)):
            check_positive(f"algorithm.{key}", value, allow_zero=True)
        if not 0 <= alpha < 1:
            raise ConfigError(f"algorithm.alpha={alpha!r} must be in [0, 1)")
        check_int("algorithm.gmm_train_images", gmm_train_images, 0)
        self.eval_steps = steps // 2 + 1 if eval_steps is None else eval_steps
        self.eval_window_start = max(steps // 2 - 1, 0) if eval_window_start is None else eval_window_start
        if not (isinstance(self.eval_steps, int) and isinstance(self.eval_window_start, int)
                and 0 <= self.eval_window_start < self.eval_steps):
            raise ConfigError(f"algorithm.eval_window_start={self.eval_window_start!r} must be an int in "
                              f"[0, eval_steps={self.eval_steps!r})")
        self.model = model
        self.steps, self.threshold = steps, float(threshold)
        self.alpha, self.gamma, self.y_scale = float(alpha), float(gamma), float(y_scale)
        self.eps_r, self.eps_g, self.beta = float(eps_r), float(eps_g), float(beta)
        self.reg_lambda, self.g_reg_lambda = float(reg_lambda), float(g_reg_lambda)
        self.goodness_sign = goodness_sign
        self.sign = GOODNESS_SIGNS[goodness_sign]
        self.update_every_step, self.ste_relu = bool(update_every_step), bool(ste_relu)
        self.gen_on_negatives, self.stable_log = bool(gen_on_negatives), bool(stable_log)
        self.phi = activation(self.ste_relu)
        self._checked_range = False
        # training images for the GMM (plain attributes: not in state_dict, untouched by checkpoint loading)
        self.gmm_train_images = gmm_train_images
        self._train_x: Tensor | None = None
        self._train_pos = self._train_count = 0
        self._test_labels: tuple[Tensor, Tensor] | None = None  # first test batch (x, y), for the t-SNE colours
        if self.update_every_step and not MODULE_STEPS_PER_YIELD:
            log.warning("PFF: update_every_step=true needs the training module to step between "
                        "inference steps (LocalAlgorithm.local_loss_steps); this octo has no such hook, so "
                        "one step per batch is taken on the mean of the %d step losses", steps)

    # --- blocks ---------------------------------------------------------------------------------------------
    def blocks(self) -> dict[str, nn.Module]:
        m = self.model
        return {"rep1": m.rep1, "rep2": m.rep2, "head": m.head,
                "gen2": m.gen2, "gen1": m.gen1, "gen0": m.gen0}

    @property
    def updates_per_batch(self) -> int:
        """Optimiser steps per training batch that actually run with this octo."""
        return self.steps if self.update_every_step and MODULE_STEPS_PER_YIELD else 1

    # --- training -------------------------------------------------------------------------------------------
    def _check_input_range(self, x: Tensor) -> None:
        # once per run (one host sync): the generative circuit predicts pixels in [0, 1] (x_hat is clipped)
        if not self._checked_range:
            self._checked_range = True
            lo, hi = float(x.min()), float(x.max())
            if lo < -1e-3 or hi > 1 + 1e-3:
                log.warning("PFF: inputs span [%.2f, %.2f]; the reference uses pixels in [0, 1] "
                            "(set dataset.mean=[0.0...] dataset.std=[1.0...]): the x reconstruction (gen0) "
                            "cannot fit them", lo, hi)

    def _remember_training_images(self, xf: Tensor) -> None:
        """Write a training batch into the ring buffer of the last ``gmm_train_images`` training images."""
        n = self.gmm_train_images
        if n == 0:
            return
        xf = xf.detach()[-n:]
        buf = self._train_x
        if buf is None or buf.shape[1] != xf.shape[1] or buf.device != xf.device or buf.dtype != xf.dtype:
            self._train_x = buf = xf.new_empty(n, xf.shape[1])
            self._train_pos = self._train_count = 0
        buf[(self._train_pos + torch.arange(xf.shape[0], device=xf.device)) % n] = xf
        self._train_pos = (self._train_pos + xf.shape[0]) % n
        self._train_count = min(self._train_count + xf.shape[0], n)

    def training_images(self) -> Tensor | None:
        """The buffered training images ``[n, d]`` (None before any training batch)."""
        return None if self._train_x is None else self._train_x[:self._train_count]

    def _reg(self, mats: Sequence[Tensor], lam: float) -> Tensor | float:
        # non-squared Frobenius norms, as coded
        return lam * sum(m.norm() for m in mats) if lam > 0 else 0.0

    def inference_steps(self, x: Tensor, y: Tensor, active: Sequence[str]) -> Iterator[dict[str, Tensor]]:
        """The K steps of one training batch; yields each step's local losses (all six blocks' values, whether
        active or not; inactive blocks' losses are computed without a graph).

        Positives (x, y) and negatives (x, uniform wrong label) are stacked to 2B rows. Between yields nothing
        is kept that has a graph: the next step starts from detached states, so stepping the optimisers
        between yields (the reference) and accumulating the yields (settle-then-update) are both valid uses.
        """
        self._check_input_range(x)
        m, phi, b = self.model, self.phi, x.shape[0]
        xf = m.flatten(x)
        if torch.is_grad_enabled():  # a training batch (evaluation runs without gradient)
            self._remember_training_images(xf)
        xx = torch.cat([xf, xf])
        yy = torch.cat([y, wrong_labels(y, self.num_classes, "uniform")])
        lab = torch.cat([torch.ones(b, device=x.device), torch.zeros(b, device=x.device)])
        y_scaled = self.y_scale * F.one_hot(yy, self.num_classes).to(xf.dtype)
        gen_rows = 2 * b if self.gen_on_negatives else b
        xn = normalize(xx)  # constant over the K steps
        with torch.no_grad():
            z1, z2, _ = m.bottom_up(xx, phi)
        z_g = xf.new_zeros(gen_rows, m.g_units)
        grad_on = torch.is_grad_enabled()
        for _ in range(self.steps):
            losses: dict[str, Tensor] = {}
            # representation circuit: z^{k-1} are constants, only this step is differentiable
            with torch.set_grad_enabled(grad_on and any(n in active for n in ("rep1", "rep2"))):
                n1 = torch.randn_like(z1) * self.eps_r if self.eps_r > 0 else 0.0
                n2 = torch.randn_like(z2) * self.eps_r if self.eps_r > 0 else 0.0
                z1_new, z2_new = m.step(m.x_drive(xn, normalized=True), y_scaled, z1, z2, alpha=self.alpha,
                                        gamma=self.gamma, phi=phi, noise1=n1, noise2=n2)
                losses["rep1"] = (goodness_loss(z1_new, lab, self.threshold, self.sign)
                                  + self._reg([m.rep1.W, m.rep1.V], self.reg_lambda))
                losses["rep2"] = (goodness_loss(z2_new, lab, self.threshold, self.sign)
                                  + self._reg([m.rep2.W, m.rep2.V], self.reg_lambda))
            with torch.set_grad_enabled(grad_on and "head" in active):
                losses["head"] = self._head_loss(z2[:b], y) + self._reg([m.head["W"]], self.reg_lambda)
            z1, z2 = z1_new.detach(), z2_new.detach()
            # generative circuit on the new states (targets and predictor inputs detached)
            t1, t2 = z1[:gen_rows], z2[:gen_rows]
            with torch.set_grad_enabled(grad_on and any(n in active for n in GEN_BLOCKS)):
                e1 = torch.randn_like(t1) * self.eps_g if self.eps_g > 0 else 0.0
                e2 = torch.randn_like(t2) * self.eps_g if self.eps_g > 0 else 0.0
                z1_hat = m.predict_z1(t2 + e2, phi)
                x_hat = m.predict_x(t1 + e1, phi)
                losses["gen1"] = ((z1_hat - t1).pow(2).sum(-1).mean()
                                  + self._reg([m.gen1["G"]], self.g_reg_lambda))
                losses["gen0"] = ((x_hat - xx[:gen_rows]).pow(2).sum(-1).mean()
                                  + self._reg([m.gen0["G"]], self.g_reg_lambda))
            # the reference takes dE2/dz_g in the same tape as the Gy gradient, i.e. with the pre-update Gy
            e2_loss, z_g = self.latent_step(z_g, t2, keep_graph=grad_on and "gen2" in active)
            losses["gen2"] = e2_loss + self._reg([m.gen2["G"]], self.g_reg_lambda)
            yield losses

    def latent_step(self, z_g: Tensor, z2: Tensor, keep_graph: bool = False) -> tuple[Tensor, Tensor]:
        """E2 = mean_b sum_j (phi(n(phi(z_g)) Gy) - z2)^2 and the next z_g = z_g - beta dE2/dz_g (detached).

        ``keep_graph``: return E2 with its graph to Gy (for the gen2 update), else detached.
        """
        with torch.enable_grad():  # z_g inference needs dE2/dz_g even when Gy does not learn
            z_g = z_g.detach().requires_grad_(True)
            e2 = (self.model.predict_z2(z_g, self.phi) - z2.detach()).pow(2).sum(-1).mean()
            (dz_g,) = torch.autograd.grad(e2, z_g, retain_graph=keep_graph)
        return (e2 if keep_graph else e2.detach()), (z_g - self.beta * dz_g).detach()

    def _head_loss(self, z2_prev_pos: Tensor, y: Tensor) -> Tensor:
        """s_y * cross-entropy of the head on the positive rows (z3 is computed from the previous z2)."""
        logits = self.model.head_logits(z2_prev_pos)
        if self.stable_log:
            logp = torch.log_softmax(logits, dim=-1)
        else:
            logp = torch.log(torch.softmax(logits, dim=-1))  # as coded: -inf where the softmax underflows
        return -self.y_scale * logp.gather(1, y[:, None]).mean()

    def local_loss_steps(self, x: Tensor, y: Tensor, phase: str, active: Sequence[str]
                         ) -> Iterator[dict[str, Tensor]]:
        """Proposed module hook: yields loss dicts, the module steps the optimisers after each one."""
        if self.update_every_step:
            for losses in self.inference_steps(x, y, active):
                yield {n: v for n, v in losses.items() if n in active}
        else:
            yield self.local_losses(x, y, phase, active)

    def local_losses(self, x: Tensor, y: Tensor, phase: str, active: Sequence[str]) -> dict[str, Tensor]:
        """Settle-then-update: the mean of the K per-step losses, for one optimiser step per batch."""
        total: dict[str, Tensor] = {}
        for losses in self.inference_steps(x, y, active):
            for n, v in losses.items():
                if n in active:
                    total[n] = total[n] + v if n in total else v
        return {n: v / self.steps for n, v in total.items()}

    # --- evaluation -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def layer_logits(self, x: Tensor) -> Tensor:
        """``[2, B, C]``: goodness logits (theta = 0) of z1 and z2 for every candidate label, summed over the
        classification window and divided by (K_high - K_low + 1) as coded; one batched ``[C, B, n]`` run."""
        m, phi, c = self.model, self.phi, self.num_classes
        xf = m.flatten(x)
        z1, z2, _ = m.bottom_up(xf, phi)
        drive = m.x_drive(xf)                                                # [B, n], label-independent
        y_scaled = self.y_scale * torch.eye(c, device=x.device, dtype=xf.dtype)[:, None, :]  # [C, 1, C]
        z1 = z1.expand(c, *z1.shape)
        z2 = z2.expand(c, *z2.shape)
        acc = xf.new_zeros(2, c, xf.shape[0])
        for k in range(self.eval_steps):
            z1, z2 = m.step(drive, y_scaled, z1, z2, alpha=self.alpha, gamma=self.gamma, phi=phi)
            if k >= self.eval_window_start:
                acc[0] += goodness_logit(z1, 0.0, self.sign)
                acc[1] += goodness_logit(z2, 0.0, self.sign)
        return (acc / (self.eval_steps - self.eval_window_start + 1)).transpose(1, 2)

    def predict(self, x: Tensor) -> Tensor:
        # the reference scores (l1 + l2) / 2
        return self.layer_logits(x).mean(0)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """The reference's reconstruction monitor: decode the bottom-up z2 top-down to an image (bug #9: not a
        settled state)."""
        m = self.model
        _, z2, _ = m.bottom_up(m.flatten(x), self.phi)
        return m.decode(z2, self.phi).view(x.shape)

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """acc (both layers' goodness), per-layer acc, the head's acc, and the reconstruction error Lx
        (sum of squared pixel errors per image, the reference's dev monitor).

        ``head/acc`` reads the label-free bottom-up state, like the reference's ``Ly`` monitor. The head
        learns on label-clamped states, where (``low_is_positive``) the true label suppresses its class's
        features, so here it tends to pick a class whose features are NOT active: near 0 % is expected, not a
        bug.
        """
        g = self.layer_logits(x)
        m = self.model
        xf = m.flatten(x)
        _, z2, z3 = m.bottom_up(xf, self.phi)
        x_hat = m.decode(z2, self.phi)
        return {"acc": (g.mean(0).argmax(1) == y).float().mean(),
                "rep1/acc": (g[0].argmax(1) == y).float().mean(),
                "rep2/acc": (g[1].argmax(1) == y).float().mean(),
                "head/acc": (z3.argmax(1) == y).float().mean(),
                "gen0/recon_sse": (x_hat - xf).pow(2).sum(1).mean()}

    # --- generative analysis --------------------------------------------------------------------------------
    @torch.no_grad()
    def infer_latent(self, x: Tensor, steps: int | None = None) -> Tensor:
        """z_g codes of ``x`` as the reference's ``get_latent`` (bug #9, kept): one noise-free step from the
        bottom-up state with the head's soft prediction as label, then ``steps`` (K) z_g descent steps on E2
        against that fixed state."""
        m, phi = self.model, self.phi
        xf = m.flatten(x)
        z1, z2, z3 = m.bottom_up(xf, phi)
        _, z2 = m.step(m.x_drive(xf), self.y_scale * z3, z1, z2, alpha=self.alpha, gamma=self.gamma, phi=phi)
        z_g = xf.new_zeros(xf.shape[0], m.g_units)
        for _ in range(self.steps if steps is None else steps):
            _, z_g = self.latent_step(z_g, z2)
        return z_g

    @torch.no_grad()
    def decode_latent(self, z_g: Tensor) -> Tensor:
        """Images ``[N, d]`` from top latents: z2_hat = phi(n(phi(z_g)) Gy) -> z1 -> x."""
        return self.model.decode(self.model.predict_z2(z_g, self.phi), self.phi)

    def final_evaluation(self, loader) -> dict:
        """Nothing to report. Keeps the first test batch (at most 1000 rows, images and labels) so that
        :meth:`save_images`, which the entry point calls with the first test images only, can colour its t-SNE plot
        by true class."""
        for x, y in loader:
            self._test_labels = (x[:1000].detach(), y[:1000].detach())
            break
        return {}

    def _known_labels(self, x: Tensor) -> Tensor | None:
        """The true labels of ``x`` if it is (the start of) the batch kept by :meth:`final_evaluation`."""
        if self._test_labels is None:
            return None
        kx, ky = self._test_labels
        k = x.shape[0]
        if k > kx.shape[0] or kx.shape[1:] != x.shape[1:]:
            return None
        return ky[:k].to(x.device) if torch.equal(kx[:k].to(x.device, x.dtype), x) else None

    @torch.no_grad()
    def _codes(self, x: Tensor, chunk: int = 1000) -> Tensor:
        return torch.cat([self.infer_latent(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)])

    @torch.no_grad()
    def save_images(self, x: Tensor, path: str | Path, n: int = 10, components: int = 10,
                    seed: int = 0, y: Tensor | None = None, tsne_points: int = 1000) -> Path:
        """One PNG grid, ``n`` columns, four rows: data | reconstruction (monitor) | decoded z_g code |
        a sample (z_g drawn from a diagonal GMM with ``components`` components fitted, as in the reference, to
        the z_g codes of training images: the ``gmm_train_images`` buffer, encoded with the current weights).
        Needs an image-shaped model input.

        Beside it, ``latent_tsne.png``: t-SNE (:mod:`octo.evaluation.tsne`, perplexity 30) of the z_g codes of
        (at most ``tsne_points`` of) ``x``, the reference's plot of test latents, coloured by class: ``y``, else
        the labels :meth:`final_evaluation` kept when ``x`` is that test batch, else the predicted class (the
        title says which)."""
        from torchvision.utils import save_image

        from octo.evaluation.tsne import save_tsne_plot

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        n = min(n, x.shape[0])
        shape = (-1, *self.model.input_shape)
        codes = self._codes(x)
        train = self.training_images()
        if train is not None and train.shape[0] >= 2:
            fit_codes = self._codes(train.to(x.device, x.dtype))
        else:
            log.warning("PFF: no training images buffered (gmm_train_images=%d, or no training batch in this "
                        "process): the sample GMM is fitted on the codes of the images handed to save_images",
                        self.gmm_train_images)
            fit_codes = codes
        gen = torch.Generator(device="cpu").manual_seed(seed)
        samples = fit_diag_gmm(fit_codes.cpu(), min(components, fit_codes.shape[0]), generator=gen).sample(n, gen)
        rows = [x[:n].clamp(0, 1), self.reconstruct(x[:n]).view(shape),
                self.decode_latent(codes[:n]).view(shape),
                self.decode_latent(samples.to(x.device, x.dtype)).view(shape)]
        save_image(torch.cat(rows).cpu(), str(path), nrow=n, padding=2, pad_value=1.0)

        k = min(tsne_points, x.shape[0])
        if k >= 2:
            labels, kind = (y[:k], "class") if y is not None else (self._known_labels(x[:k]), "class")
            if labels is None:
                labels, kind = self.predict(x[:k]).argmax(1), "predicted class"
            save_tsne_plot(codes[:k], labels, path.parent / "latent_tsne.png",
                           f"PFF latent codes z_g of {k} test images, t-SNE, coloured by {kind}")
        return path

    def describe(self) -> dict:
        """Derived facts only (the switches are the recorded config): the resolved evaluation window, the
        updates per batch, where the GMM is fitted, the network's sizes."""
        return {"eval_steps": self.eval_steps, "eval_window_start": self.eval_window_start,
                "updates_per_batch": self.updates_per_batch, "eval_exact_n": True,
                "gmm_fit_on": "z_g codes of the last gmm_train_images training images, current weights"
                if self.gmm_train_images else "z_g codes of the images handed to save_images (test)",
                "n_units": self.model.n_units, "g_units": self.model.g_units}


class DiagGMM:
    """A Gaussian mixture with diagonal covariances (weights ``[K]``, means / variances ``[K, D]``)."""

    def __init__(self, weights: Tensor, means: Tensor, variances: Tensor) -> None:
        self.weights, self.means, self.variances = weights, means, variances

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=self.means.dtype)
        return self.means[k] + self.variances[k].sqrt() * eps


def fit_diag_gmm(z: Tensor, components: int, iterations: int = 50, generator: torch.Generator | None = None,
                 min_var: float = 1e-6) -> DiagGMM:
    """EM for a diagonal GMM on ``z`` ``[N, D]`` (standardised internally; the z_g codes are far from unit
    scale after the first, 1e8-sized step from z_g = 0)."""
    z = z.double()
    mu = z.mean(0)
    sd = z.std(0).clamp_min(1e-12) if z.shape[0] > 1 else torch.ones_like(mu)
    u = (z - mu) / sd
    means = u[torch.randperm(u.shape[0], generator=generator)[:components]].clone()
    variances = torch.ones_like(means)
    weights = torch.full((components,), 1.0 / components, dtype=z.dtype)
    for _ in range(iterations):
        # E step: log N(u | mean_k, diag var_k) + log w_k
        logp = (-0.5 * (((u[:, None, :] - means) ** 2) / variances + variances.log()).sum(-1)
                + weights.clamp_min(1e-12).log())
        r = torch.softmax(logp, dim=1)
        nk = r.sum(0) + 1e-12
        weights = nk / nk.sum()
        means = (r.T @ u) / nk[:, None]
        variances = ((r.T @ u.pow(2)) / nk[:, None] - means.pow(2)).clamp_min(min_var)
    return DiagGMM(weights.float(), (means * sd + mu).float(), (variances * sd.pow(2)).float())
