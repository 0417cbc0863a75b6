"""The contract of every algorithm config (``conf/algorithm/*.yaml``), checked the moment the file exists.

For each config, on a tiny compatible network and generated data:

1. blocks are disjoint: no parameter belongs to two blocks;
2. locality: no block's loss reaches another block's parameters (in every phase);
3. ``predict`` returns class scores ``[B, num_classes]`` (autoencoders: ``evaluate`` reports their monitor);
4. ``evaluate`` returns the model-selection metric ``monitor`` as 0-dim tensors;
5. one training batch per phase, stepped by the real ``LocalLearningModule`` under a Lightning ``Trainer``,
   changes the parameters of that phase's blocks and of no other block (nor parameters that are in no block);
6. ``describe()`` (and ``final_evaluation``, when there is one) is JSON-serialisable; ``save_images``, when the
   algorithm has it, writes its file;
7. ``describe()`` holds derived facts only: it repeats no switch of the algorithm's config (the run records the
   resolved config itself), except a ``null`` the algorithm resolves (PFF's ``eval_steps``).

A new ``conf/algorithm/<name>.yaml`` fails here until it has a row in :data:`SETUPS` (which model, data and
small sizes it needs). Switches that change an algorithm's blocks, phases or stepping are checked as well
(:data:`VARIANTS`). :func:`check_contract` is the whole check; ``tests/test_adding_an_algorithm.py`` runs it on the
worked example of ``docs/adding_an_algorithm.md``, and two tests below show that it catches a planted locality leak
and losses handed to inactive blocks.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import assert_local
from torch import nn

REPO = Path(__file__).resolve().parents[1]
ALGORITHM_CONFIGS = sorted(p.stem for p in (REPO / "conf" / "algorithm").glob("*.yaml"))

# Tiny sizes shared by several rows.
MLP = ["model=mlp", "model.hidden=[8,6,6]"]
# CCL's published optimiser: SGD, gradient centralisation, one clip over all forward and one over all feedback modules
CCL_SGD = ["optimizer=sgd", "optimizer.grad_centralize=true", "+optimizer.blocks.forward={clip_norm:1.0,clip_group:f}",
           "+optimizer.blocks.feedback={clip_norm:1.0,clip_group:b}"]
OCTOPUS_SIZES = ["dataset=synthetic_rgb", "model.channels=[4,8,8]", "model.bottleneck=8", "model.coordinator.hidden=8",
                 "model.cg.channels_per_group=2"]
OCTOPUS = ["model=octopus", *OCTOPUS_SIZES]

#: algorithm config -> overrides (model, dataset, small sizes) that make a tiny network it can train.
#: ``dataset=synthetic`` (1x12x12, 4 classes) is the default; only the shape and class count are used here.
SETUPS: dict[str, list[str]] = {
    "bp": MLP,
    "bp_block_failure": ["model=cnn", "model.channels=[2,4,4]"],
    "ccl": ["model=ccl_mlp", "model.hidden=[8,6]", *CCL_SGD],
    "ccl_ae": ["model=ccl_ae", "dataset=synthetic_rgb", "model.channels=[2,2,2,2]", *CCL_SGD],
    "ccl_bp": ["model=ccl_mlp", "model.hidden=[8,6]", *CCL_SGD],
    "ccl_cnn": ["model=ccl_cnn", "dataset.input_shape=[1,28,28]", "model.channels=[2,2,4,4,4]", *CCL_SGD],
    "ff": MLP,
    "ff_unsupervised": MLP,
    "octopus": OCTOPUS,
    "octopus_sff": OCTOPUS,
    "pff": ["model=pff", "model.n_units=10", "model.g_units=4", "model.group_size=5", "algorithm.steps=3"],
    "recurrent_ff": ["model=recurrent", "model.hidden=[8,6]", "algorithm.steps=3", "algorithm.prelabel_steps=1"],
}

#: switches that change an algorithm's blocks, phases or stepping: each setting must fulfil the contract too
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "ff-greedy-per_block": ("ff", [*MLP, "schedule=greedy", "schedule.optimizer_layout=per_block"]),
    "ff_unsupervised-extension": ("ff_unsupervised", [*MLP, "algorithm.mask=single_fixed",
                                                      "algorithm.readout_norm=frobenius_batch",
                                                      "algorithm.readout_double_softmax=true"]),
    "recurrent_ff-per_batch": ("recurrent_ff", [*SETUPS["recurrent_ff"], "algorithm.updates=per_batch"]),
    "pff-settle_then_update": ("pff", [*SETUPS["pff"], "algorithm.update_every_step=false"]),
    "ccl-paired_difference-clip_per_block": ("ccl", [*SETUPS["ccl"], "algorithm.ccl_loss=paired_difference",
                                                     "optimizer.blocks={}", "optimizer.clip_norm=1.0"]),
    "octopus-corrected": ("octopus", [*OCTOPUS, "algorithm.train_bottleneck=true", "algorithm.train_nerve_ring=true",
                                      "algorithm.feedback_mode=paper_modulation",
                                      "algorithm.adaptive_threshold_respected=true"]),
    "octopus-one_pass": ("octopus", [*OCTOPUS, "algorithm.passes=1", "algorithm.train_bottleneck=true"]),
    "octopus-cg_arms": ("octopus", ["model=octopus_cg", *OCTOPUS_SIZES, "algorithm.module_dropout=0.5"]),
    "octopus_sff-no_second_ff_step": ("octopus_sff", [*OCTOPUS, "algorithm.sff_second_pass_ff_step=false"]),
}

BATCH = 8


# --- the checks -----------------------------------------------------------------------------------------------
def block_owner(algorithm) -> dict[int, str]:
    """id(parameter) -> its block; fails if a parameter is in two blocks."""
    owner: dict[int, str] = {}
    for name, module in algorithm.blocks().items():
        assert isinstance(module, nn.Module), f"blocks()[{name!r}] must be an nn.Module"
        for p in module.parameters():
            assert id(p) not in owner or owner[id(p)] == name, \
                f"a parameter is in two blocks: {owner[id(p)]!r} and {name!r} (blocks must be disjoint)"
            owner[id(p)] = name
    return owner


def check_locality(algorithm, x, y) -> None:
    """Every phase: each block's loss has gradient on its own parameters and on no other block's."""
    from octo.evaluation.locality import gradient_leaks

    multi = len(algorithm.phases) > 1
    expected = {f"{ph}:{b}" if multi else b for ph in algorithm.phases for b in algorithm.phase_blocks(ph)}
    report = gradient_leaks(algorithm, x, y)
    leaks = {k: r["leaks_to"] for k, r in report.items() if r["leaks_to"]}
    assert not leaks, f"locality leak: a block's loss reaches other blocks' parameters: {leaks}"
    assert_local(report, expected)


class OneBatch:
    """A train loader of one batch in the platform's format ``(x, y, pass_idx)``."""

    def __init__(self, x, y, pass_idx: int) -> None:
        self.batch = (x, y, pass_idx)

    def __iter__(self):
        return iter([self.batch])

    def __len__(self) -> int:
        return 1


