"""Unsupervised FF (octo/algorithms/ff_unsupervised.py): golden values, locality, switches. Every uff_* /
bp_uff_* experiment runs end to end in tests/test_experiments.py."""

import math

import pytest
from conftest import assert_local
import torch
import torch.nn.functional as F

from octo.algorithms.ff_unsupervised import FFUnsupervised, readout_features
from octo.evaluation.locality import gradient_leaks
from octo.nn.mlp import MLP
from octo.utils.errors import ConfigError



def _batch(n=16):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 6, 6, generator=g), torch.randint(0, 4, (n,), generator=g)


def _identity_net(width=2, layers=1, **kwargs):
    """MLP on 1x1xwidth images whose layers are identity maps without input normalisation: h = relu(x)."""
    net = MLP([1, 1, width], [width] * layers, normalize_input_layer=False, normalize_hidden=False)
    with torch.no_grad():
        for layer in net.layers:
            layer.linear.weight.copy_(torch.eye(width))
            layer.linear.bias.zero_()
    return net


def _swap_seed():
    """A seed under which torch.randperm(2) is [1, 0] (the partner of each image is the other one)."""
    for s in range(100):
        torch.manual_seed(s)
        if torch.randperm(2).tolist() == [1, 0]:
            return s
    raise AssertionError("no seed found")


# --- golden values ------------------------------------------------------------------------------------------
def test_readout_features_golden():
    h1 = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    h2 = torch.tensor([[1.0], [2.0]])
    per_sample = readout_features([h1, h2], "per_sample")
    expected = torch.tensor([[3 / 5.0001, 4 / 5.0001, 1 / 1.0001], [0.0, 0.0, 2 / 2.0001]])
    assert torch.allclose(per_sample, expected, atol=1e-6)
    frob = readout_features([h1, h2], "frobenius_batch")  # each layer's batch matrix over its Frobenius norm
    expected = torch.tensor([[0.6, 0.8, 1 / math.sqrt(5)], [0.0, 0.0, 2 / math.sqrt(5)]])
    assert torch.allclose(frob, expected, atol=1e-6)
    # the extension's bug: the same sample gets different features in a bigger batch
    assert not torch.allclose(readout_features([h1[:1]], "frobenius_batch"),
                              readout_features([torch.cat([h1[:1], h1[:1]])], "frobenius_batch")[:1])


def test_readout_loss_golden_plain_and_double_softmax():
    algo = FFUnsupervised(_identity_net(layers=2), num_classes=2)
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [1/4, 3/4]
    y = torch.tensor([1])
    assert algo.readout_loss(logits, y).item() == pytest.approx(-math.log(0.75), abs=1e-6)
    algo.readout_double_softmax = True
    # cross-entropy of the probabilities [0.25, 0.75] taken as logits: log(1 + e^(0.25 - 0.75))
    assert algo.readout_loss(logits, y).item() == pytest.approx(math.log1p(math.exp(-0.5)), abs=1e-6)


def test_layer_loss_golden_with_fixed_mask():
    # images [1, 2] and [3, 4]; mask keeps pixel 0 and takes pixel 1 from the partner (the other image)
    algo = FFUnsupervised(_identity_net(), num_classes=2, mask="single_fixed", threshold=2.0)
    algo.fixed_mask.copy_(torch.tensor([True, False]).view(1, 1, 1, 2))
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(2, 1, 1, 2)
    torch.manual_seed(_swap_seed())
    loss = algo.local_losses(x, torch.tensor([0, 1]), "train", ["layer0"])["layer0"]
    g_pos = [(1 + 4) / 2, (9 + 16) / 2]          # mean squares of relu(x) = x
    g_neg = [(1 + 16) / 2, (9 + 4) / 2]          # negatives [1, 4] and [3, 2]
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    expected = 0.5 * ((sp(2 - g_pos[0]) + sp(2 - g_pos[1])) / 2 + (sp(g_neg[0] - 2) + sp(g_neg[1] - 2)) / 2)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_readout_block_golden():
    # two identity layers; the read-out sees layer 1 only, per-sample normalised, with a fixed linear map
    algo = FFUnsupervised(_identity_net(layers=2), num_classes=2)
    assert algo.readout_layers == [1] and algo.readout.in_features == 2
    with torch.no_grad():
        algo.readout.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        algo.readout.bias.zero_()
    x = torch.tensor([[3.0, 4.0]]).view(1, 1, 1, 2)
    logits = torch.tensor([[3 / 5.0001, 8 / 5.0001]])
    assert torch.allclose(algo.predict(x), logits, atol=1e-6)
    loss = algo.local_losses(x, torch.tensor([0]), "train", ["readout"])
    assert set(loss) == {"readout"}
    expected = F.cross_entropy(logits, torch.tensor([0])).item()
    assert loss["readout"].item() == pytest.approx(expected, abs=1e-6)


