"""OctopusNet architecture: exact parameter counts (as in the published code), N-arm generality, kernel clamp,
competition, ring."""

import pytest
import torch

from octo.algorithms.octopus import Octopus
from octo.nn.octopus import OctopusNet, compete
from octo.nn.octopus.common import default_scales
from octo.utils.errors import ConfigError

TINY = dict(channels=[4, 8, 8], bottleneck=8, coordinator={"hidden": 8},
            transformer={"dim": 8, "heads": 2, "ffn": 8}, lstm={"hidden": 4})


def count(m) -> int:
    return sum(p.numel() for p in m.parameters())


# --- parameter counts: these pin every layer's shape to the published code ---------------------------------------
def test_ff_standard_parameter_counts():
    net = OctopusNet([3, 32, 32], 10)
    assert [count(a) for a in net.arms] == [436_416] * 4
    assert count(net.ring) == 16_768
    assert count(net.coordinator) == 84_170
    assert sum(count(f) for f in net.coordinator.feedback) == 16_896
    assert count(net) == 1_846_602
    old = OctopusNet([3, 32, 32], 10, bottleneck=32)
    assert [count(a) for a in old.arms] == [403_616] * 4 and count(old.ring) == 4_288
    assert count(old.coordinator) == 51_114 and count(old) == 1_669_866


def test_cg_parameter_counts():
    pooled = OctopusNet([3, 32, 32], 10, arm="cg")
    assert [count(a) for a in pooled.arms] == [192_224, 240_864, 313_824, 411_104]
    assert count(pooled.arms[0].bottleneck) == 163_904 and count(pooled) == 1_258_954
    stride = OctopusNet([3, 32, 32], 10, arm="cg", cg={"compress": "stride"})
    assert [count(a) for a in stride.arms] == [239_264, 287_904, 360_864, 458_144]
    assert count(stride) == 1_447_114


def test_heterogeneous_and_sff_parameter_counts():
    net = OctopusNet([3, 32, 32], 10, arm_types=["cnn", "cnn", "transformer", "lstm"], kernel_sizes=[3, 7, 3, 3])
    assert [count(a) for a in net.arms] == [436_416, 2_082_496, 107_520, 557_120]
    assert count(net) == 3_284_490
    sff = Octopus(OctopusNet([3, 32, 32], 10), 10, readout="sff").sff
    assert [count(h) for h in sff.aux] == [2_570] * 4 and count(sff.logit_coordinator) == 164


# --- scales, kernels, N arms ---------------------------------------------------------------------------------------
def test_default_scales_and_kernel_clamp():
    assert default_scales(32, 4) == [32, 16, 8, 4]
    assert default_scales(28, 4) == [28, 14, 7, 4]
    assert default_scales(32, 9) == [32, 16, 8, 4, 32, 16, 8, 4, 32]
    net = OctopusNet([3, 32, 32], 10, kernel_sizes=[3, 5, 7, 9], channels=[4, 4, 4], bottleneck=8)
    assert net.kernels == [3, 5, 7, 3]  # diagnostic.py's clamp: k=9 at 4x4 -> 3
    assert OctopusNet([3, 32, 32], 10, arm="cg", num_arms=6, **TINY).kernels == [3, 5, 7, 9, 3, 5]


def test_list_lengths_are_checked():
    with pytest.raises(ConfigError, match="one value per arm"):
        OctopusNet([3, 32, 32], 10, num_arms=8, scales=[32, 16, 8, 4], **TINY)
    with pytest.raises(ConfigError, match="one value per arm"):
        OctopusNet([3, 32, 32], 10, num_arms=2, kernel_sizes=[3, 5, 7], **TINY)
    with pytest.raises(ConfigError, match="one type per arm"):
        OctopusNet([3, 32, 32], 10, num_arms=3, arm_types=["cnn", "cg"], **TINY)
    with pytest.raises(ConfigError, match="unknown model.cg keys"):
        OctopusNet([3, 32, 32], 10, cg={"chanels_per_group": 4}, **TINY)
    with pytest.raises(ConfigError, match="arm"):
        OctopusNet([3, 32, 32], 10, arm="mlp", **TINY)


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16])
def test_any_number_of_arms_trains_and_predicts(n):
    torch.manual_seed(0)
    types = (["cnn", "cg", "transformer", "lstm"] * 4)[:n]
    net = OctopusNet([1, 8, 8], 3, num_arms=n, arm_types=types, cg={"channels_per_group": 1}, **TINY)
    algo = Octopus(net, 3, module_dropout=0.5)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    losses = {}
    for phase in algo.phases:
        losses.update(algo.local_losses(x, y, phase, algo.phase_blocks(phase)))
    assert set(losses) == {f"arm{i}" for i in range(n)} | {"coordinator"}
    assert all(torch.isfinite(v) for v in losses.values())
    algo.eval()
    assert algo.predict(x).shape == (4, 3)


# --- competition ---------------------------------------------------------------------------------------------------
def test_soft_competition_sums_to_one():
    a = compete(torch.randn(5, 4), "soft")
    assert torch.allclose(a.sum(-1), torch.ones(5)) and (a > 0).all()


def test_topk_keeps_k_arms():
    s = torch.tensor([[0.1, 2.0, -1.0, 1.0], [3.0, 0.0, 0.5, -2.0]])
    a = compete(s, "topk", k=2)
    assert torch.equal(a > 0, torch.tensor([[False, True, False, True], [True, False, True, False]]))
    assert torch.allclose(a.sum(-1), torch.ones(2))
    assert torch.allclose(a[0, [1, 3]], torch.softmax(torch.tensor([2.0, 1.0]), 0))


def test_gumbel_is_one_hot_with_straight_through_gradient():
    s = torch.randn(6, 4, requires_grad=True)
    a = compete(s, "gumbel", tau=0.5, training=True)
    assert torch.equal(a.sum(-1), torch.ones(6)) and set(a.unique().tolist()) == {0.0, 1.0}
    (a * torch.arange(4.0)).sum().backward()
    assert s.grad is not None and s.grad.abs().sum() > 0  # the soft sample's gradient passes straight through


def test_gumbel_at_evaluation_stochastic_as_coded_or_argmax():
    torch.manual_seed(0)
    s = torch.zeros(64, 4)  # ties: a Gumbel sample picks arms at random
    assert not torch.equal(compete(s, "gumbel", training=False), compete(s, "gumbel", training=False))
    s = torch.randn(64, 4)
    hard = compete(s, "gumbel", training=False, eval_hard_argmax=True)
    assert torch.equal(hard, torch.nn.functional.one_hot(s.argmax(-1), 4).float())


# --- nerve ring ----------------------------------------------------------------------------------------------------
def test_nerve_ring_turns_a_zero_token_into_a_layer_normed_one():
    torch.manual_seed(0)
    net = OctopusNet([3, 16, 16], 10, channels=[4, 4, 4], bottleneck=64).eval()
    tokens = torch.nn.functional.normalize(torch.randn(2, 4, 64), dim=-1)
    tokens[:, 1] = 0
    out = net.ring(tokens)
    assert out.shape == (2, 4, 64)
    assert torch.allclose(out[:, 1].norm(dim=-1), torch.full((2,), 8.0), atol=0.05)  # ~ sqrt(B), LayerNorm
    two = OctopusNet([3, 16, 16], 10, channels=[4, 4, 4], bottleneck=8, nerve_ring={"rounds": 2}).ring.eval()
    t = torch.randn(2, 4, 8)
    assert torch.allclose(two(t), two.step(two.step(t)))
