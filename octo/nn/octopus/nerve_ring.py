"""The nerve ring: multi-head self-attention over the N arm tokens.

H in R^{N x B} attends to itself: per head, softmax(Q K^T / sqrt(B/heads)) over arms, dropout on the attention
matrix, concat heads, W_o; output LayerNorm_B(H + Dropout(W_o attn)) with an affine LayerNorm. Q, K, V, O are
Linear(B -> B) with Xavier-uniform weights and zero biases. ``rounds`` > 1 applies the same ring repeatedly (the
iterative nerve ring of A17).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from octo.utils.errors import ConfigError


class NerveRing(nn.Module):
    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.1, rounds: int = 1) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"model.bottleneck={dim} must be divisible by model.nerve_ring.heads={heads}")
        if not isinstance(rounds, int) or rounds < 1:
            raise ConfigError(f"model.nerve_ring.rounds={rounds!r} must be an int >= 1")
        self.dim, self.heads, self.rounds = dim, heads, rounds
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        for lin in (self.q, self.k, self.v, self.o):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.attn_drop = nn.Dropout(dropout)
        self.out_drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def attention(self, h: Tensor) -> Tensor:
        """``[b, heads, N, N]`` attention weights (after dropout) of one round."""
        b, n, _ = h.shape
        q = self.q(h).view(b, n, self.heads, -1).transpose(1, 2)
        k = self.k(h).view(b, n, self.heads, -1).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.dim // self.heads)
        return self.attn_drop(torch.softmax(scores.float(), dim=-1).to(q.dtype))

    def step(self, h: Tensor) -> Tensor:
        b, n, _ = h.shape
        v = self.v(h).view(b, n, self.heads, -1).transpose(1, 2)
        mixed = (self.attention(h) @ v).transpose(1, 2).reshape(b, n, self.dim)
        return self.norm(h + self.out_drop(self.o(mixed)))

    def forward(self, h: Tensor) -> Tensor:
        """``h``: ``[b, N, B]`` arm tokens -> enriched tokens of the same shape."""
        for _ in range(self.rounds):
            h = self.step(h)
        return h
