"""Checks of a whole run's configuration, made when the run is built (``octo.train.build``) and before any data is
read or any step is taken.

A value that Lightning or torch reads as something else (``trainer.max_epochs=-1`` is "no limit", a seed out of
range becomes 0), that torch refuses only inside ``fit`` (``optimizer.lr=-1``) or that an algorithm notices only at
its first step fails here with one line naming the key, the value and what is valid
(:class:`~octo.utils.errors.ConfigError`, exit 2). Component settings are still checked by the components
themselves (they know their own keys); this module covers what no octo component owns: the Lightning trainer, the
torch optimiser and scheduler (global and per-block values), the run's top-level keys, non-finite numbers
anywhere, and the command line's group names.

It also resolves two run-environment settings at build time: the progress bar (off when stdout is not a
terminal) and a Lightning log message repeated at every checkpoint.
"""

from __future__ import annotations

import difflib
import logging
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from octo.training.optim import BLOCK_ONLY_KEYS, GRADIENT_KEYS
from octo.utils.errors import ConfigError, check_choice, check_finite, check_int, check_range, is_number
from octo.utils.renames import RENAMED_GROUPS, moved_key

MAX_SEED = 2**32 - 1  # numpy's bound: Lightning's seed_everything replaces any other seed with 0 (a warning only)


# --- the whole config --------------------------------------------------------------------------------------------
def validate_config(cfg: DictConfig) -> None:
    """Everything that can be checked from the composed config alone (before anything is instantiated)."""
    for key, value in _config_leaves(cfg):
        check_finite(key, value)
    _check_run_keys(cfg)
    if cfg.get("trainer") is not None:
        check_trainer(cfg.trainer)
    if cfg.get("optimizer"):
        check_optimizer_values(_settings(cfg.optimizer), "optimizer")
        check_octo_optimizer_keys(OmegaConf.to_container(cfg.optimizer, resolve=True))
    if cfg.get("scheduler"):
        check_scheduler_values(_settings(cfg.scheduler), "scheduler")
    if cfg.get("divergence") is not None:
        check_divergence(cfg.divergence)


def _config_leaves(node, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(dotted key, resolved leaf value) of a config, skipping ``hydra`` and any value that cannot be resolved
    here (``${hydra:...}`` outside a Hydra run, ``???``): whoever uses it reports that."""
    if isinstance(node, DictConfig):
        items = ((str(k), f"{prefix}.{k}" if prefix else str(k)) for k in node if prefix or k != "hydra")
        for k, key in items:
            try:
                value = node[k]
            except OmegaConfBaseException:
                continue
            yield from _config_leaves(value, key)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            try:
                value = node[i]
            except OmegaConfBaseException:
                continue
            yield from _config_leaves(value, f"{prefix}[{i}]")
    else:
        yield prefix, node


def _settings(node: DictConfig) -> dict:
    """A config group's values without Hydra's ``_target_`` / ``_partial_`` / ... keys."""
    plain = OmegaConf.to_container(node, resolve=True)
    return {k: v for k, v in plain.items() if not (k.startswith("_") and k.endswith("_"))}


def _check_run_keys(cfg: DictConfig) -> None:
    if "seed" in cfg:
        check_int("seed", cfg.seed, 0, MAX_SEED)
    for key in ("checkpoint_every_n_epochs", "finite_check_every"):
        if key in cfg:
            check_int(key, cfg[key], 1)
    if "num_threads" in cfg:
        check_int("num_threads", cfg.num_threads, 1, allow_none=True)
    if "matmul_precision" in cfg:
        check_choice("matmul_precision", cfg.matmul_precision, ("highest", "high", "medium"))


# --- Lightning trainer ---------------------------------------------------------------------------------------------
def check_trainer(trainer: DictConfig) -> None:
    """The Trainer values octo uses, where Lightning would read a wrong value as something else."""
    check_int("trainer.max_epochs", trainer.get("max_epochs"), 1,
              hint="Lightning reads -1 as no limit and null as 1000 epochs")
    if "check_val_every_n_epoch" in trainer:
        check_int("trainer.check_val_every_n_epoch", trainer.check_val_every_n_epoch, 1)
    if "log_every_n_steps" in trainer:
        check_int("trainer.log_every_n_steps", trainer.log_every_n_steps, 1)
    for split in ("train", "val", "test"):
        key = f"limit_{split}_batches"
        if key in trainer:
            check_batch_limit(f"trainer.{key}", trainer[key], allow_zero=split == "val")
    if trainer.get("enable_progress_bar") is not None and not isinstance(trainer.enable_progress_bar, bool):
        raise ConfigError(f"trainer.enable_progress_bar={trainer.enable_progress_bar!r} must be true, false or "
                          "null (on when stdout is a terminal)")


def check_batch_limit(name: str, value, allow_zero: bool = False) -> None:
    """Lightning's ``limit_*_batches``: an int is a number of batches, a float a fraction of them.

    0 batches is allowed only for validation (it skips validation: the run then tests its last weights).
    """
    low = 0 if allow_zero else 1
    if isinstance(value, int) and not isinstance(value, bool) and value >= low:
        return
    if isinstance(value, float) and (0.0 <= value if allow_zero else 0.0 < value) and value <= 1.0:
        return
    raise ConfigError(f"{name}={value!r} must be an int >= {low} (a number of batches) or a fraction in "
                      f"{'[' if allow_zero else '('}0, 1] of them")


def check_divergence(div: DictConfig) -> None:
    """The thresholds of ``LocalLearningModule``'s divergence rules (``conf/train.yaml``, ``divergence``)."""
    if not isinstance(div.get("enabled", True), bool):
        raise ConfigError(f"divergence.enabled={div.enabled!r} must be true or false")
    check_range("divergence.loss_ratio", div.get("loss_ratio"), 1, low_open=True)
    check_range("divergence.loss_floor", div.get("loss_floor"), 0)
    check_range("divergence.end_loss_ratio", div.get("end_loss_ratio"), 1, low_open=True)
    check_range("divergence.chance_factor", div.get("chance_factor"), 0)


# --- torch optimiser and scheduler ---------------------------------------------------------------------------------
def _unit(low_open: bool = False, high_open: bool = True) -> Callable[[str, object], None]:
    return lambda name, v: check_range(name, v, 0, 1, low_open=low_open, high_open=high_open)


def _betas(name: str, value) -> None:
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(is_number(b) and math.isfinite(b) and 0 <= b < 1 for b in value))
    if not ok:
        raise ConfigError(f"{name}={_show(value)} must be two numbers in [0, 1)")


