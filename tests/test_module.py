"""The Lightning module's stepping: joint vs per-block equivalence, schedules, divergence, step counting."""

from functools import partial

import lightning as L
import pytest
import torch

from octo.algorithms.ff import FF
from octo.nn.mlp import MLP
from octo.training.module import LocalLearningModule
from octo.training.schedules import Greedy, Simultaneous
from octo.utils.errors import ConfigError, DivergenceError


class Batches:
    """A tiny in-memory train loader with the platform's batch format (x, y, pass_idx)."""

    def __init__(self, n_batches=6, seed=0, scale=1.0):
        g = torch.Generator().manual_seed(seed)
        self.data = [(scale * torch.randn(8, 1, 4, 4, generator=g), torch.randint(0, 3, (8,), generator=g), 0)
                     for _ in range(n_batches)]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def _fit(layout, schedule_cls=Simultaneous, epochs=2, lr=0.01, loader=None, algo_kwargs=None):
    L.seed_everything(0, verbose=False)
    algo = FF(MLP([1, 4, 4], [6, 5, 4]), num_classes=3, **(algo_kwargs or {}))
    module = LocalLearningModule(algo, schedule_cls(optimizer_layout=layout), partial(torch.optim.Adam, lr=lr))
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    # wrong labels are random: seed so both layouts draw the same negatives
    torch.manual_seed(1)
    trainer.fit(module, train_dataloaders=loader or Batches())
    return module, trainer


def test_joint_and_per_block_optimisers_give_identical_weights():
    joint, _ = _fit("joint")
    per_block, _ = _fit("per_block")
    for (n, a), (_, b) in zip(joint.state_dict().items(), per_block.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_training_changes_every_layer_and_counts_batches_not_optimizer_steps():
    module, trainer = _fit("per_block")
    assert int(module.batches_seen) == 12  # 2 epochs x 6 batches, whatever the number of optimisers
    assert trainer.global_step == 36  # Lightning counts every optimiser step (3 per batch): why we keep our own
    assert module.images_seen == 96
    L.seed_everything(0, verbose=False)
    init = FF(MLP([1, 4, 4], [6, 5, 4]), num_classes=3)
    for (n, a), (_, b) in zip(init.state_dict().items(), module.algorithm.state_dict().items()):
        assert not torch.equal(a, b), f"{n} did not learn"


def test_greedy_schedule_trains_one_block_at_a_time():
    g = Greedy()
    blocks = ["layer0", "layer1"]
    assert [g.active(blocks, e, 4) for e in range(4)] == [["layer0"], ["layer0"], ["layer1"], ["layer1"]]
    # after training greedily for one epoch per layer-share, the last layer only moved in its own share
    L.seed_everything(0, verbose=False)
    before = FF(MLP([1, 4, 4], [6, 5, 4]), num_classes=3).state_dict()
    module, _ = _fit("per_block", Greedy, epochs=3)
    after = module.algorithm.state_dict()
    for k in before:
        assert not torch.equal(before[k], after[k]), k  # each of the 3 layers had exactly one epoch


def test_greedy_first_epoch_leaves_later_layers_untouched():
    L.seed_everything(0, verbose=False)
    before = FF(MLP([1, 4, 4], [6, 5, 4]), num_classes=3).state_dict()
    module, _ = _fit("joint", Greedy, epochs=1)
    after = module.algorithm.state_dict()
    # with 1 epoch and 3 blocks, epoch 0 maps to block 0: only layer0 changed, even in one joint optimiser
    assert not torch.equal(before["model.layers.0.linear.weight"], after["model.layers.0.linear.weight"])
    assert torch.equal(before["model.layers.1.linear.weight"], after["model.layers.1.linear.weight"])
    assert torch.equal(before["model.layers.2.linear.weight"], after["model.layers.2.linear.weight"])


def test_divergence_is_detected():
    with pytest.raises(DivergenceError, match="non-finite"):
        _fit("joint", loader=Batches(scale=float("nan")), epochs=1)


def test_bad_layout_is_a_config_error():
    with pytest.raises(ConfigError, match="joint, per_block"):
        Simultaneous(optimizer_layout="both")


def test_greedy_uneven_shares():
    # the extension's UFF recipe: 4 layers x 1000 full-batch steps, then the read-out for 500
    g = Greedy(shares=[2, 2, 2, 2, 1])
    blocks = ["layer0", "layer1", "layer2", "layer3", "readout"]
    owner = [g.active(blocks, e, 4500)[0] for e in range(4500)]
    assert [owner.count(b) for b in blocks] == [1000, 1000, 1000, 1000, 500]
    assert owner[999] == "layer0" and owner[1000] == "layer1" and owner[3999] == "layer3" and owner[4000] == "readout"
    assert Greedy(shares=[1, 1]).active(["a", "b"], 3, 4) == Greedy().active(["a", "b"], 3, 4) == ["b"]
    with pytest.raises(ConfigError, match="one share per block"):
        g.active(["layer0", "readout"], 0, 10)
    for bad in ([], [1, 0], [1, "x"]):
        with pytest.raises(ConfigError, match="schedule.shares"):
            Greedy(shares=bad)
