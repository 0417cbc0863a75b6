"""CPU smoke test of every OctopusNet experiment preset: compose, train one epoch on the synthetic set, test,
write metrics.json (tiny widths; the presets' CIFAR-10 settings are overridden)."""

import csv
import math

import pytest
import torch

import octo.train

SMALL = ["dataset=synthetic", "trainer=debug", "trainer.max_epochs=1", "trainer.limit_train_batches=1.0",
         "trainer.limit_test_batches=1.0",  # the whole test split, as the final evaluation uses
         "dataset.std=[0.26]", "dataset.train_subset=64", "dataset.batch_size=64", "dataset.eval_batch_size=32",
         "model.channels=[4,8,8]",
         "model.bottleneck=8", "model.coordinator.hidden=8", "model.cg.channels_per_group=2"]

PRESETS = {"octopus_ff_standard": "coordinator", "octopus_sff": "sff_heads", "octopus_a18b": "coordinator",
           "octopus_a6b": "coordinator", "octopus_a21": "coordinator", "octopus_a21b": "coordinator"}


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_on_cpu(compose_cfg, tmp_path, preset):
    extra = [] if preset == "octopus_ff_standard" else ["algorithm.eval_arm_metrics=false"]
    cfg = compose_cfg([f"experiments={preset}", *SMALL, *extra])
    assert cfg.trainer.max_epochs == 1 and cfg.sweep_name == preset
    metrics = octo.train.run(cfg)
    assert metrics["status"] == "ok", metrics["failure"]
    assert 0 <= metrics["test/acc"] <= 1
    assert metrics["algorithm"]["name"] == "Octopus"
    assert metrics["algorithm"]["model_selection"].startswith("validation")
    assert set(metrics["blocks"]) >= {"arm0", "arm3"}
    rep = metrics["evaluation"]["resilience"]  # final_evaluation on the whole test split
    assert rep["n_images"] == 256 and len(rep["pair_failure"]) == 6
    assert rep["critical_arm"] in rep["single_failure"] and len(rep["specialization"]["arm0"]) == 4
    # the final evaluation starts from the tested checkpoint's state (as-coded feedback gains included) and moves
    # it as the test pass did: its intact accuracy is the test accuracy
    assert rep["intact"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    # both passes of the epoch ran: every arm and the readout logged a finite training loss
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for block in ["arm0", "arm1", "arm2", "arm3", PRESETS[preset]]:
        values = [float(r[f"train/loss/{block}"]) for r in rows if r.get(f"train/loss/{block}")]
        assert values and all(math.isfinite(v) for v in values), block


def test_heterogeneous_onehot_corrected_single_pass(compose_cfg):
    cfg = compose_cfg(["experiments=octopus_ff_standard", *SMALL, "model=octopus_hetero", "model.kernel_sizes=[3,5,3,3]",
                       "model.transformer.dim=8", "model.transformer.heads=2", "model.transformer.ffn=8",
                       "model.lstm.hidden=4", "algorithm.label_encoding=onehot", "algorithm.passes=1",
                       "algorithm.train_bottleneck=true", "algorithm.train_nerve_ring=true",
                       "algorithm.feedback_mode=paper_modulation", "algorithm.module_dropout=0.25",
                       "model.coordinator.competition=topk", "model.nerve_ring.rounds=2",
                       "coordinator.optimizer_layout=joint", "algorithm.eval_arm_metrics=false"])
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
