"""Values that mean something else are refused when a run is built; runs that diverge without NaN are recorded as
diverged; provenance, progress bar, Lightning's per-epoch message and partial evaluations."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from octo.train import build, run
from octo.utils.errors import ConfigError, DivergenceError

REPO = Path(__file__).resolve().parents[1]
FAST = ["dataset=synthetic", "model.hidden=[32,32]", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
        "logger=none"]


def _octo(*args, timeout=300):
    env = {**os.environ, "OCTO_ROOT": str(REPO), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "octo.train", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _refused(compose_cfg, overrides, match):
    cfg = compose_cfg(["dataset=synthetic", "logger=none", *overrides])
    with pytest.raises(ConfigError, match=match) as err:
        build(cfg)
    assert "\n" not in str(err.value)  # one line
    return str(err.value)


# --- 1a: trainer and run values ---------------------------------------------------------------------------------
@pytest.mark.parametrize("override, match", [
    ("trainer.max_epochs=-1", r"trainer\.max_epochs=-1 must be an int >= 1"),
    ("trainer.max_epochs=0", r"trainer\.max_epochs=0 must be an int >= 1"),
    ("trainer.max_epochs=2.5", r"trainer\.max_epochs=2\.5 must be an int >= 1"),
    ("trainer.limit_train_batches=0", r"trainer\.limit_train_batches=0 must be"),
    ("trainer.limit_test_batches=-1", r"trainer\.limit_test_batches=-1 must be"),
    ("trainer.limit_val_batches=1.5", r"trainer\.limit_val_batches=1\.5 must be"),
    ("trainer.check_val_every_n_epoch=0", r"trainer\.check_val_every_n_epoch=0 must be an int >= 1"),
    ("seed=-1", r"seed=-1 must be an int in \[0, 4294967295\]"),
    ("finite_check_every=0", r"finite_check_every=0 must be an int >= 1"),
    ("checkpoint_every_n_epochs=0", r"checkpoint_every_n_epochs=0 must be an int >= 1"),
])
def test_trainer_and_run_values_are_refused_at_build(compose_cfg, override, match):
    _refused(compose_cfg, [override], match)


# --- 1b: optimiser and scheduler values, global and per block ---------------------------------------------------
@pytest.mark.parametrize("overrides, match", [
    (["optimizer.lr=-1"], r"optimizer\.lr=-1(\.0)? must be a number > 0"),
    (["optimizer.lr=0"], r"optimizer\.lr=0(\.0)? must be a number > 0"),
    (["optimizer.betas=[0.9,1.5]"], r"optimizer\.betas=\[0\.9, 1\.5\] must be"),
    (["optimizer.weight_decay=-0.1"], r"optimizer\.weight_decay=-0\.1 must be a number >= 0"),
    (["optimizer=sgd", "optimizer.momentum=-0.5"], r"optimizer\.momentum=-0\.5 must be a number in \[0, 1\)"),
    (["optimizer=rmsprop", "optimizer.eps=0"], r"optimizer\.eps=0(\.0)? must be a number > 0"),
    (["optimizer=rmsprop", "optimizer.alpha=1.5"], r"optimizer\.alpha=1\.5 must be"),
    (["scheduler=multistep", "scheduler.gamma=0"], r"scheduler\.gamma=0(\.0)? must be a number in \(0, 1\]"),
    (["scheduler=multistep", "scheduler.milestones=[0,3]"], r"scheduler\.milestones=\[0, 3\] must be"),
    (["scheduler=cosine", "scheduler.T_max=0"], r"scheduler\.T_max=0 must be an int >= 1"),
    (["scheduler=cosine", "+scheduler.eta_min=-1"], r"scheduler\.eta_min=-1(\.0)? must be a number >= 0"),
])
def test_optimiser_and_scheduler_values_are_refused_at_build(compose_cfg, overrides, match):
    _refused(compose_cfg, overrides, match)


def test_per_block_optimiser_values_are_refused_at_build(compose_cfg):
    # every per-block value is checked under its own key, before anything is built
    ccl = ["experiments=ccl_mlp_fmnist", "model.hidden=[8,8]", "+optimizer.blocks.forward.momentum=-1"]
    _refused(compose_cfg, ccl, r"optimizer\.blocks\.forward\.momentum=-1(\.0)? must be a number in \[0, 1\)")
    octopus = ["experiments=octopus_ff_standard", "dataset=synthetic_rgb", "model.channels=[4,4,4]",
               "model.bottleneck=8", "model.coordinator.hidden=8", "+optimizer.blocks.coordinator.lr=-0.001"]
    _refused(compose_cfg, octopus, r"optimizer\.blocks\.coordinator\.lr=-0\.001 must be a number > 0")
    _refused(compose_cfg, ["+optimizer.blocks.layer0.clip_norm=0"],
             r"optimizer\.blocks\.layer0\.clip_norm=0 must be null or a number > 0")


def test_per_block_names_and_keys_are_checked_at_build(compose_cfg):
    # a block or group the algorithm does not have, and a key the optimiser does not have (torch would keep it
    # in the parameter group and ignore it)
    _refused(compose_cfg, ["+optimizer.blocks.layer9.lr=0.1"],
             r"optimizer\.blocks names 'layer9', which is neither a block nor a block group .* blocks: layer0")
    _refused(compose_cfg, ["+optimizer.blocks.layer0.lrr=0.1"],
             r"optimizer\.blocks\.layer0\.lrr: torch\.optim\.Adam has no setting 'lrr' \(its settings: .*lr")
    # a clip group spanning blocks needs one optimiser for them
    _refused(compose_cfg, ["schedule.optimizer_layout=per_block", "+optimizer.blocks.layer0={clip_norm:1,clip_group:a}",
                           "+optimizer.blocks.layer1={clip_norm:1,clip_group:a}"],
             r"clip_group 'a' clips blocks layer0, layer1 together.*optimizer_layout=joint")


def test_moved_settings_name_their_new_key(tmp_path):
    from octo.training.validate import check_cli_overrides

    for old, new in [("algorithm.lr=0.1", "optimizer.lr"), ("grad_clip=1", "optimizer.clip_norm"),
                     ("+algorithm.block_optim.coordinator.lr=1", "optimizer.blocks"),
                     ("algorithm.grad_clip_f=0", "optimizer.blocks.forward.clip_norm")]:
        with pytest.raises(ConfigError, match=rf"has moved: set {re.escape(new)}"):
            check_cli_overrides([old], REPO / "conf", REPO)


def test_a_torch_optimiser_error_becomes_one_config_line(compose_cfg):
    # a value only torch knows is wrong (an unknown keyword) fails at build, not inside fit
    _refused(compose_cfg, ["+optimizer.bogus=1"], r"cannot build the optimizer torch\.optim\.Adam: .*bogus")


# --- 1c: OctopusNet top-k -----------------------------------------------------------------------------------------
def test_topk_larger_than_the_number_of_arms_is_refused():
    from octo.nn.octopus.coordinator import Coordinator

    with pytest.raises(ConfigError, match=r"model\.coordinator\.topk=5 .*model\.num_arms=4"):
        Coordinator(num_arms=4, dim=8, num_classes=4, hidden=8, competition="topk", topk=5)
    Coordinator(num_arms=4, dim=8, num_classes=4, hidden=8, competition="topk", topk=4)   # every arm: fine
    Coordinator(num_arms=1, dim=8, num_classes=4, hidden=8, competition="soft", topk=2)   # k unused by soft


# --- 1d: non-finite values anywhere ---------------------------------------------------------------------------------
@pytest.mark.parametrize("override, key", [("algorithm.threshold=nan", "algorithm.threshold"),
                                           ("dataset.synthetic.noise=inf", "dataset.synthetic.noise"),
                                           ("optimizer.lr=-inf", "optimizer.lr"),
                                           ("+model.extra=[1.0,nan]", r"model.extra\[1\]")])
def test_non_finite_config_values_are_refused(compose_cfg, override, key):
    _refused(compose_cfg, [override], rf"{key}=(-?inf|nan) is not a finite number")


# --- 1e and the exit code through the command line ------------------------------------------------------------------
def test_cli_unknown_group_and_bad_values_are_one_line_with_exit_2(tmp_path):
    typo = _octo("algoritm=ff", f"paths.runs_dir={tmp_path}/runs")
    assert typo.returncode == 2, typo.stderr
    line = typo.stderr.strip().splitlines()
    assert len(line) == 1 and line[0].startswith("octo: error: unknown config group 'algoritm'")
    assert "did you mean 'algorithm'" in line[0]
    for group in ("algorithm", "dataset", "optimizer", "trainer", "experiments", "sweeps"):
        assert group in line[0]
    sweep_typo = _octo("-m", "datset=mnist,synthetic", f"paths.runs_dir={tmp_path}/runs")
    assert sweep_typo.returncode == 2 and "unknown config group 'datset'" in sweep_typo.stderr
    unparsable = _octo("algorithm=[ff", f"paths.runs_dir={tmp_path}/runs")
    assert unparsable.returncode == 2
    assert unparsable.stderr.strip().splitlines()[-1].startswith("octo: error: cannot parse the override")
    forever = _octo("dataset=synthetic", "trainer.max_epochs=-1", f"paths.runs_dir={tmp_path}/runs")
    assert forever.returncode == 2
    assert forever.stderr.strip().splitlines()[-1].startswith("octo: error: trainer.max_epochs=-1 must be")
    assert not list((tmp_path / "runs").rglob("*.ckpt"))  # refused before any training


OLD_GROUP = ("octo: error: the config group 'coordinator' is now 'schedule' (schedule=greedy, "
             "schedule.optimizer_layout=...)")


def test_cli_old_schedule_group_name_is_one_line_with_exit_2(tmp_path):
    for args in (["coordinator=greedy"], ["dataset=synthetic", "coordinator.optimizer_layout=joint"]):
        res = _octo(*args, f"paths.runs_dir={tmp_path}/runs")
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip().splitlines() == [OLD_GROUP]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("override", ["coordinator=simultaneous", "coordinator.shares=[1,2]",
                                      "+coordinator.shares=[1,2]", "~coordinator", "coordinator=greedy,simultaneous"])
def test_old_schedule_group_name_is_refused_in_every_form(override):
    from octo.training.validate import check_cli_overrides

    with pytest.raises(ConfigError) as err:
        check_cli_overrides(["-m", override], REPO / "conf", REPO)
    assert f"octo: error: {err.value}" == OLD_GROUP


def test_model_coordinator_is_not_the_schedule_group():
    # OctopusNet's coordinator block (model.coordinator) and the per-block settings that name it keep their names
    from octo.training.validate import check_cli_overrides

    check_cli_overrides(["model=octopus", "model.coordinator.hidden=8", "+optimizer.blocks.coordinator.lr=1",
                         "schedule=greedy", "schedule.optimizer_layout=per_block"], REPO / "conf", REPO)


# --- 2: divergence without NaN ---------------------------------------------------------------------------------------
def test_exploding_run_is_recorded_as_diverged(compose_cfg, tmp_path):
    cfg = compose_cfg([*FAST, "optimizer.lr=1e6"])
    with pytest.raises(DivergenceError, match="exploded") as err:
        run(cfg)
    assert err.value.status == "diverged" and err.value.exit_code == 4
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and "exploded" in metrics["failure"]
    assert metrics["epochs"] < 5  # stopped at the first epoch end that saw it


def test_run_that_ends_at_chance_after_its_loss_grew_is_diverged(compose_cfg, tmp_path):
    # the in-training rule switched off: the end-of-run rule (final accuracy at chance, loss grew) catches it
    cfg = compose_cfg([*FAST, "optimizer.lr=1e6", "divergence.loss_ratio=1e30"])
    with pytest.raises(DivergenceError, match="chance"):
        run(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and "chance" in metrics["failure"]


def test_non_finite_loss_is_still_failed_and_divergence_can_be_switched_off(compose_cfg, tmp_path):
    cfg = compose_cfg([*FAST, "trainer.max_epochs=2", "optimizer.lr=1e30", "finite_check_every=1"])
    with pytest.raises(DivergenceError, match="non-finite") as err:
        run(cfg)
    assert err.value.status == "failed"
    off = run(compose_cfg([*FAST, "trainer.max_epochs=2", "optimizer.lr=1e6", "divergence.enabled=false"],
                          out=tmp_path / "off"))
    assert off["status"] == "ok"


def test_diverged_job_does_not_stop_a_sweep_and_a_single_run_exits_4(tmp_path):
    single = _octo(*FAST, "trainer.max_epochs=2", "optimizer.lr=1e6", f"paths.runs_dir={tmp_path}/single")
    assert single.returncode == 4
    assert single.stderr.strip().splitlines()[-1].startswith("octo: error: the loss of block")
    proc = _octo("-m", *FAST, "trainer.max_epochs=2", "optimizer.lr=1e6,0.03", "sweep_name=div",
                 f"paths.runs_dir={tmp_path}/runs")
    # the sweep ran both jobs (it ends non-zero, naming the job that did not finish ok)
    status = sorted(json.loads(p.read_text())["status"] for p in (tmp_path / "runs" / "div").glob("*/metrics.json"))
    assert status == ["diverged", "ok"], proc.stderr[-2000:]


# --- 3 and 4a/4b: provenance, progress bar, Lightning's per-epoch message --------------------------------------------
def test_versions_name_the_libraries_and_cuda_only_on_a_gpu():
    from octo.utils.provenance import versions

    cpu = versions(torch.device("cpu"))
    for lib in ("python", "torch", "lightning", "hydra-core", "omegaconf"):
        assert isinstance(cpu[lib], str) and cpu[lib], lib
    assert cpu["cuda"] is None and "cuda_build" in cpu


def test_progress_bar_is_off_when_stdout_is_not_a_terminal(compose_cfg):
    cfg = compose_cfg(["dataset=synthetic", "logger=none"])  # the default: null = on for a terminal only
    build(cfg)
    assert cfg.trainer.enable_progress_bar is False  # pytest captures stdout: not a terminal
    explicit = compose_cfg(["dataset=synthetic", "logger=none", "trainer.enable_progress_bar=true"])
    build(explicit)
    assert explicit.trainer.enable_progress_bar is True  # asked for: kept


def test_quiet_log_of_a_run_through_a_pipe(tmp_path):
    proc = _octo("dataset=synthetic", "model.hidden=[16]", "trainer.accelerator=cpu", "trainer.max_epochs=3",
                 "logger=none", f"paths.runs_dir={tmp_path}/runs")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Epoch 0" not in proc.stdout + proc.stderr and "it/s" not in proc.stdout + proc.stderr
    assert "weights_only" not in proc.stderr  # Lightning's once-per-checkpoint message
    metrics = json.loads(next((tmp_path / "runs").rglob("metrics.json")).read_text())
    assert metrics["versions"]["cuda"] is None and metrics["versions"]["lightning"]


# --- 4c: a limited evaluation sees a seeded random subset ------------------------------------------------------------
def _sorted_datamodule(limit_val, limit_test):
    from octo.data.datamodule import DeviceDataModule

    dm = DeviceDataModule("synthetic", ".", ".", mean=[0.5], std=[0.25], num_classes=4, input_shape=[1, 2, 2],
                          eval_batch_size=8, val_size=8, synthetic={"n_train": 64, "n_test": 64, "seed": 0})
    labels = torch.arange(4).repeat_interleave(16)          # sorted by class, as the CIFAR test set is
    images = torch.arange(64, dtype=torch.uint8).view(64, 1, 1, 1).expand(64, 1, 2, 2).contiguous()
    dm.splits = {"train": (images, labels), "val": (images.clone(), labels.clone()), "test": (images, labels)}
    dm.trainer = SimpleNamespace(limit_val_batches=limit_val, limit_test_batches=limit_test, limit_train_batches=1.0,
                                 fast_dev_run=False, strategy=SimpleNamespace(root_device=torch.device("cpu")))
    return dm


def test_limited_evaluation_is_a_seeded_random_subset_and_full_evaluation_keeps_its_order():
    limited = _sorted_datamodule(1, 0.25)
    first_test = next(iter(limited.test_dataloader()))[1]
    first_val = next(iter(limited.val_dataloader()))[1]
    assert len(set(first_test.tolist())) > 1 and len(set(first_val.tolist())) > 1  # not all one class
    again = next(iter(_sorted_datamodule(1, 0.25).test_dataloader()))[1]
    assert torch.equal(first_test, again)  # the same subset every time
    # the whole set is still served, each image once (Lightning's limit then takes the first batches)
    ys = torch.cat([x[:, 0, 0, 0] for x, _ in limited.test_dataloader()])
    assert sorted(ys.tolist()) == sorted(set(ys.tolist())) and len(ys) == 64
    full = _sorted_datamodule(1.0, 1.0)
    assert torch.equal(torch.cat([y for _, y in full.test_dataloader()]), torch.arange(4).repeat_interleave(16))
    assert torch.equal(torch.cat([y for _, y in full.val_dataloader()]), torch.arange(4).repeat_interleave(16))
