"""OctopusNet presets on the CPU: a heterogeneous, corrected, single-pass run end to end (tiny widths, synthetic
set), and the published CIFAR-10 networks the presets build. Every preset also runs end to end, with its
resilience evaluation checked, in tests/test_experiments.py."""

import pytest

import octo.train

SMALL = ["dataset=synthetic", "trainer=debug", "trainer.max_epochs=1", "trainer.limit_train_batches=1.0",
         "trainer.limit_test_batches=1.0",  # the whole test split, as the final evaluation uses
         "dataset.std=[0.26]", "dataset.train_subset=64", "dataset.batch_size=64", "dataset.eval_batch_size=32",
         "model.channels=[4,8,8]",
         "model.bottleneck=8", "model.coordinator.hidden=8", "model.cg.channels_per_group=2"]


def test_heterogeneous_onehot_corrected_single_pass(compose_cfg):
    cfg = compose_cfg(["experiments=octopus_ff_standard", *SMALL, "model=octopus_hetero", "model.kernel_sizes=[3,5,3,3]",
                       "model.transformer.dim=8", "model.transformer.heads=2", "model.transformer.ffn=8",
                       "model.lstm.hidden=4", "algorithm.label_encoding=onehot", "algorithm.passes=1",
                       "algorithm.train_bottleneck=true", "algorithm.train_nerve_ring=true",
                       "algorithm.feedback_mode=paper_modulation", "algorithm.module_dropout=0.25",
                       "model.coordinator.competition=topk", "model.nerve_ring.rounds=2",
                       "schedule.optimizer_layout=joint", "algorithm.eval_arm_metrics=false"])
    metrics = octo.train.run(cfg)
    assert metrics["status"] == "ok"
    assert metrics["algorithm"]["arm_types"] == ["cnn", "cnn", "transformer", "lstm"]
    assert metrics["algorithm"]["phases"] == ["joint"]


@pytest.mark.parametrize("preset,params,layout", [
    ("octopus_ff_standard", 1_846_602, "per_block"), ("octopus_sff", 1_846_602 + 10_444, "per_block"),
    ("octopus_a18b", 1_258_954, "joint"), ("octopus_a6b", 1_258_954, "joint"),
    ("octopus_a21", 1_447_114, "joint"), ("octopus_a21b", 1_447_114, "joint")])
def test_presets_build_the_published_cifar10_networks(compose_cfg, preset, params, layout):
    cfg = compose_cfg([f"experiments={preset}"])
    assert cfg.dataset.name == "cifar10" and list(cfg.dataset.std) == [0.2023, 0.1994, 0.2010]
    assert cfg.dataset.batch_size == 128 and cfg.optimizer.lr == 0.001
    _, module = octo.train.build(cfg)
    assert sum(p.numel() for p in module.algorithm.parameters()) == params
    assert module.schedule.optimizer_layout == layout
    assert module.algorithm.net.scales == [32, 16, 8, 4]
