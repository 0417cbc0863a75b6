"""Every config option composes and instantiates; wrong keys, unknown choices and bad values fail early."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from octo.train import build
from octo.utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["dataset", "algorithm", "schedule", "optimizer", "scheduler", "trainer",
                                   "logger", "launcher"])
def test_every_option_composes(compose_cfg, group):
    for option in options(group):
        cfg = compose_cfg([f"{group}={option}"])
        assert cfg is not None


@pytest.mark.parametrize("group", ["experiments", "sweeps"])
def test_every_experiment_and_sweep_composes(compose_cfg, group):
    names = sorted(p.stem for p in (REPO / group).glob("*.yaml"))
    assert names, f"no {group} found"
    for name in names:
        compose_cfg([f"{group}={name}"])


@pytest.mark.parametrize("algorithm", ["ff", "bp"])
@pytest.mark.parametrize("schedule", ["simultaneous", "greedy"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_platform_options_instantiate(compose_cfg, algorithm, schedule, optimizer):
    cfg = compose_cfg([f"algorithm={algorithm}", f"schedule={schedule}", f"optimizer={optimizer}",
                       "dataset=synthetic", "model.hidden=[8]"])
    datamodule, module = build(cfg)
    assert module.algorithm.num_classes == cfg.dataset.num_classes
    assert datamodule.train_passes == len(module.algorithm.phases)


def test_schedule_group_drives_the_module(compose_cfg):
    # the group that says which blocks step when is `schedule` (formerly `coordinator`): its choice, layout and
    # shares reach the module; OctopusNet's model.coordinator is a model key and unaffected
    from octo.training.schedules import Greedy, Simultaneous

    assert compose_cfg([]).schedule._target_.endswith(".Simultaneous")
    cfg = compose_cfg(["schedule=greedy", "schedule.optimizer_layout=joint", "schedule.shares=[1,3]",
                       "dataset=synthetic", "model.hidden=[8,8]"])
    _, module = build(cfg)
    assert isinstance(module.schedule, Greedy) and module.schedule.optimizer_layout == "joint"
    assert module.schedule.shares == [1, 3]
    _, module = build(compose_cfg(["dataset=synthetic", "model.hidden=[8]", "schedule.optimizer_layout=per_block"]))
    assert isinstance(module.schedule, Simultaneous) and module.schedule.optimizer_layout == "per_block"
    assert "coordinator" not in compose_cfg([])  # no group of that name any more
    assert "coordinator" in compose_cfg(["model=octopus"]).model


def test_a_job_recorded_under_the_old_group_name_is_still_compared(compose_cfg, tmp_path):
    # a finished job's .hydra/config.yaml from before the rename holds `coordinator:`; it is read as `schedule:`,
    # so a changed layout is refused and the same one is not
    import yaml

    from octo.utils.job_config import CONFIG, check_same_config

    cfg = compose_cfg(["dataset=synthetic"])
    recorded = yaml.safe_load(OmegaConf.to_yaml(cfg))
    recorded["coordinator"] = recorded.pop("schedule")
    (tmp_path / CONFIG).parent.mkdir(parents=True)
    (tmp_path / CONFIG).write_text(yaml.safe_dump(recorded))
    check_same_config(cfg, tmp_path)
    cfg.schedule.optimizer_layout = "per_block"
    with pytest.raises(ConfigError, match=r"schedule.optimizer_layout=joint \(now per_block\)"):
        check_same_config(cfg, tmp_path)


def test_unknown_choice_names_the_valid_ones(compose_cfg):
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg(["dataset=imagenet"])
    assert "mnist" in str(err.value.__cause__ or err.value) or "Available options" in str(err.value)


def test_misspelled_key_fails_at_compose_time(compose_cfg):
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ConfigAttributeError)):
        compose_cfg(["algorithm.treshold=1.0"])


@pytest.mark.parametrize("override, message", [
    ("algorithm.goodness=median", "mean, sum"),
    ("algorithm.neg_label=random", "uniform, shuffle, shuffle_once, hardest"),
    ("schedule.optimizer_layout=both", "joint, per_block"),
    ("model.hidden=[0]", "positive ints"),
    ("dataset.batch_size=0", "batch_size"),
])
def test_invalid_values_fail_before_training_with_the_valid_choices(compose_cfg, override, message):
    cfg = compose_cfg(["dataset=synthetic", override])
    with pytest.raises(ConfigError, match=message.split(",")[0]) as err:
        build(cfg)
    assert message in str(err.value)
