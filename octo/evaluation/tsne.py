"""A small exact t-SNE in torch (van der Maaten & Hinton 2008), for plots of a few hundred latent codes.

octo does not depend on scikit-learn; this follows its exact method (``method="exact"``) on at most ``max_points``
points: PCA to ``pca_dims`` dimensions when there are more, Gaussian conditionals calibrated to the perplexity by
bisection, symmetrised joint P, Student-t Q, gradient descent with momentum (0.5, then 0.8), per-parameter gains
and early exaggeration (x12 for the first quarter of the iterations), learning rate max(N / 12 / 4, 50) as
scikit-learn's "auto", PCA initialisation (std 1e-4). O(N^2) memory and time: meant for N <= a few thousand.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _pca(x: Tensor, k: int) -> Tensor:
    """Projection of centred ``x`` on its first ``k`` principal axes (sign fixed: largest |loading| positive)."""
    x = x - x.mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    v = v[:k]
    v = v * torch.sign(v.gather(1, v.abs().argmax(1, keepdim=True)))
    return x @ v.T


def conditional_probabilities(d2: Tensor, perplexity: float, iterations: int = 100, tol: float = 1e-5) -> Tensor:
    """Row-stochastic P(j | i) ``[N, N]`` (zero diagonal) from squared distances: each row's Gaussian precision
    is bisected until the row's entropy is log(perplexity)."""
    n = d2.shape[0]
    target = math.log(perplexity)
    eye = torch.eye(n, dtype=torch.bool, device=d2.device)
    d = d2.masked_fill(eye, float("inf"))
    d = d - d.min(1, keepdim=True).values  # shift per row: no underflow, same conditional
    d0 = torch.nan_to_num(d, posinf=0.0)
    beta = torch.ones(n, 1, dtype=d2.dtype, device=d2.device)
    lo = torch.zeros_like(beta)
    hi = torch.full_like(beta, float("inf"))
    for _ in range(iterations):
        p = torch.exp(-d * beta)
        s = p.sum(1, keepdim=True)
        diff = torch.log(s) + beta * (d0 * p).sum(1, keepdim=True) / s - target
        if diff.abs().max() < tol:
            break
        up = diff > 0  # entropy too high: sharpen
        lo = torch.where(up, beta, lo)
        hi = torch.where(up, hi, beta)
        beta = torch.where(torch.isinf(hi), beta * 2, (lo + hi) / 2)
    return p / s


def joint_probabilities(d2: Tensor, perplexity: float) -> Tensor:
    """Symmetric joint P (sums to 1, zero diagonal): (P(j | i) + P(i | j)) / 2N."""
    n = d2.shape[0]
    p = conditional_probabilities(d2, perplexity)
    p = (p + p.T) / (2 * n)
    return p.clamp_min(1e-12).fill_diagonal_(0.0)


def tsne(x: Tensor, dims: int = 2, perplexity: float = 30.0, iterations: int = 300, exaggeration: float = 12.0,
         pca_dims: int = 32, max_points: int = 1000) -> Tensor:
    """2-D (``dims``) embedding ``[N, dims]`` of ``x`` ``[N, D]`` (float64 on x's device, returned as float32).

    Deterministic (PCA initialisation, no random numbers). ``perplexity`` is capped at (N - 1) / 3.
    """
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"t-SNE needs a [N >= 2, D] tensor, got {tuple(x.shape)}")
    if x.shape[0] > max_points:
        raise ValueError(f"exact t-SNE on {x.shape[0]} points: subsample to at most max_points={max_points}")
    x = x.detach().double()
    n = x.shape[0]
    if x.shape[1] > pca_dims:
        x = _pca(x, pca_dims)
    p = joint_probabilities(torch.cdist(x, x).pow(2), min(perplexity, max((n - 1) / 3, 1.0)))
    y = _pca(x, dims) if x.shape[1] >= dims else torch.nn.functional.pad(x - x.mean(0), (0, dims - x.shape[1]))
    y = y / y[:, 0].std().clamp_min(1e-12) * 1e-4
    lr = max(n / exaggeration / 4, 50.0)
    update, gains = torch.zeros_like(y), torch.ones_like(y)
    early = max(iterations // 4, 1)
    for it in range(iterations):
        pe = p * exaggeration if it < early else p
        num = 1.0 / (1.0 + torch.cdist(y, y).pow(2))
        num.fill_diagonal_(0.0)
        q = (num / num.sum()).clamp_min(1e-12)
        w = (pe - q) * num
        grad = 4.0 * (torch.diag(w.sum(1)) - w) @ y
        inc = update * grad < 0
        gains = torch.where(inc, gains + 0.2, gains * 0.8).clamp_min(0.01)
        update = (0.5 if it < early else 0.8) * update - lr * gains * grad
        y = y + update
    return y.float()


def save_tsne_plot(codes: Tensor, labels: Tensor, path, title: str = "") -> None:
    """t-SNE of ``codes`` ``[N, D]`` as a scatter plot coloured by ``labels`` ``[N]`` (one legend entry per
    class), written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    emb = tsne(codes.float().cpu()).numpy()
    labels = labels.cpu().numpy()
    fig, ax = plt.subplots(figsize=(6, 6))
    cmap = plt.get_cmap("tab10" if labels.max(initial=0) < 10 else "tab20")
    for c in sorted(set(labels.tolist())):
        m = labels == c
        ax.scatter(emb[m, 0], emb[m, 1], s=6, color=cmap(c % cmap.N), label=str(c))
    ax.legend(markerscale=3, fontsize=7, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
