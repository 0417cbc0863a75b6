"""Competition among arms in the coordinator: scores ``[..., N]`` -> weights ``[..., N]``.

``soft``: softmax. ``topk``: the k largest scores kept, the others set to -1e9, softmax (others get exactly 0).
``gumbel``: straight-through Gumbel-softmax (tau 0.5): hard one-hot forward, soft gradient. As published it samples
at evaluation too (stochastic predictions); ``eval_hard_argmax=True`` uses the deterministic one-hot argmax there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

COMPETITIONS = ("soft", "topk", "gumbel")


def compete(scores: Tensor, kind: str = "soft", k: int = 2, tau: float = 0.5, training: bool = True,
            eval_hard_argmax: bool = False) -> Tensor:
    s = scores.float()
    if kind == "soft":
        return torch.softmax(s, dim=-1)
    if kind == "topk":
        k = min(k, s.shape[-1])
        keep = torch.zeros_like(s, dtype=torch.bool).scatter_(-1, s.topk(k, dim=-1).indices, True)
        return torch.softmax(s.masked_fill(~keep, -1e9), dim=-1)
    if kind == "gumbel":
        if not training and eval_hard_argmax:
            return F.one_hot(s.argmax(-1), s.shape[-1]).to(s.dtype)
        return F.gumbel_softmax(s, tau=tau, hard=True, dim=-1)
    raise ValueError(f"unknown competition {kind!r}; valid: {COMPETITIONS}")
