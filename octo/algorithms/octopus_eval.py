"""Evaluation side of OctopusNet (``octo.algorithms.octopus.Octopus``): per-epoch metrics, per-arm readouts,
module failures. A mixin so that octopus.py keeps to the learning rules.

Per-epoch metrics (``evaluate``): ``acc`` (coordinator, or SFF logit coordinator), ``arm{i}/attention`` (mean
alpha), CG arms' ``arm{i}/acc`` (class-grouped goodness argmax), SFF's ``arm{i}/acc``, ``arm{i}/weight``,
``acc_ensemble`` (mean of the arms' probabilities) and ``acc_ensemble_logits``; with ``eval_arm_metrics`` every FF
arm's ``g_pos``, ``g_neg`` and ``sep`` (the paper's diagnostic, negatives from a fixed-seed generator so that
evaluation does not consume the training RNG).
"""

from __future__ import annotations

import torch
from torch import Tensor

from octo.encodings.negatives import wrong_labels


class OctopusEvaluation:
    """Needs ``net``, ``sff``, ``readout``, ``num_classes``, ``eval_arm_metrics``, ``full_forward``,
    ``_sff_logits``, ``_trunks``, ``_labelled_trunks``, ``_tokens``, ``_push_feedback`` and ``_store_feedback`` from
    :class:`~octo.algorithms.octopus.Octopus`."""

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        if self.readout == "sff":
            logits = self._sff_logits(x)
            combined, w = self.sff.logit_coordinator(logits)
            out["acc"] = (combined.argmax(1) == y).float().mean()
            out["acc_ensemble"] = (logits.float().softmax(-1).mean(1).argmax(1) == y).float().mean()
            out["acc_ensemble_logits"] = (logits.mean(1).argmax(1) == y).float().mean()
            for i in range(logits.shape[1]):
                out[f"arm{i}/acc"] = (logits[:, i].argmax(1) == y).float().mean()
                out[f"arm{i}/weight"] = w[:, i].mean()
        else:
            fwd = self.full_forward(x)
            out["acc"] = (fwd["logits"].argmax(1) == y).float().mean()
            for i, t in fwd["trunks"].items():
                out[f"arm{i}/attention"] = fwd["alpha"][:, i].mean()
                if self.net.arms[i].loss_kind == "cg":
                    out[f"arm{i}/acc"] = (self.net.arms[i].goodness(t).argmax(1) == y).float().mean()
        if self.eval_arm_metrics:
            out.update(self._separation(x, y))
        return out

    def _separation(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Per FF arm: mean goodness of positives, of negatives (fixed-seed wrong labels) and their difference."""
        ff = [i for i, a in enumerate(self.net.arms) if a.loss_kind == "ff"]
        if not ff:
            return {}
        gen = torch.Generator(device=x.device).manual_seed(0)
        labels = torch.stack([y, wrong_labels(y, self.num_classes, generator=gen)])
        trunks = self._labelled_trunks(x, labels, ff)
        out, b = {}, x.shape[0]
        for i in ff:
            g = self.net.arms[i].goodness(trunks[i])
            out[f"arm{i}/g_pos"], out[f"arm{i}/g_neg"] = g[:b].mean(), g[b:].mean()
            out[f"arm{i}/sep"] = out[f"arm{i}/g_pos"] - out[f"arm{i}/g_neg"]
        return out

    # --- resilience / specialization (octo.evaluation.resilience) --------------------------------------------
    @torch.no_grad()
    def resilience_batch(self, x: Tensor, keep: Tensor, max_rows: int = 65536) -> dict[str, Tensor]:
        """One arm pass, then the readout under every failure pattern.

        ``keep``: ``[M, N]`` (1 = arm works, 0 = failed: its token, or in SFF its logits, replaced by zeros).
        Returns ``logits`` ``[M, b, C]``, per-arm class scores ``arm_scores`` ``[N, b, C]`` and the intact
        readout's arm weights ``weights`` ``[b, N]`` (attention alpha, or the logit coordinator's w).
        """
        b, (m, n) = x.shape[0], keep.shape
        keep = keep.to(x.device).float()
        if self.readout == "sff":
            arm_logits = self._sff_logits(x).float()                       # [b, N, C]
            variants = arm_logits.unsqueeze(0) * keep.view(m, 1, n, 1)
            logits = self.sff.logit_coordinator(variants.flatten(0, 1))[0].view(m, b, -1)
            return {"logits": logits, "arm_scores": arm_logits.transpose(0, 1),
                    "weights": self.sff.logit_coordinator(arm_logits)[1]}
        # the feedback state moves batch by batch exactly as in the test pass (full_forward), driven by the intact
        # network: started from the same state, the "intact" row equals the test accuracy
        self._push_feedback()
        trunks = self._trunks(x)
        tokens = self._tokens(trunks)                                        # [b, N, B]
        chunks, step = [], max(1, max_rows // b)
        for s in range(0, m, step):
            k = keep[s:s + step]
            variants = (tokens.unsqueeze(0) * k.view(len(k), 1, n, 1)).flatten(0, 1)
            chunks.append(self.net.head(variants)[0].float().view(len(k), b, -1))
        _, alpha, h_agg = self.net.head(tokens)
        scores = self.arm_scores(x, trunks)
        self._store_feedback(h_agg, alpha)
        return {"logits": torch.cat(chunks), "arm_scores": scores, "weights": alpha}

    @torch.no_grad()
    def arm_scores(self, x: Tensor, trunks: dict | None = None, max_rows: int = 2048) -> Tensor:
        """``[N, b, C]`` per-arm class scores: CG arms = class-grouped goodness; FF arms = goodness with each
        label overlaid (label enumeration, labels in chunks of ``max_rows`` images)."""
        n, b, c = self.net.num_arms, x.shape[0], self.num_classes
        scores = x.new_zeros(n, b, c, dtype=torch.float32)
        ff = [i for i, a in enumerate(self.net.arms) if a.loss_kind == "ff"]
        for i, a in enumerate(self.net.arms):
            if a.loss_kind == "cg":
                t = trunks[i] if trunks is not None else self._trunks(x, [i])[i]
                scores[i] = a.goodness(t)
        step = max(1, max_rows // b)
        for c0 in range(0, c if ff else 0, step):
            k = min(step, c - c0)
            labels = torch.arange(c0, c0 + k, device=x.device).view(k, 1).expand(k, b)
            trunks_k = self._labelled_trunks(x, labels, ff)
            for i in ff:
                scores[i, :, c0:c0 + k] = self.net.arms[i].goodness(trunks_k[i]).view(k, b).T
        return scores

    def final_evaluation(self, loader) -> dict:
        """``{"resilience": ...}`` on ``loader`` (the test split, selected weights): every single and pair failure,
        each arm alone, floors, critical arm, per-arm per-class accuracy, mean attention (metrics.json
        ``evaluation``)."""
        from octo.evaluation.resilience import resilience_report

        return {"resilience": resilience_report(self, loader)}