def _milestones(name: str, value) -> None:
    ok = isinstance(value, (list, tuple)) and all(isinstance(m, int) and not isinstance(m, bool) and m >= 1
                                                  for m in value)
    if not ok:
        raise ConfigError(f"{name}={_show(value)} must be a list of epochs, ints >= 1")


def _show(value) -> str:
    return str(list(value)) if isinstance(value, (list, tuple, ListConfig)) else repr(value)


#: optimiser hyperparameters (in a config or in a parameter group) -> check; others pass unchecked
OPTIMIZER_RULES: dict[str, Callable[[str, object], None]] = {
    "lr": lambda name, v: check_range(name, v, 0, low_open=True),
    "momentum": _unit(),                      # SGD / RMSprop: >= 1 never decays the velocity
    "dampening": _unit(high_open=False),
    "weight_decay": lambda name, v: check_range(name, v, 0),
    "eps": lambda name, v: check_range(name, v, 0, low_open=True),
    "alpha": _unit(),                         # RMSprop's smoothing: 1 never updates the squared average
    "betas": _betas,
    "lr_decay": lambda name, v: check_range(name, v, 0),
    "initial_accumulator_value": lambda name, v: check_range(name, v, 0),
}

#: scheduler arguments -> check (stepped once per epoch by the module)
SCHEDULER_RULES: dict[str, Callable[[str, object], None]] = {
    "milestones": _milestones,
    "gamma": lambda name, v: check_range(name, v, 0, 1, low_open=True),   # > 1 would grow the lr every step
    "T_max": lambda name, v: check_int(name, v, 1),
    "T_0": lambda name, v: check_int(name, v, 1),
    "T_mult": lambda name, v: check_int(name, v, 1),
    "step_size": lambda name, v: check_int(name, v, 1),
    "eta_min": lambda name, v: check_range(name, v, 0),
}


def check_optimizer_values(values: dict, prefix: str) -> None:
    for key, value in values.items():
        if key in OPTIMIZER_RULES:
            OPTIMIZER_RULES[key](f"{prefix}.{key}", value)


def check_scheduler_values(values: dict, prefix: str) -> None:
    for key, value in values.items():
        if key in SCHEDULER_RULES:
            SCHEDULER_RULES[key](f"{prefix}.{key}", value)


