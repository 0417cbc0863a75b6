"""Block failure of a sequential network: zero one block's (or two blocks') output at test time.

This is the control of OctopusNet's resilience table: the backprop CNN "3 conv
blocks" (published 90.96 % intact, 10.00 % with any block failed). Zeroing the output of a block of a *sequential*
network hands every later block the same all-zero input, so every image gets the same prediction and the accuracy
falls to the share of that class in the test set (10 % on balanced CIFAR-10). The report records how many distinct
classes were predicted under each failure, so a table can show that the collapse holds by construction rather than
as an empirical resilience finding.

The report has the same layout as OctopusNet's (``octo.evaluation.resilience``): ``intact``, ``single_failure``,
``pair_failure``, ``floor_single``, ``floor_double``, ``degradation_single``, with blocks named ``block{i}``
(0-based) in place of arms, so one table renderer serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import combinations

import torch
from torch import Tensor, nn


def _zero_output(module: nn.Module, inputs, output):
    """Forward hook: the block "fails" -> its output is replaced by zeros of the same shape."""
    return torch.zeros_like(output)


def failure_patterns(n: int) -> list[tuple[str, tuple[int, ...]]]:
    """``(kind, failed blocks)``: intact, every single block, every pair of blocks."""
    return [("intact", ())] + [("single", (i,)) for i in range(n)] + \
        [("pair", p) for p in combinations(range(n), 2)]


@torch.no_grad()
def block_failure_report(predict: Callable[[Tensor], Tensor], blocks: Sequence[nn.Module],
                         loader: Iterable, num_classes: int) -> dict:
    """Accuracy (fraction) of ``predict`` on ``loader`` with each single block and each pair of blocks failed.

    ``predict(x)`` returns class scores; ``blocks`` are the modules whose outputs are zeroed (forward hooks, removed
    again afterwards even on error). ``loader`` yields ``(x, y, ...)`` batches already on the right device; it is
    materialised once (a generator can be read only once and every pattern needs the whole set).
    """
    batches = [(b[0], b[1]) for b in loader]
    n_images = sum(len(y) for _, y in batches)
    acc: dict[tuple[int, ...], float] = {}
    distinct: dict[tuple[int, ...], int] = {}
    for _, failed in failure_patterns(len(blocks)):
        handles = [blocks[i].register_forward_hook(_zero_output) for i in failed]
        try:
            correct, seen = 0, torch.zeros(num_classes, dtype=torch.bool)
            for x, y in batches:
                pred = predict(x).argmax(-1)
                correct += int((pred == y).sum())
                seen[pred.unique().cpu()] = True
        finally:
            for h in handles:
                h.remove()
        acc[failed] = correct / max(n_images, 1)
        distinct[failed] = int(seen.sum())

    def name(failed: tuple[int, ...]) -> str:
        return "+".join(f"block{i}" for i in failed)

    single = {name(f): a for f, a in acc.items() if len(f) == 1}
    pairs = {name(f): a for f, a in acc.items() if len(f) == 2}
    critical = min(single, key=single.get) if single else None
    return {
        "failure": "block output zeroed at test time (no retraining)",
        "n_images": n_images,
        "intact": acc[()],
        "single_failure": single,
        "pair_failure": pairs,
        "critical_block": critical,
        "floor_single": single[critical] if single else None,
        "floor_double": min(pairs.values()) if pairs else None,
        "degradation_single": acc[()] - single[critical] if single else None,
        "distinct_predictions": {name(f) or "intact": d for f, d in distinct.items()},
        "chance": 1.0 / num_classes,
    }
