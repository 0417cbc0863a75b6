"""The backprop CNN baseline and its block failure (OctopusNet's control row: any block zeroed -> one class)."""

import pytest
import torch
from torch import nn

import octo.train
from octo.algorithms.bp_block_failure import BPBlockFailure
from octo.evaluation.block_failure import block_failure_report, failure_patterns
from octo.nn.cnn import ConvNet
from octo.utils.errors import ConfigError


def test_convnet_blocks_and_features():
    net = ConvNet([3, 16, 16], channels=[4, 8, 8], convs_per_block=2)
    assert len(net.blocks) == 3 and net.out_features == 8
    assert net(torch.randn(5, 3, 16, 16)).shape == (5, 8)
    # 3 blocks on a 4x4 image: the third pool would go below 1x1 and is skipped
    assert ConvNet([1, 4, 4], channels=[2, 2, 2])(torch.randn(2, 1, 4, 4)).shape == (2, 2)
    with pytest.raises(ConfigError, match="channels"):
        ConvNet([3, 8, 8], channels=[])


def test_failure_patterns_are_intact_singles_pairs():
    assert failure_patterns(3) == [("intact", ()), ("single", (0,)), ("single", (1,)), ("single", (2,)),
                                   ("pair", (0, 1)), ("pair", (0, 2)), ("pair", (1, 2))]


def test_zeroing_a_block_makes_the_prediction_constant():
    torch.manual_seed(0)
    net = ConvNet([3, 8, 8], channels=[4, 8, 8]).eval()
    head = nn.Linear(8, 10)
    x, y = torch.randn(64, 3, 8, 8), torch.arange(64) % 10
    predict = lambda v: head(net(v))  # noqa: E731
    before = predict(x)
    rep = block_failure_report(predict, list(net.blocks), [(x[:32], y[:32]), (x[32:], y[32:])], 10)
    assert rep["n_images"] == 64 and set(rep["single_failure"]) == {"block0", "block1", "block2"}
    assert set(rep["pair_failure"]) == {"block0+block1", "block0+block2", "block1+block2"}
    # a failed block hands zeros on: every image gets the same class, so accuracy = that class's share
    for name in [*rep["single_failure"], *rep["pair_failure"]]:
        assert rep["distinct_predictions"][name] == 1
    assert rep["intact"] == pytest.approx((before.argmax(1) == y).float().mean().item())
    assert rep["critical_block"] in rep["single_failure"]
    assert rep["floor_single"] == min(rep["single_failure"].values())
    assert rep["floor_double"] == min(rep["pair_failure"].values())
    assert torch.equal(predict(x), before)  # hooks are gone afterwards


def test_bp_block_failure_needs_blocks():
    with pytest.raises(ConfigError, match="blocks"):
        BPBlockFailure(nn.Sequential(nn.Flatten(), nn.Linear(4, 4)), 2)


def test_bp_cnn_experiment_reports_block_failure(compose_cfg):
    cfg = compose_cfg(["experiments=bp_cnn_cifar10", "+scale=smoke_cnn", "logger=none"])
    assert cfg.model.channels == [4, 8, 8] and cfg.dataset.input_shape == [3, 16, 16]
    metrics = octo.train.run(cfg)
    assert metrics["status"] == "ok"
    rep = metrics["evaluation"]["resilience"]
    assert rep["n_images"] == 320 and len(rep["single_failure"]) == 3 and len(rep["pair_failure"]) == 3
    assert all(rep["distinct_predictions"][b] == 1 for b in ("block0", "block1", "block2"))
    assert rep["intact"] == pytest.approx(metrics["test/acc"], abs=1e-6)