def check_octo_optimizer_keys(node: dict) -> None:
    """octo's keys of the ``optimizer`` node (:mod:`octo.training.optim`), global and per block, and every
    per-block value under its own name (``optimizer.blocks.coordinator.lr``)."""
    _check_gradient_keys(node, "optimizer")
    if "clip_group" in node:
        raise ConfigError("optimizer.clip_group is a per-block setting: optimizer.blocks.<block or group>.clip_group")
    blocks = node.get("blocks")
    if blocks is None:
        return
    if not isinstance(blocks, dict):
        raise ConfigError(f"optimizer.blocks={blocks!r} must be a mapping {{block or block group: {{setting: value}}}}")
    for name, entry in blocks.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"optimizer.blocks.{name}={entry!r} must be a mapping of settings, e.g. {{lr: 0.001}}")
        _check_gradient_keys(entry, f"optimizer.blocks.{name}")
        if entry.get("clip_group") is not None and not isinstance(entry["clip_group"], str):
            raise ConfigError(f"optimizer.blocks.{name}.clip_group={entry['clip_group']!r} must be a name (blocks "
                              "with the same name are clipped together)")
        check_optimizer_values(entry, f"optimizer.blocks.{name}")


def _check_gradient_keys(node: dict, prefix: str) -> None:
    for key in ("clip_norm", "clip_value"):
        if key in node:
            check_range(f"{prefix}.{key}", node[key], 0, low_open=True, allow_none=True)
    if node.get("grad_centralize") is not None and not isinstance(node["grad_centralize"], bool):
        raise ConfigError(f"{prefix}.grad_centralize={node['grad_centralize']!r} must be true or false")


def validate_optimization(module, cfg: DictConfig) -> None:
    """Build the run's optimisers and schedulers once, on one dummy parameter per block, with the per-block
    settings exactly as ``configure_optimizers`` will (unknown block names and clip groups that need the joint
    layout fail here); refuse per-block keys the optimiser does not have, check the values the optimiser class
    adds by default, and turn torch's own refusals into one line. Nothing of the real model is touched."""
    target = _target(cfg.get("optimizer"))
    try:
        optimizers, _ = module.build_optimizers(dummy=True)  # the schedulers: built (and checked by torch) only
    except (ValueError, TypeError, KeyError, RuntimeError) as err:
        what = "scheduler " + _target(cfg.get("scheduler")) if _from_scheduler(err) else "optimizer " + target
        raise ConfigError(f"cannot build the {what}: {_one_line(err)}") from None
    node = OmegaConf.to_container(cfg.optimizer, resolve=True) if cfg.get("optimizer") else {}
    for name, entry in (node.get("blocks") or {}).items():
        for key in entry:
            if optimizers and key not in optimizers[0].defaults and key not in (*GRADIENT_KEYS, *BLOCK_ONLY_KEYS):
                valid = sorted(k for k in optimizers[0].defaults if not k.startswith("_") and k not in
                               ("differentiable", "foreach", "maximize", "capturable", "fused"))
                raise ConfigError(f"optimizer.blocks.{name}.{key}: {target} has no setting '{key}' (its settings: "
                                  f"{', '.join(valid)}; octo's: {', '.join((*GRADIENT_KEYS, *BLOCK_ONLY_KEYS))})")
    configured = set(_settings(cfg.optimizer)) if cfg.get("optimizer") else set()
    for opt in optimizers:
        for group in opt.param_groups:
            for key, rule in OPTIMIZER_RULES.items():
                if key not in group or key in configured:
                    continue  # configured values were checked under their own names (optimizer.<key>, blocks)
                value = group[key]
                value = float(value) if isinstance(value, torch.Tensor) and value.numel() == 1 else value
                try:
                    rule(key, value)
                except ConfigError as err:
                    raise ConfigError(f"{err} ({target}'s default; set optimizer.{key})") from None


def _from_scheduler(err: BaseException) -> bool:
    tb = err.__traceback__
    while tb is not None:
        if "lr_scheduler" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _target(node) -> str:
    return str(node.get("_target_", "?")) if node else "?"


# --- run environment -------------------------------------------------------------------------------------------------
def resolve_progress_bar(cfg: DictConfig) -> None:
    """``trainer.enable_progress_bar: null`` (the default) = on only when stdout is a terminal: a redirected log
    would fill with carriage-return updates (hundreds of KB per run). An explicit true or false is kept."""
    trainer = cfg.get("trainer")
    if trainer is not None and "enable_progress_bar" in trainer and trainer.enable_progress_bar is None:
        trainer.enable_progress_bar = _is_terminal(sys.stdout)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.text


#: Lightning logs this (INFO) each time a checkpoint is saved without ``weights_only``: every epoch, from
#: octo.training.checkpoints.LastCheckpoint (trainer.save_checkpoint). Dropping it is safe: the default it
#: announces, weights_only=False, is what last.ckpt must be (the full training state, for resuming).
WEIGHTS_ONLY_MESSAGE = "`weights_only` was not set, defaulting to `False`."
_CHECKPOINT_LOGGER = "lightning.pytorch.trainer.connectors.checkpoint_connector"


