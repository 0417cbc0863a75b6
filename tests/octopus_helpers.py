"""A tiny OctopusNet and a batch for its rule and sleep-phase tests (8x8 RGB, 4 classes, narrow arms)."""

import torch

from octo.algorithms.octopus import Octopus
from octo.nn.octopus import OctopusNet

TINY = dict(channels=[4, 8, 8], bottleneck=8, coordinator={"hidden": 8}, cg={"channels_per_group": 2},
            transformer={"dim": 8, "heads": 2, "ffn": 8}, lstm={"hidden": 4})


def algo(net_kw=None, **kw) -> Octopus:
    torch.manual_seed(0)
    return Octopus(OctopusNet([3, 8, 8], 4, **{**TINY, **(net_kw or {})}), 4, **kw)


def batch(b=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 3, 8, 8, generator=g), torch.arange(b) % 4
