"""Every named experiment (``experiments/*.yaml``) runs end to end through ``octo.train.run``, at a tiny scale.

Each recipe is composed exactly as ``python -m octo.train experiments=<name>`` composes it; then only its scale
changes: generated data of the recipe's own input shape and class count (``dataset.name=synthetic``, 96 training
images; so CIFAR-100 and STL-10 recipes run although no copy of them exists offline), narrow layers of the same
depth (one rule per network class, :data:`SMALL`), the debug trainer's 2 training batches (the greedy recipes get
one epoch per block share, so that every block trains), and validation and checkpoints every epoch. Everything
else (algorithm switches, optimiser, lr scheduler, the `schedule` group, batch mode, phases) is the recipe's own.

Checked for every recipe: the run finishes with status ok and a finite test metric; every block trained (a finite
training loss for each trainable block); ``metrics.json`` records the recipe's algorithm switches; algorithms with
``save_images`` wrote their image; a final evaluation with a failure table starts from the tested state (intact =
test accuracy); algorithms that step several times per batch did so.

A new experiment file is tested the moment it exists; one on a network class without a rule in :data:`SMALL`
fails with a message saying so. Marked ``slow`` (about a second per recipe on one CPU core).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict
from torch.optim.optimizer import register_optimizer_step_post_hook

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (REPO / "experiments").glob("*.yaml"))

#: network class (``model._target_``) -> its narrow settings (same depth as the recipe's)
SMALL = {
    "octo.nn.mlp.MLP": lambda m: {"hidden": [8] * len(m.hidden)},
    "octo.nn.recurrent.RecurrentNet": lambda m: {"hidden": [8] * len(m.hidden)},
    "octo.nn.pff_circuits.PFFNet": lambda m: {"n_units": 2 * m.group_size, "g_units": 4},
    "octo.nn.ccl_nets.CCLMLP": lambda m: {"hidden": [8] * len(m.hidden)},
    "octo.nn.ccl_nets.CCLConvNet": lambda m: {"channels": [4] * len(m.channels)},
    "octo.nn.ccl_nets.CCLConvAE": lambda m: {"channels": [2] * len(m.channels)},
    "octo.nn.cnn.ConvNet": lambda m: {"channels": [4] * len(m.channels)},
    "octo.nn.octopus.OctopusNet": lambda m: {"channels": [4, 8, 8], "bottleneck": 8, "coordinator.hidden": 8,
                                             "cg.channels_per_group": 2, "transformer.dim": 8,
                                             "transformer.heads": 2, "transformer.ffn": 8, "lstm.hidden": 4},
}
N_TRAIN, N_VAL, N_TEST, BATCH = 96, 32, 32, 16
#: algorithm settings whose recorded value is the effective one, not the configured one
DERIVED = {"select_on"}  # the CCL autoencoder selects on recon_mse whatever select_on says


def tiny(cfg, name: str) -> None:
    """``cfg`` (the composed recipe) at smoke scale, in place."""
    target = cfg.model._target_
    if target not in SMALL:
        pytest.fail(f"experiments/{name}.yaml uses the network {target}, which has no small setting in SMALL in "
                    "tests/test_experiments.py: add one (narrow layers of the same depth)")
    with open_dict(cfg):
        for key, value in SMALL[target](cfg.model).items():
            OmegaConf.update(cfg, f"model.{key}", value, merge=False)
        d = cfg.dataset  # the recipe's input shape, classes and normalisation; generated images
        d.name, d.download, d.resize, d.train_subset = "synthetic", False, None, None
        d.synthetic = {"n_train": N_TRAIN, "n_test": N_TEST, "seed": 0, "noise": 0.25}
        d.val_size = N_VAL
        d.batch_size = -1 if d.batch_size == -1 else BATCH            # full-batch recipes stay full batch
        d.eval_batch_size = -1 if d.eval_batch_size == -1 else N_TEST
        t = cfg.trainer
        t.max_epochs, t.limit_train_batches, t.limit_val_batches, t.limit_test_batches = 1, 2, 1, 1
        t.check_val_every_n_epoch = 1
        cfg.checkpoint_every_n_epochs = 1
    if cfg.schedule._target_.endswith(".Greedy"):  # one epoch per share, so that every block trains
        shares = cfg.schedule.get("shares")
        if shares is None:
            from octo.train import build

            shares = [1] * len(build(cfg)[1].algorithm.blocks())
        cfg.trainer.max_epochs = int(sum(shares))


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs(compose_cfg, monkeypatch, name):
    cfg = compose_cfg([f"experiments={name}", "trainer=debug", "logger=none"])
    tiny(cfg, name)
    run_and_check(cfg, monkeypatch)


def run_and_check(cfg, monkeypatch) -> dict:
    """``octo.train.run(cfg)`` and every check of the module docstring; returns the metrics."""
    import octo.train

    built = {}

    def spy(c):
        datamodule, module = real_build(c)
        built["module"] = module
        return datamodule, module

    real_build = octo.train.build
    monkeypatch.setattr(octo.train, "build", spy)
    optimizer_steps = []
    hook = register_optimizer_step_post_hook(lambda *a: optimizer_steps.append(1))
    try:
        metrics = octo.train.run(cfg)
    finally:
        hook.remove()
    module = built["module"]
    algorithm = module.algorithm

    assert metrics["status"] == "ok", metrics["failure"]
    key = algorithm.monitor[0]
    assert _finite(metrics[f"test/{key}"]), metrics
    if key == "acc":
        assert 0.0 <= metrics["test/acc"] <= 1.0

    # every trainable block learned at this scale (its phase got batches, its greedy share epochs)
    trainable = {b for b, m in algorithm.blocks().items() if any(p.requires_grad for p in m.parameters())}
    trained = {k.removeprefix("train/loss/") for row in metrics["history"] for k, v in row.items()
               if k.startswith("train/loss/") and _finite(v)}
    assert trained == trainable, f"blocks that never trained: {sorted(trainable - trained)}"

    # metrics.json records the recipe's switches as set (values the algorithm derives from null are not compared)
    recorded = metrics["algorithm"]
    for k, v in OmegaConf.to_container(cfg.algorithm, resolve=True).items():
        if k in recorded and v is not None and k not in DERIVED:
            assert recorded[k] == v, f"algorithm.{k}: config {v!r}, metrics.json {recorded[k]!r}"

    if callable(getattr(algorithm, "save_images", None)):
        assert Path(metrics["images"]).stat().st_size > 0
    else:
        assert "images" not in metrics

    resilience = metrics.get("evaluation", {}).get("resilience")
    if resilience is not None:  # OctopusNet's arms / the BP CNN's blocks failed at test time
        # the final evaluation starts from the tested state and sees the tested images
        assert resilience["n_images"] == N_TEST
        assert resilience["intact"] == pytest.approx(metrics["test/acc"], abs=1e-6)
        singles = resilience["single_failure"]
        assert len(resilience["pair_failure"]) == len(singles) * (len(singles) - 1) // 2
        assert resilience.get("critical_arm", resilience.get("critical_block")) in singles
        for per_class in resilience.get("specialization", {}).values():
            assert len(per_class) == cfg.dataset.num_classes

    # algorithms that take an optimiser step after each of their inference steps took them (one optimiser:
    # one step per yielded loss dict)
    per_batch = recorded.get("updates_per_batch") or (cfg.algorithm.steps if recorded.get("updates") == "per_step"
                                                      else None)
    if per_batch and module.schedule.optimizer_layout == "joint":
        assert len(optimizer_steps) == int(module.batches_seen) * per_batch
    return metrics


@pytest.mark.slow
def test_an_experiment_composes_from_another_working_directory(tmp_path):
    """``experiments/`` and ``sweeps/`` are found from any working directory, without OCTO_ROOT."""
    env = {k: v for k, v in os.environ.items() if k != "OCTO_ROOT"}
    env.update({"WANDB_MODE": "disabled", "OCTO_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))})
    done = subprocess.run(
        [sys.executable, "-m", "octo.train", "experiments=bp_reference", "trainer=debug", "dataset=synthetic",
         "dataset.val_size=64", "dataset.batch_size=64", "model.hidden=[8]", "trainer.max_epochs=1", "logger=none",
         f"paths.runs_dir={tmp_path / 'runs'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((tmp_path / "runs" / "bp_reference").glob("*/metrics.json"))