def train_one_batch(module, x, y, pass_idx: int) -> None:
    """One training batch of phase ``algorithm.phases[pass_idx]``, stepped by the module as in a real run."""
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0)
    trainer.fit(module, train_dataloaders=OneBatch(x, y, pass_idx))


def check_step_changes_only_active_blocks(module, x, y) -> None:
    """Per phase, one batch (the first epoch of one): the blocks the phase and the schedule make active all
    change; no other block, and no parameter outside the blocks, does."""
    algorithm = module.algorithm
    owner = block_owner(algorithm)
    named = dict(algorithm.named_parameters())
    trainable = [b for b, m in algorithm.blocks().items() if any(p.requires_grad for p in m.parameters())]
    for pass_idx, phase in enumerate(algorithm.phases):
        active = set(module.schedule.active([b for b in algorithm.phase_blocks(phase) if b in trainable], 0, 1))
        before = {n: p.detach().clone() for n, p in named.items()}
        train_one_batch(module, x, y, pass_idx)
        moved = {owner.get(id(p), "<in no block>") for n, p in named.items() if not torch.equal(before[n], p)}
        assert moved <= active, f"phase {phase!r}: inactive blocks changed: {sorted(moved - active)}"
        assert moved >= active, f"phase {phase!r}: active blocks did not change: {sorted(active - moved)}"


def check_contract(module, x, y, tmp_path: Path, switches: dict | None = None) -> None:
    """All of the module docstring's checks on a built ``LocalLearningModule`` and one batch ``(x, y)``;
    ``switches``: the algorithm's resolved config, when it was built from one."""
    algorithm = module.algorithm
    block_owner(algorithm)
    assert algorithm.phases and all(isinstance(p, str) for p in algorithm.phases)
    for phase in algorithm.phases:
        assert set(algorithm.phase_blocks(phase)) <= set(algorithm.blocks()), f"phase_blocks({phase!r})"

    algorithm.train()
    check_locality(algorithm, x, y)

    algorithm.eval()
    with torch.no_grad():
        metrics = algorithm.evaluate(x, y)
        assert algorithm.monitor[0] in metrics, f"evaluate() must report the monitor {algorithm.monitor[0]!r}"
        assert all(torch.is_tensor(v) and v.dim() == 0 for v in metrics.values()), metrics
        try:
            scores = algorithm.predict(x)
        except NotImplementedError:  # no class scores (the CCL autoencoder): evaluate() reports its monitor
            assert algorithm.monitor[0] != "acc", "predict() is needed for model selection on val/acc"
        else:
            assert tuple(scores.shape) == (x.shape[0], algorithm.num_classes), \
                f"predict() must return [B, num_classes], got {tuple(scores.shape)}"

    algorithm.train()
    check_step_changes_only_active_blocks(module, x, y)

    derived = algorithm.describe()
    json.dumps(derived, allow_nan=False)
    repeated = sorted(k for k in set(derived) & set(switches or {}) if switches[k] is not None)
    assert not repeated, f"describe() repeats config switches {repeated}: the run records its config; keep only " \
                         "derived facts there"
    algorithm.eval()
    with torch.no_grad():
        json.dumps(algorithm.final_evaluation([(x, y)]), allow_nan=False)
        if callable(getattr(algorithm, "save_images", None)):
            assert Path(algorithm.save_images(x, tmp_path / "images" / "test.png")).stat().st_size > 0


