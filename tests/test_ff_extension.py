"""The FF extension repository's supervised configurations (arseniivanov/pytorch_forward_forward):
[784, 64, 32] (published 9.55 % test error) and [784, 2000, 2000] (6.48 %), with its guaranteed-wrong negative
labels drawn once."""

from __future__ import annotations

import pytest
import torch
from omegaconf import open_dict

import octo.train
from octo.algorithms.ff import FF
from octo.encodings.negatives import WRONG_LABEL_MODES, wrong_labels
from octo.nn.mlp import MLP

CONFIGS = {"ff_extension_64x32": [64, 32], "ff_extension_2000x2000": [2000, 2000]}


@pytest.mark.parametrize("name,hidden", CONFIGS.items())
def test_configs_compose_to_the_extension_recipe(compose_cfg, name, hidden):
    cfg = compose_cfg([f"experiments={name}"])
    assert cfg.sweep_name == name and cfg.seed == 1234
    assert cfg.dataset.name == "mnist" and cfg.dataset.batch_size == -1 and cfg.dataset.val_size == 10000
    assert list(cfg.model.hidden) == hidden
    a = cfg.algorithm
    assert (a.threshold, a.goodness, a.neg_label, a.predict_skip_first) == (2.0, "mean", "uniform_once", False)
    assert cfg.optimizer.lr == 0.03
    assert a.label_value is None  # the batch max, as the reference
    assert cfg.schedule._target_.endswith(".Greedy") and cfg.optimizer._target_ == "torch.optim.Adam"
    assert cfg.trainer.max_epochs == 2000  # 1000 full-batch steps per layer


@pytest.mark.parametrize("name", CONFIGS)
def test_a_tiny_run_of_each_config_goes_through_the_entry_point(compose_cfg, name):
    cfg = compose_cfg([f"experiments={name}", "trainer=debug", "logger=none", "trainer.max_epochs=2",
                       "trainer.check_val_every_n_epoch=1", "checkpoint_every_n_epochs=1"])
    with open_dict(cfg):  # generated images of MNIST's shape, still one full batch (greedy: one step per layer)
        d = cfg.dataset
        d.name, d.val_size, d.eval_batch_size = "synthetic", 32, 32
        d.synthetic = {"n_train": 96, "n_test": 32, "seed": 0, "noise": 0.25}
    metrics = octo.train.run(cfg)
    assert metrics["status"] == "ok", metrics["failure"]
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert metrics["algorithm"]["neg_label"] == "uniform_once"
    trained = {k.removeprefix("train/loss/") for row in metrics["history"] for k in row if k.startswith("train/loss/")}
    assert trained == {"layer0", "layer1"}  # the greedy schedule gave each layer its step


def test_guaranteed_wrong_labels_are_never_the_true_label():
    torch.manual_seed(0)
    y = torch.arange(5000) % 10
    for _ in range(5):
        neg = wrong_labels(y, 10, "uniform")
        assert (neg != y).all() and neg.min() >= 0 and neg.max() <= 9
    # uniform over the 9 wrong classes: every offset 1..9 about equally often
    counts = torch.bincount((neg - y) % 10, minlength=10)
    assert counts[0] == 0 and (counts[1:] > 5000 / 9 * 0.8).all()


def test_uniform_once_keeps_each_images_wrong_label():
    assert "uniform_once" in WRONG_LABEL_MODES
    torch.manual_seed(3)
    y = torch.arange(200) % 10
    x = torch.randn(200, 1, 6, 6)
    once = FF(MLP([1, 6, 6], [8]), num_classes=10, neg_label="uniform_once")
    first, second = once._negative_labels(x, y), once._negative_labels(x, y)
    assert torch.equal(first, second) and (first != y).all()
    fresh = FF(MLP([1, 6, 6], [8]), num_classes=10, neg_label="uniform")
    a, b = fresh._negative_labels(x, y), fresh._negative_labels(x, y)
    assert not torch.equal(a, b) and (a != y).all() and (b != y).all()
