"""Module failure (resilience), specialization and attention of OctopusNet.

Failure, as published: an arm is failed at test time, without retraining, by replacing its bottleneck token with
zeros *before* the nerve ring (so the ring still turns it into a non-zero token and the coordinator still weighs
it). In SFF mode (no nerve ring) a failed arm's aux logits are zeros before the logit coordinator.

Specialization = per-arm, per-class accuracy of each arm's own readout: the SFF aux head; the class-grouped
goodness argmax for CG arms; for FF arms (CNN / Transformer / LSTM) the label-enumeration goodness argmax (every
label overlaid, the arm's goodness as score) - the arm's own FF classifier, independent of the coordinator.
Attention = the coordinator's competition weights alpha (SFF: the logit coordinator's weights w), mean over the set.

Everything is batched on the device; counts are moved to the host once at the end.
"""

from __future__ import annotations

from itertools import combinations

import torch
from torch import Tensor


def failure_patterns(n: int) -> tuple[Tensor, list[tuple[str, tuple[int, ...]]]]:
    """``keep`` ``[M, N]`` and names: intact, every single failure, every pair, every arm alone."""
    pats: list[tuple[str, tuple[int, ...]]] = [("intact", ())]
    pats += [("single", (i,)) for i in range(n)]
    pats += [("pair", p) for p in combinations(range(n), 2)]
    pats += [("alone", tuple(j for j in range(n) if j != i)) for i in range(n)] if n > 1 else []
    keep = torch.ones(len(pats), n)
    for row, (_, failed) in enumerate(pats):
        keep[row, list(failed)] = 0
    return keep, pats


@torch.no_grad()
def resilience_report(algorithm, loader) -> dict:
    """Accuracy under every single and pair failure, each arm alone, floors, critical arm, per-arm per-class
    accuracy and mean attention, on every batch of ``loader`` (``(x, y)`` or ``(x, y, ...)`` batches).

    ``algorithm`` provides ``resilience_batch(x, keep)`` and ``net.num_arms`` (``octo.algorithms.octopus.Octopus``).
    Accuracies are fractions in [0, 1].
    """
    n, c = algorithm.net.num_arms, algorithm.num_classes
    device = next(algorithm.parameters()).device
    keep, pats = failure_patterns(n)
    keep = keep.to(device)
    correct = torch.zeros(len(pats), device=device)
    arm_hits = torch.zeros(n, c, device=device)
    class_count = torch.zeros(c, device=device)
    weight_sum = torch.zeros(n, device=device)
    was_training = algorithm.training
    algorithm.eval()
    try:
        for batch in loader:
            x, y = batch[0].to(device), batch[1].to(device)
            r = algorithm.resilience_batch(x, keep)
            correct += (r["logits"].argmax(-1) == y).sum(1)
            arm_hits.index_add_(1, y, (r["arm_scores"].argmax(-1) == y).float())
            class_count.index_add_(0, y, torch.ones_like(y, dtype=class_count.dtype))
            weight_sum += r["weights"].float().sum(0)
    finally:
        algorithm.train(was_training)
    total = class_count.sum()
    acc = (correct / total).tolist()
    per_class = (arm_hits / class_count.clamp(min=1)).tolist()
    arm_acc = (arm_hits.sum(1) / total).tolist()
    weights = (weight_sum / total).tolist()

    def name(failed) -> str:
        return "+".join(f"arm{i}" for i in failed)

    single = {name(f): a for (kind, f), a in zip(pats, acc) if kind == "single"}
    pairs = {name(f): a for (kind, f), a in zip(pats, acc) if kind == "pair"}
    alone = {f"arm{next(j for j in range(n) if j not in f)}": a for (kind, f), a in zip(pats, acc)
             if kind == "alone"}
    critical = min(single, key=single.get) if single else None
    sff = getattr(algorithm, "readout", "coordinator") == "sff"
    return {
        "failure": "aux logits zeroed before the logit coordinator" if sff
        else "token zeroed before the nerve ring (no retraining)",
        "n_images": int(total.item()),
        "intact": acc[0],
        "single_failure": single,
        "pair_failure": pairs,
        "alone": alone,
        "critical_arm": critical,
        "floor_single": single[critical] if single else None,
        "floor_double": min(pairs.values()) if pairs else None,
        "degradation_single": acc[0] - single[critical] if single else None,
        "arm_readout": "sff aux heads" if sff else "CG arms: class-grouped goodness argmax; FF arms: "
                                                   "label-enumeration goodness argmax",
        "arm_accuracy": {f"arm{i}": a for i, a in enumerate(arm_acc)},
        "specialization": {f"arm{i}": row for i, row in enumerate(per_class)},
        "attention": {f"arm{i}": w for i, w in enumerate(weights)},
    }