def silence_repeated_messages() -> None:
    """Drop exactly :data:`WEIGHTS_ONLY_MESSAGE` (idempotent); every other Lightning message stays."""
    log = logging.getLogger(_CHECKPOINT_LOGGER)
    if not any(isinstance(f, _DropMessage) and f.text == WEIGHTS_ONLY_MESSAGE for f in log.filters):
        log.addFilter(_DropMessage(WEIGHTS_ONLY_MESSAGE))


# --- command line ------------------------------------------------------------------------------------------------------
def check_cli_overrides(argv: list[str], conf_dir: Path, root: Path) -> None:
    """Refuse an override whose first name is neither a config group nor a top-level key (``algoritm=ff``),
    listing the valid groups, before Hydra composes (Hydra reports it in several lines and exits 1 from inside
    its own main, where octo cannot catch it). An override Hydra cannot parse is refused in one line too.

    Only the default primary config is checked (``--config-name`` / ``--config-dir`` switch this off); adding
    keys with ``+`` / ``++`` stays allowed. ``root`` is the search-path root holding ``experiments/`` and
    ``sweeps/`` (``OCTO_ROOT``). A renamed group (:data:`octo.utils.renames.RENAMED_GROUPS`) is refused with its
    new name, whatever the override does with it (``coordinator=greedy``, ``+coordinator.shares=...``,
    ``~coordinator``).
    """
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import OverrideParseException

    if any(a in ("--version", "-h", "--help", "--hydra-help") or a.startswith(("--config-name", "-cn",
                                                                               "--config-dir", "-cd",
                                                                               "--config-path", "-cp",
                                                                               "--experimental-rerun",
                                                                               "--shell-completion", "-sc"))
           for a in argv):
        return
    try:
        args, _ = get_args_parser().parse_known_args(argv)
    except SystemExit:  # let Hydra report its own usage errors
        return
    parser, overrides = OverridesParser.create(), []
    for line in args.overrides:
        try:
            overrides += parser.parse_overrides([line])
        except OverrideParseException as err:
            why = _one_line(err).split(" See https://")[0]
            raise ConfigError(f"cannot parse the override {line!r}: {why} (grammar: "
                              "https://hydra.cc/docs/advanced/override_grammar/basic)") from None
    groups = sorted(_groups(conf_dir, root))
    keys = _top_level_keys(conf_dir)
    for override in overrides:
        head = override.key_or_group.replace("/", ".").split(".")[0].split("@")[0]
        if head in RENAMED_GROUPS and head not in groups:
            new, example = RENAMED_GROUPS[head]
            raise ConfigError(f"the config group '{head}' is now '{new}' ({example})")
        moved = moved_key(override.key_or_group.lstrip("+~"))
        if moved:
            raise ConfigError(f"{override.key_or_group.lstrip('+~')} has moved: set {moved}")
        if override.type not in (OverrideType.CHANGE, OverrideType.DEL):
            continue
        if head in groups or head in keys or head == "hydra" or head in _global_keys(conf_dir, root):
            continue
        guess = difflib.get_close_matches(head, [*groups, *keys], n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        raise ConfigError(f"unknown config group '{head}'{hint}; valid groups: {', '.join(groups)}; top-level "
                          f"keys: {', '.join(sorted(keys))} (add a new key with +{head}=...)")


def _groups(conf_dir: Path, root: Path) -> set[str]:
    groups = {p.name for p in conf_dir.iterdir() if p.is_dir() and p.name not in ("hydra", "__pycache__")}
    return groups | {"experiments", "sweeps"}


def _top_level_keys(conf_dir: Path) -> set[str]:
    return {k for k in OmegaConf.load(conf_dir / "train.yaml") if k != "defaults"}


def _global_keys(conf_dir: Path, root: Path) -> set[str]:
    """Top-level keys that ``@package _global_`` files (experiments, sweeps, ...) may add. Read only when a name
    is not found otherwise (a typo), so a normal start pays nothing for it."""
    keys: set[str] = set()
    for folder in (root / "experiments", root / "sweeps", *[p for p in conf_dir.iterdir() if p.is_dir()]):
        for path in folder.glob("*.yaml") if folder.is_dir() else ():
            try:
                text = path.read_text()
                if "@package _global_" in text.split("\n", 3)[0] or "@package _global_" in text[:200]:
                    node = OmegaConf.create(text)
                    keys |= {str(k) for k in node if k != "defaults"} if isinstance(node, DictConfig) else set()
            except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException):
                continue  # a broken file is Hydra's to report
    return keys
