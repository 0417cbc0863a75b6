"""OctopusNet (docs/algorithms/octopus.md): N arms trained by local losses, a nerve ring and a coordinator.

Modes (all one algorithm):
- FF-standard: CNN arms, FF on Fourier-overlaid positives / uniform wrong-label negatives; then a backprop
  coordinator on frozen arm tokens. ``phases = ("ff", "coordinator")``: two passes per epoch, as published.
- SFF (``readout=sff``): per-arm aux heads on detached GAP(f3) + a logit coordinator. ``phases = ("ff", "sff")``;
  the second pass repeats the arms' FF step (``sff_second_pass_ff_step``, as coded).
- CG (``model.arm=cg``): class-grouped goodness per arm (clean images, no negatives), same coordinator.
- heterogeneous (``model.arm_types``): any mix of cnn / cg / transformer / lstm arms.
- sleep phase (A16, ``sleep_phase``; off by default, the published code never trains its decoder): a module decoder
  per FF arm learns to reconstruct the arm's clean input image from the arm's token, and its detached "dreams"
  serve as extra FF negatives for that arm (see :meth:`Octopus._sleep`).

Blocks: ``arm0..armN-1`` (each arm's FF-trained trunk), ``bottleneck`` (all arms' token projections; only with
``train_bottleneck``), ``nerve_ring`` (only with ``train_nerve_ring``), ``coordinator`` or ``sff_heads``,
``decoder`` (only with ``sleep_phase``: every FF arm's module decoder, trained in the FF pass). Locality:
arm losses see only their own trunk; the coordinator learns on detached tokens; the bottleneck and nerve-ring
losses are the coordinator's cross-entropy evaluated through *frozen* (detached-parameter) copies of the blocks
above them, so each loss has gradient only on its own block; the decoder reads detached tokens and its dreams
are detached before an arm sees them. ``passes=1`` trains everything on every batch in one
pass (faster; not the published schedule).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from octo.algorithms.base import LocalAlgorithm
from octo.algorithms.octopus_eval import OctopusEvaluation
from octo.algorithms.octopus_rules import (
    LabelOverlay,
    arm_ff_loss,
    cg_loss,
    frozen_call,
    midpoint_threshold,
    module_dropout_keep,
)
from octo.encodings.negatives import wrong_labels
from octo.nn.octopus.common import resize_gain
from octo.nn.octopus.decoder import ModuleDecoder
from octo.nn.octopus.net import OctopusNet
from octo.nn.octopus.sff import SFFHeads
from octo.utils.errors import ConfigError, check_choice, check_int

READOUTS = ("coordinator", "sff")
SLEEP_NEGATIVES = ("add", "replace")
FEEDBACK_MODES = ("none", "as_coded_rgb_gain", "paper_modulation")


class Octopus(OctopusEvaluation, LocalAlgorithm):
    """Args (``conf/algorithm/octopus.yaml``; defaults = the published code's behaviour):
        readout: ``coordinator`` (nerve ring + backprop coordinator) or ``sff`` (local aux heads).
        passes: 2 = FF pass then coordinator/SFF pass per epoch (published); 1 = both on every batch.
        label_encoding, overlay_strength, onehot_label_value: FF label overlay (Fourier K = 0.5, or one-hot A13).
        ff_threshold, ff_adaptive_threshold: fixed theta or the batch midpoint of mean g+ and mean g-.
        adaptive_threshold_respected: False = CNN arms always use the midpoint (published bug 8); True = they
            follow ``ff_adaptive_threshold`` like the Transformer/LSTM arms.
        cg_threshold: theta of the class-grouped loss (2.0).
        train_bottleneck, train_nerve_ring: False = fixed random projections / attention (published bugs 1, 2).
        feedback_mode: ``none``; ``as_coded_rgb_gain`` (3 stale input gains from the previous evaluation forward,
            bug 3); ``paper_modulation`` (the batch-mean feedback of the last coordinator forward scales each arm's
            first feature maps on the next batch).
        module_dropout: p of zeroing one random arm's token before the nerve ring (coordinator training).
        sff_second_pass_ff_step: True = SFF's second pass repeats the FF step (published, bug 10).
        cg_eval_multiscale: True = CG arms are FF-trained at full resolution but fed the downsampled images in the
            coordinator pass and at evaluation (published, bug 6); False = full resolution everywhere.
        eval_arm_metrics: per-arm g+/g-/separation on every evaluation batch (two extra arm passes).
        channels_last: run the conv arms in channels_last memory format (faster with cuDNN, and several times
            faster for the grouped CG convs on CPU).
        sleep_phase: A16 (not in the published training code): a ``decoder`` block (one ``ModuleDecoder`` per FF
            arm) learns on every FF batch to reconstruct the arm's clean input (pixels at the arm's resolution)
            from the arm's token of the positive it just saw; on sleep batches its detached reconstructions
            ("dreams"), overlaid with the image's true label, are FF negatives for that arm. Its learning rate is
            the optimiser's (``optimizer.blocks.decoder.lr`` sets its own).
        sleep_every: every k-th FF batch is a sleep batch (1 = every batch).
        sleep_dreams: dreams per arm per sleep batch (the first n images of the shuffled batch; null = one per
            image).
        sleep_negatives: ``add`` = dreams join the wrong-label negatives (the arms keep learning the labels);
            ``replace`` = on sleep batches the dreams are the only negatives (no wrong labels are drawn).
        sleep_pixel_mean, sleep_pixel_std: the dataset normalisation (per channel), to turn the decoder's sigmoid
            pixels into the arm's input space and back; null = inputs already are pixels (0 / 1).
    """

    def __init__(self, model: OctopusNet, num_classes: int, readout: str = "coordinator", passes: int = 2,
                 label_encoding: str = "fourier", overlay_strength: float = 0.5,
                 onehot_label_value: float | None = None, ff_threshold: float = 2.0,
                 ff_adaptive_threshold: bool = True, adaptive_threshold_respected: bool = False,
                 cg_threshold: float = 2.0, train_bottleneck: bool = False, train_nerve_ring: bool = False,
                 feedback_mode: str = "as_coded_rgb_gain", module_dropout: float = 0.0,
                 sff_second_pass_ff_step: bool = True, cg_eval_multiscale: bool = True,
                 eval_arm_metrics: bool = True, channels_last: bool = True,
                 sleep_phase: bool = False, sleep_every: int = 1,
                 sleep_dreams: int | None = None, sleep_negatives: str = "add",
                 sleep_pixel_mean: Sequence[float] | None = None,
                 sleep_pixel_std: Sequence[float] | None = None) -> None:
        super().__init__(num_classes)
        check_choice("algorithm.readout", readout, READOUTS)
        check_choice("algorithm.passes", passes, (1, 2))
        check_choice("algorithm.feedback_mode", feedback_mode, FEEDBACK_MODES)
        if not isinstance(model, OctopusNet):
            raise ConfigError("algorithm=octopus needs model=octopus (or octopus_cg / octopus_hetero)")
        if model.num_classes != self.num_classes:
            raise ConfigError(f"model.num_classes={model.num_classes} != dataset.num_classes={num_classes}")
        if not 0 <= module_dropout <= 1:
            raise ConfigError(f"algorithm.module_dropout={module_dropout!r} must be in [0, 1]")
        if readout == "sff" and (train_bottleneck or train_nerve_ring or module_dropout > 0):
            raise ConfigError("readout=sff uses neither tokens nor the nerve ring: train_bottleneck, "
                              "train_nerve_ring and module_dropout have no effect there; leave them off")
        if train_nerve_ring and model.ring is None:
            raise ConfigError("algorithm.train_nerve_ring=true but model.nerve_ring.enabled=false")
        self.net = model
        self.readout, self.passes = readout, passes
        self.phases = ("joint",) if passes == 1 else ("ff", "coordinator" if readout == "coordinator" else "sff")
        c, h, w = model.input_shape
        self.overlay = LabelOverlay(label_encoding, num_classes, h, w, overlay_strength, onehot_label_value)
        self.ff_threshold, self.ff_adaptive_threshold = float(ff_threshold), bool(ff_adaptive_threshold)
        self.adaptive_threshold_respected, self.cg_threshold = bool(adaptive_threshold_respected), float(cg_threshold)
        self.train_bottleneck, self.train_nerve_ring = bool(train_bottleneck), bool(train_nerve_ring)
        self.feedback_mode, self.module_dropout = feedback_mode, float(module_dropout)
        self.sff_second_pass_ff_step, self.cg_eval_multiscale = bool(sff_second_pass_ff_step), bool(cg_eval_multiscale)
        self.eval_arm_metrics, self.channels_last = bool(eval_arm_metrics), bool(channels_last)
        n = model.num_arms
        self.sff = SFFHeads([a.pooled_dim for a in model.arms], num_classes) if readout == "sff" else None
        # feedback state (persistent: a checkpoint resumes with the same gains)
        self.register_buffer("fb_gain", torch.ones(n, c))          # as coded: gains applied now
        self.register_buffer("fb_pending", torch.ones(n, c))       # as coded: stored by the last full forward
        self.register_buffer("fb_mod", torch.ones(n, model.dim))   # paper: modulation for the next batch
        self._cl_ready = False
        self.sleep_phase = bool(sleep_phase)
        self.decoders = self._build_decoders(sleep_every, sleep_dreams, sleep_negatives, sleep_pixel_mean,
                                             sleep_pixel_std) if self.sleep_phase else None

    def _build_decoders(self, every, dreams, negatives, mean, std) -> nn.ModuleDict:
        """One ModuleDecoder per FF arm (keyed by arm index), and the sleep settings."""
        check_choice("algorithm.sleep_negatives", negatives, SLEEP_NEGATIVES)
        check_int("algorithm.sleep_every", every, 1)
        check_int("algorithm.sleep_dreams", dreams, 1, allow_none=True, hint="null: one per image")
        if self.overlay.encoding != "fourier":
            raise ConfigError("algorithm.sleep_phase=true needs label_encoding=fourier: dreams are overlaid at the "
                              "arm's resolution, where only the Fourier pattern is defined")
        ff = [i for i, a in enumerate(self.net.arms) if a.loss_kind == "ff"]
        if not ff:
            raise ConfigError("algorithm.sleep_phase=true needs FF arms (label overlay and negatives); "
                              "class-grouped (cg) arms have no negatives to dream")
        c = self.net.input_shape[0]
        stats = []
        for name, v, default in (("sleep_pixel_mean", mean, 0.0), ("sleep_pixel_std", std, 1.0)):
            v = [default] * c if v is None else [float(t) for t in v]
            if len(v) == 1:
                v = v * c
            if len(v) != c or (name == "sleep_pixel_std" and min(v) <= 0):
                raise ConfigError(f"algorithm.{name}={v!r} must hold 1 or {c} values (std > 0)")
            stats.append(torch.tensor(v).view(1, c, 1, 1))
        self.register_buffer("pixel_mean", stats[0], persistent=False)
        self.register_buffer("pixel_std", stats[1], persistent=False)
        self.sleep_every, self.sleep_dreams, self.sleep_negatives = every, dreams, negatives
        self._ff_batches = 0  # FF training batches seen by this process: schedules the sleep batches
        return nn.ModuleDict({str(i): ModuleDecoder(self.net.dim, c, self.net.arms[i].scale) for i in ff})

    # --- blocks and phases -----------------------------------------------------------------------------------
    def arm_names(self) -> list[str]:
        return [f"arm{i}" for i in range(self.net.num_arms)]

    def _head_names(self) -> list[str]:
        if self.readout == "sff":
            return ["sff_heads"]
        return (["bottleneck"] if self.train_bottleneck else []) + \
            (["nerve_ring"] if self.train_nerve_ring else []) + ["coordinator"]

    def blocks(self) -> dict[str, nn.Module]:
        out: dict[str, nn.Module] = {f"arm{i}": arm.trunk for i, arm in enumerate(self.net.arms)}
        if self.decoders is not None:
            out["decoder"] = self.decoders
        for name in self._head_names():
            out[name] = {"sff_heads": self.sff, "nerve_ring": self.net.ring, "coordinator": self.net.coordinator,
                         "bottleneck": nn.ModuleList(a.bottleneck for a in self.net.arms)}[name]
        return out

    def phase_blocks(self, phase: str) -> list[str]:
        sleep = ["decoder"] if self.decoders is not None else []
        if phase == "ff":
            return self.arm_names() + sleep
        if phase == "sff":
            return (self.arm_names() if self.sff_second_pass_ff_step else []) + ["sff_heads"]
        if phase == "coordinator":
            return self._head_names()
        return self.arm_names() + sleep + self._head_names()  # "joint"

    def block_groups(self) -> dict[str, list[str]]:
        return {"arms": self.arm_names()}

    # --- plumbing --------------------------------------------------------------------------------------------
    def _fmt(self, x: Tensor) -> Tensor:
        if not self.channels_last or x.ndim != 4:
            return x
        if not self._cl_ready:
            self.net.arms.to(memory_format=torch.channels_last)
            self._cl_ready = True
        return x.contiguous(memory_format=torch.channels_last)

    def _gains(self, i: int) -> tuple[Tensor | None, Tensor | None]:
        arm = self.net.arms[i]
        if self.feedback_mode == "as_coded_rgb_gain" and arm.accepts_input_gain:
            g = self.fb_gain[i]
        elif self.feedback_mode == "paper_modulation" and arm.accepts_mid_gain:
            g = resize_gain(self.fb_mod[i], arm.mid_channels)
        else:
            return None, None
        g = g.clone() if torch.is_grad_enabled() else g  # the buffers are updated in place later
        return (g, None) if self.feedback_mode == "as_coded_rgb_gain" else (None, g)

    def ff_scale(self, i: int) -> int:
        """Resolution of arm i's FF training input (CG arms: always the full image, as published)."""
        arm = self.net.arms[i]
        return self.net.base if arm.loss_kind == "cg" else arm.scale

    def eval_scale(self, i: int) -> int:
        """Resolution of arm i's input in the coordinator pass and at evaluation."""
        arm = self.net.arms[i]
        return arm.scale if arm.loss_kind != "cg" or self.cg_eval_multiscale else self.net.base

    def _trunks(self, x: Tensor, arms: Sequence[int] | None = None, ff_scales: bool = False) -> dict[int, object]:
        """Trunk outputs of the given arms on ``x`` (each downsampled once per distinct size)."""
        arms = range(self.net.num_arms) if arms is None else arms
        size = {i: self.ff_scale(i) if ff_scales else self.eval_scale(i) for i in arms}
        xs = {s: self._fmt(v) for s, v in self.net.rescale(x, list(size.values())).items()}
        return {i: self.net.arms[i].forward_trunk(xs[size[i]], *self._gains(i)) for i in arms}

    def _labelled_trunks(self, x: Tensor, labels: Tensor, arms: Sequence[int]) -> dict[int, object]:
        """Trunk outputs of the FF arms on ``x`` overlaid with each row of ``labels`` (``[K, B]``), as ``[K * B]``
        rows, label-major: ``_trunks(overlay(cat of K copies of x, labels.flatten()), arms, ff_scales=True)`` up to
        float rounding, without building K labelled copies of every image.

        The overlay is an image part plus a per-label map, the bilinear downsampling (no antialiasing) is linear,
        and so is each arm's first convolution (zero padding, bias carried by the image part): the image part is
        downsampled and convolved once per image, each label map once per call (C small maps), and the arm adds
        them (``forward_trunk_labelled``). Only FF arms see labels; CG arms (BatchNorm after the first conv) train
        on clean images and never come here.
        """
        size = {i: self.ff_scale(i) for i in arms}
        image, label_maps = (self.net.rescale(part, list(size.values())) for part in self.overlay.split(x))
        return {i: self.net.arms[i].forward_trunk_labelled(self._fmt(image[size[i]]), self._fmt(label_maps[size[i]]),
                                                           labels, *self._gains(i)) for i in arms}

    def _tokens(self, trunks: dict[int, object]) -> Tensor:
        return torch.stack([self.net.arms[i].token(t).float() for i, t in sorted(trunks.items())], 1)

    # --- local losses ----------------------------------------------------------------------------------------
    def local_losses(self, x: Tensor, y: Tensor, phase: str, active: Sequence[str]) -> dict[str, Tensor]:
        active = set(active)
        arms = [i for i, n in enumerate(self.arm_names()) if n in active]
        losses = self._arm_losses(x, y, arms, decoder="decoder" in active) if arms else {}
        if self.readout == "coordinator" and active & {"bottleneck", "nerve_ring", "coordinator"}:
            losses.update(self._head_losses(x, y, active))
        if self.readout == "sff" and "sff_heads" in active:
            losses["sff_heads"] = self._sff_loss(x, y)
        return losses

    def local_loss_steps(self, x: Tensor, y: Tensor, phase: str, active: Sequence[str]):
        """SFF's second pass as published: the arms' FF step first, then the aux heads learn on the updated arms."""
        if phase == "sff":
            arms = [b for b in active if b in self.arm_names()]
            rest = [b for b in active if b not in arms]
            for group in (arms, rest):
                if group:
                    yield self.local_losses(x, y, phase, group)
            return
        yield self.local_losses(x, y, phase, active)

    def _arm_losses(self, x: Tensor, y: Tensor, arms: Sequence[int], decoder: bool = False) -> dict[str, Tensor]:
        losses = {}
        ff = [i for i in arms if self.net.arms[i].loss_kind == "ff"]
        cg = [i for i in arms if self.net.arms[i].loss_kind == "cg"]
        if ff:
            b = x.shape[0]
            decoder = decoder and self.decoders is not None
            asleep = decoder and self._sleep_due()
            replace = asleep and self.sleep_negatives == "replace"
            # positives then negatives, as one batch of 2b rows (positives alone when dreams replace negatives)
            labels = torch.stack([y] if replace else [y, wrong_labels(y, self.num_classes)])
            trunks = self._labelled_trunks(x, labels, ff)
            dreams = {}
            if decoder:
                losses["decoder"], dreams = self._sleep(x, y, trunks, ff, asleep)
            for i in ff:
                arm = self.net.arms[i]
                g = arm.goodness(trunks[i])
                g_pos, g_neg = g[:b], g[b:]
                if i in dreams:
                    g_dream = arm.goodness(dreams[i])
                    g_neg = g_dream if replace else torch.cat([g_neg, g_dream])
                respects = arm.kind != "cnn" or self.adaptive_threshold_respected
                adaptive = self.ff_adaptive_threshold if respects else True
                theta = midpoint_threshold(g_pos, g_neg) if adaptive else self.ff_threshold
                losses[f"arm{i}"] = arm_ff_loss(g_pos, g_neg, theta)
        if cg:
            trunks = self._trunks(x, cg, ff_scales=True)  # clean images, full resolution
            for i in cg:
                losses[f"arm{i}"] = cg_loss(self.net.arms[i].goodness(trunks[i]), y, self.cg_threshold)
        return losses

    # --- sleep phase (A16) -----------------------------------------------------------------------------------
    def _sleep_due(self) -> bool:
        """Whether this FF batch is a sleep batch; counts training batches only (grad enabled)."""
        due = self._ff_batches % self.sleep_every == 0
        if torch.is_grad_enabled():
            self._ff_batches += 1
        return due

    def _to_pixels(self, x: Tensor) -> Tensor:
        return x * self.pixel_std.to(x.dtype) + self.pixel_mean.to(x.dtype)

    def _from_pixels(self, p: Tensor) -> Tensor:
        return (p - self.pixel_mean.to(p.dtype)) / self.pixel_std.to(p.dtype)

    def _sleep(self, x: Tensor, y: Tensor, trunks: dict[int, object], ff: Sequence[int], asleep: bool
               ) -> tuple[Tensor, dict[int, Tensor]]:
        """The decoder's loss and, on a sleep batch, each arm's trunk output on its dreams.

        Wake (every FF batch): decoder i reads arm i's token of each positive (computed without gradient from the
        trunk output the FF step just made, so neither the arm nor its bottleneck learns from it) and is trained
        to reproduce the clean image at arm i's resolution, in pixels: mean squared error, averaged over the arms.
        Sleep (every ``sleep_every``-th batch): the first ``sleep_dreams`` reconstructions of that same forward,
        detached, mapped to the input space and overlaid with the image's true label at the arm's resolution
        (Fourier: (1-K) dream + K P_y, which equals the downsampled full-resolution overlay for a real image), go
        through arm i's trunk: negatives that differ from the positives only in being dreamt.
        """
        b = x.shape[0]
        n = b if self.sleep_dreams is None else min(self.sleep_dreams, b)
        sizes = {i: self.ff_scale(i) for i in ff}
        clean = self.net.rescale(x, list(sizes.values()))
        maps = self.net.rescale(self.overlay.split(x[:1])[1], list(sizes.values())) if asleep else {}
        rec_losses, dreams = [], {}
        for i in ff:
            arm = self.net.arms[i]
            with torch.no_grad():
                tok = arm.token(trunks[i][:b]).float()
            pixels = self.decoders[str(i)](tok)
            rec_losses.append(F.mse_loss(pixels.float(), self._to_pixels(clean[sizes[i]]).float()))
            if asleep:
                d = self._from_pixels(pixels[:n].detach()).to(x.dtype)
                image = self.overlay.split(d)[0]          # (1 - K) * dream, label-free part
                dreams[i] = arm.forward_trunk_labelled(self._fmt(image), self._fmt(maps[sizes[i]]),
                                                       y[:n].view(1, -1), *self._gains(i))
        return torch.stack(rec_losses).mean(), dreams

    def _head_losses(self, x: Tensor, y: Tensor, active: set) -> dict[str, Tensor]:
        grad = torch.is_grad_enabled()
        with torch.no_grad():
            trunks = self._trunks(x)
        with torch.set_grad_enabled(grad and "bottleneck" in active):
            tok_live = self._tokens(trunks)
        if self.module_dropout > 0:
            tok_live = tok_live * module_dropout_keep(self.net.num_arms, self.module_dropout, x.device).view(1, -1, 1)
        tok = tok_live.detach()
        ring, coord, losses = self.net.ring, self.net.coordinator, {}
        if ring is None:
            enriched = tok
        elif "nerve_ring" in active and grad:
            live = ring(tok)
            losses["nerve_ring"] = F.cross_entropy(frozen_call(coord, live)[0].float(), y)
            enriched = live.detach()
        else:
            with torch.no_grad():
                enriched = ring(tok)
        with torch.set_grad_enabled(grad and "coordinator" in active):
            logits, alpha, h_agg = coord(enriched)
        if "coordinator" in active:
            losses["coordinator"] = F.cross_entropy(logits.float(), y)
        if "bottleneck" in active and grad:
            e = frozen_call(ring, tok_live) if ring is not None else tok_live
            losses["bottleneck"] = F.cross_entropy(frozen_call(coord, e)[0].float(), y)
        if self.feedback_mode == "paper_modulation":
            self.fb_mod.copy_(coord.feedback_vectors(h_agg, alpha).mean(0))
        return losses

    def _sff_logits(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            trunks = self._trunks(x)
        return self.sff.arm_logits([self.net.arms[i].pooled(t) for i, t in sorted(trunks.items())])

    def _sff_loss(self, x: Tensor, y: Tensor) -> Tensor:
        logits = self._sff_logits(x)                                  # [b, N, C]
        combined, _ = self.sff.logit_coordinator(logits.detach())
        n = logits.shape[1]
        aux = F.cross_entropy(logits.float().transpose(1, 2), y.unsqueeze(1).expand(-1, n)) * n  # sum over arms
        return aux + F.cross_entropy(combined, y)

    # --- inference -------------------------------------------------------------------------------------------
    def full_forward(self, x: Tensor) -> dict[str, Tensor]:
        """The published ``forward()``: arms -> tokens -> ring -> coordinator, with its feedback bookkeeping."""
        self._push_feedback()
        trunks = self._trunks(x)
        logits, alpha, h_agg = self.net.head(self._tokens(trunks))
        self._store_feedback(h_agg, alpha)
        return {"trunks": trunks, "logits": logits, "alpha": alpha}

    def _push_feedback(self) -> None:
        """Before a full forward: as coded, the gains stored by the previous forward take effect now."""
        if self.feedback_mode == "as_coded_rgb_gain":
            self.fb_gain.copy_(self.fb_pending)

    def _store_feedback(self, h_agg: Tensor, alpha: Tensor) -> None:
        """After a full forward: the coordinator's feedback for the next one (both feedback modes)."""
        if self.feedback_mode == "none":
            return
        fb = self.net.coordinator.feedback_vectors(h_agg, alpha)  # [b, N, B]
        if self.feedback_mode == "as_coded_rgb_gain":
            c = self.fb_pending.shape[1]   # first C_in values of the flattened (batch x B) tensor
            self.fb_pending.copy_(fb.transpose(0, 1).reshape(fb.shape[1], -1)[:, :c])
        else:
            self.fb_mod.copy_(fb.mean(0))

    def predict(self, x: Tensor) -> Tensor:
        if self.readout == "sff":
            return self.sff.logit_coordinator(self._sff_logits(x))[0]
        return self.full_forward(x)["logits"]

    def describe(self) -> dict:
        """Derived facts only (the switches are the recorded config)."""
        return {
            "phases": list(self.phases),
            "arm_loss": "mean softplus(theta-g+) + mean softplus(g- - theta) (= 2 x octo ff_loss)",
            "model_selection": "validation split (val/acc); the per-epoch test accuracy is never used for "
                               "selection (the published code selected the best epoch on the test set)",
            "select_on_test": False,
            **({"sleep_decoder": "ModuleDecoder per FF arm: token of the positive (detached) -> clean image at "
                                 "the arm's resolution (pixels, MSE); dreams overlaid with the true label"}
               if self.sleep_phase else {}),
            **self.net.describe(),
        }
