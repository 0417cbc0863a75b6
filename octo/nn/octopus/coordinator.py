"""The coordinator ("brain"): query over all enriched tokens, competition among arms, MLP classifier,
and the (never trained) feedback generator.

q = W_q concat(h'_1..h'_N); s_i = <q, h'_i> / sqrt(B); alpha = competition(s); h_agg = sum_i alpha_i h'_i;
logits = Linear(hidden/2 -> C)(ReLU(Linear(hidden -> hidden/2)(ReLU(Linear(B -> hidden)(h_agg))))).
Feedback for arm i: sigmoid(Linear_i(B+1 -> B)([h_agg; alpha_i])) from detached inputs; its output enters no loss.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from octo.nn.octopus.competition import COMPETITIONS, compete
from octo.utils.errors import ConfigError, check_choice


class Coordinator(nn.Module):
    def __init__(self, num_arms: int, dim: int, num_classes: int, hidden: int = 256, competition: str = "soft",
                 topk: int = 2, gumbel_tau: float = 0.5, gumbel_eval_hard_argmax: bool = False) -> None:
        super().__init__()
        check_choice("model.coordinator.competition", competition, COMPETITIONS)
        if not isinstance(topk, int) or topk < 1:
            raise ConfigError(f"model.coordinator.topk={topk!r} must be an int >= 1")
        if competition == "topk" and topk > num_arms:  # compete() would clamp k: the recorded k would not be used
            raise ConfigError(f"model.coordinator.topk={topk} exceeds model.num_arms={num_arms}: "
                              f"choose k in 1..{num_arms}")
        if not gumbel_tau > 0:
            raise ConfigError(f"model.coordinator.gumbel_tau={gumbel_tau!r} must be > 0")
        if hidden < 2:
            raise ConfigError(f"model.coordinator.hidden={hidden!r} must be >= 2")
        self.dim, self.competition, self.topk = dim, competition, topk
        self.gumbel_tau, self.gumbel_eval_hard_argmax = float(gumbel_tau), bool(gumbel_eval_hard_argmax)
        self.query = nn.Linear(num_arms * dim, dim)
        self.decoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden // 2), nn.ReLU())
        self.classifier = nn.Linear(hidden // 2, num_classes)
        self.feedback = nn.ModuleList(nn.Linear(dim + 1, dim) for _ in range(num_arms))

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``h``: ``[b, N, B]`` enriched tokens -> (logits ``[b, C]``, alpha ``[b, N]``, h_agg ``[b, B]``)."""
        q = self.query(h.flatten(1))
        scores = (h @ q.unsqueeze(-1)).squeeze(-1) / math.sqrt(self.dim)
        alpha = compete(scores, self.competition, self.topk, self.gumbel_tau, self.training,
                        self.gumbel_eval_hard_argmax)
        h_agg = (alpha.unsqueeze(-1).to(h.dtype) * h).sum(1)
        return self.classifier(self.decoder(h_agg)), alpha, h_agg

    @torch.no_grad()
    def feedback_vectors(self, h_agg: Tensor, alpha: Tensor) -> Tensor:
        """``[b, N, B]`` feedback f_i in (0, 1), from detached inputs."""
        h_agg = h_agg.detach()
        return torch.stack([torch.sigmoid(fb(torch.cat([h_agg, alpha[:, i:i + 1].detach().to(h_agg.dtype)], 1)))
                            for i, fb in enumerate(self.feedback)], 1)
