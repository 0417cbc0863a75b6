"""Check that an algorithm is local: each block's loss moves only that block's parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:  # typing only: octo.algorithms imports octo.evaluation, never the other way round
    from octo.algorithms.base import LocalAlgorithm


def gradient_leaks(algorithm: LocalAlgorithm, x: Tensor, y: Tensor, phase: str | None = None) -> dict:
    """For every block b with a loss in ``phase``: which *other* blocks receive gradient from b's loss, and whether
    b itself receives any.

    Returns ``{block: {"own": bool, "leaks_to": [other blocks]}}``; a local algorithm has ``own`` True and
    ``leaks_to`` empty everywhere (``own`` may be False for a block whose loss is constant at init, e.g. a head).
    """
    blocks = algorithm.blocks()
    params = {n: [p for p in m.parameters() if p.requires_grad] for n, m in blocks.items()}
    report = {}
    for ph in [phase] if phase else algorithm.phases:
        active = algorithm.phase_blocks(ph)
        losses = algorithm.local_losses(x, y, ph, active)
        for name, loss in losses.items():
            flat = [p for ps in params.values() for p in ps]
            grads = torch.autograd.grad(loss, flat, allow_unused=True, retain_graph=True)
            by_param = {id(p): g for p, g in zip(flat, grads)}

            def touched(n: str) -> bool:
                return any(by_param[id(p)] is not None and by_param[id(p)].abs().sum() > 0 for p in params[n])

            report[f"{ph}:{name}" if len(algorithm.phases) > 1 else name] = {
                "own": touched(name), "leaks_to": [n for n in params if n != name and touched(n)]}
    return report