def test_hybrid_negatives_mix_the_batch():
    # 28 x 28: on tiny images the zero-padded blur darkens everything and the mask is all off
    torch.manual_seed(0)
    x = torch.stack([torch.zeros(1, 28, 28), torch.ones(1, 28, 28)])
    algo = FFUnsupervised(MLP([1, 28, 28], [4, 4]), 2, mask="single_fixed")
    m = algo.fixed_mask[0].float()
    assert 0 < m.mean() < 1
    torch.manual_seed(_swap_seed())
    neg = algo.negatives(x)
    # each image keeps its pixels where the mask is on and takes its partner's (the other image's) elsewhere
    assert torch.equal(neg[0], 1 - m) and torch.equal(neg[1], m)
    fresh = FFUnsupervised(MLP([1, 28, 28], [4, 4]), 2)
    torch.manual_seed(0)
    a = fresh.negatives(x.repeat(16, 1, 1, 1))
    assert len({tuple(v.flatten().tolist()) for v in a}) > 2  # a fresh mask per negative


# --- locality -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm,double", [("per_sample", False), ("frobenius_batch", True)])
def test_every_block_learns_only_from_its_own_loss(norm, double):
    torch.manual_seed(0)
    algo = FFUnsupervised(MLP([1, 6, 6], [12, 10, 8]), num_classes=4, readout_norm=norm,
                          readout_double_softmax=double)
    report = gradient_leaks(algo, *_batch())
    assert_local(report, {"layer0", "layer1", "layer2", "readout"})


def test_losses_only_for_active_blocks():
    torch.manual_seed(0)
    algo = FFUnsupervised(MLP([1, 6, 6], [12, 10, 8]), num_classes=4)
    x, y = _batch()
    assert set(algo.local_losses(x, y, "train", ["layer1"])) == {"layer1"}
    assert set(algo.local_losses(x, y, "train", ["readout"])) == {"readout"}
    assert set(algo.local_losses(x, y, "train", ["layer0", "readout"])) == {"layer0", "readout"}


# --- config -------------------------------------------------------------------------------------------------
def test_latent_shape_uses_the_chosen_layers_widths():
    algo = FFUnsupervised(MLP([1, 6, 6], [12, 10, 8, 6]), num_classes=4)
    assert algo.readout_layers == [1, 2, 3] and algo.readout.in_features == 10 + 8 + 6
    algo = FFUnsupervised(MLP([1, 6, 6], [12, 10, 8, 6]), num_classes=4, readout_layers=[0, 3])
    assert algo.readout.in_features == 12 + 6
    assert algo.predict(_batch()[0]).shape == (16, 4)


@pytest.mark.parametrize("kwargs", [{"mask": "once"}, {"readout_norm": "l2"}, {"goodness": "max"},
                                    {"readout_layers": [4]}, {"readout_layers": []}, {"blur_iterations": -1}])
def test_bad_settings_fail_fast(kwargs):
    with pytest.raises(ConfigError):
        FFUnsupervised(MLP([1, 6, 6], [12, 10, 8, 6]), num_classes=4, **kwargs)


def test_single_fixed_mask_is_saved_with_the_model():
    algo = FFUnsupervised(MLP([1, 6, 6], [4, 4]), num_classes=4, mask="single_fixed")
    assert algo.fixed_mask.shape == (1, 1, 6, 6)
    assert "fixed_mask" in algo.state_dict()
    assert algo.mask_mode == "single_fixed"