def batch_for(cfg, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated pixels in [0, 1] of the config's input shape, every class present."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(BATCH, *cfg.dataset.input_shape, generator=g)
    return x, torch.arange(BATCH) % cfg.dataset.num_classes


def switches(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg.algorithm, resolve=True)


def build_module(compose_cfg, overrides):
    from octo.train import build

    cfg = compose_cfg(["dataset=synthetic", "trainer=debug", "logger=none", *overrides])
    L.seed_everything(0, verbose=False)
    _, module = build(cfg)
    return cfg, module


# --- the tests ------------------------------------------------------------------------------------------------
def test_every_setup_row_has_a_config():
    stale = sorted(set(SETUPS) - set(ALGORITHM_CONFIGS))
    assert not stale, f"SETUPS rows without a conf/algorithm/<name>.yaml: {stale}: remove them"


@pytest.mark.parametrize("name", ALGORITHM_CONFIGS)
def test_algorithm_contract(compose_cfg, tmp_path, name):
    if name not in SETUPS:
        pytest.fail(f"conf/algorithm/{name}.yaml has no row in SETUPS in tests/test_contract.py: add one, "
                    f'"{name}": ["model=<the model config it needs>", <small sizes>, ...] (see the other rows '
                    "and docs/adding_an_algorithm.md)")
    cfg, module = build_module(compose_cfg, [f"algorithm={name}", *SETUPS[name]])
    check_contract(module, *batch_for(cfg), tmp_path, switches(cfg))


@pytest.mark.parametrize("variant", VARIANTS)
def test_switch_variant_contract(compose_cfg, tmp_path, variant):
    name, overrides = VARIANTS[variant]
    cfg, module = build_module(compose_cfg, [f"algorithm={name}", *overrides])
    check_contract(module, *batch_for(cfg), tmp_path, switches(cfg))


def test_the_contract_catches_a_planted_locality_leak(compose_cfg, tmp_path):
    """An FF whose second layer's loss reaches the first layer (the input is not detached) must fail."""
    from octo.algorithms.ff import FF
    from octo.algorithms.goodness import ff_loss, goodness

    class LeakyFF(FF):
        def local_losses(self, x, y, phase, active):
            h = self.model.flatten(x)
            losses = {}
            for i, layer in enumerate(self.model.layers):
                h = layer(h)  # no detach: layer i's loss reaches layers 0..i-1
                g = goodness(h)
                losses[f"layer{i}"] = ff_loss(g, -g, self.threshold)
            return {k: v for k, v in losses.items() if k in active}

    from octo.nn.mlp import MLP
    from octo.training.module import LocalLearningModule
    from octo.training.schedules import Simultaneous

    torch.manual_seed(0)
    module = LocalLearningModule(LeakyFF(MLP([1, 6, 6], [8, 6]), num_classes=4), Simultaneous(),
                                 torch.optim.Adam)
    x, y = torch.rand(BATCH, 1, 6, 6), torch.arange(BATCH) % 4
    with pytest.raises(AssertionError, match="locality leak"):
        check_contract(module, x, y, tmp_path)


def test_the_contract_catches_losses_for_inactive_blocks():
    """An FF with one phase per layer whose losses ignore ``active``: the other layer moves too."""
    from octo.algorithms.ff import FF
    from octo.nn.mlp import MLP
    from octo.training.module import LocalLearningModule
    from octo.training.schedules import Simultaneous

    class IgnoresActive(FF):
        phases = ("first", "second")

        def phase_blocks(self, phase):
            return ["layer0"] if phase == "first" else ["layer1"]

        def local_losses(self, x, y, phase, active):
            return super().local_losses(x, y, phase, list(self.blocks()))

    torch.manual_seed(0)
    module = LocalLearningModule(IgnoresActive(MLP([1, 6, 6], [8, 6]), num_classes=4), Simultaneous(),
                                 torch.optim.Adam)
    x, y = torch.rand(BATCH, 1, 6, 6), torch.arange(BATCH) % 4
    with pytest.raises(AssertionError, match="inactive blocks changed: \\['layer1'\\]"):
        check_step_changes_only_active_blocks(module, x, y)
