"""A job folder's record of what it trained (``.hydra/``), written by octo instead of Hydra, and the identity check
that keeps a finished job from being relabelled.

Hydra writes ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` into the job folder *before* the task
function runs, so every re-run of a sweep rewrote a finished job's record with whatever the new command composed
(``trainer=cpu`` over a 1-epoch ``trainer=debug`` run, say; ``trainer`` is not part of a folder's name). Copying
the files away and restoring them would leave a window in which a killed process loses the record, and a second
launch would still rewrite the files of a job another process is training. So ``conf/hydra/default.yaml`` sets
``hydra.output_subdir: null`` and octo writes the same three files itself, only when a job is about to train,
while it holds the job's lock. A skipped job is then compared with its record: keys that change what is trained
must match, or the job is refused with one line.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from octo.utils.errors import ConfigError
from octo.utils.files import write_text_atomic
from octo.utils.renames import current_key

CONFIG = Path(".hydra") / "config.yaml"

# Keys (and key prefixes) that do not change what is trained or measured: where the files are, how many threads,
# progress bars, loggers, how often last.ckpt is rewritten, the resume flags, labels. The device keys are left
# out of folder names on purpose (a sweep started on a GPU may be finished or checked elsewhere); the precision
# that does change the numbers (trainer.precision) is compared.
FREE_KEYS = ("paths", "num_threads", "logger", "skip_done", "retry_failed", "tags", "sweep_name",
             "checkpoint_every_n_epochs", "trainer.enable_progress_bar", "trainer.accelerator", "trainer.devices")


def save_job_config(cfg: DictConfig, out: Path) -> None:
    """Write ``.hydra/config.yaml`` (and, under Hydra, ``hydra.yaml`` and ``overrides.yaml``) as Hydra would."""
    folder = out / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "config.yaml", OmegaConf.to_yaml(cfg))
    if HydraConfig.initialized():
        write_text_atomic(folder / "hydra.yaml", OmegaConf.to_yaml(HydraConfig.instance().cfg))
        write_text_atomic(folder / "overrides.yaml", OmegaConf.to_yaml(HydraConfig.get().overrides.task))


def _flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def _free(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in FREE_KEYS)


def check_same_config(cfg: DictConfig, out: Path) -> None:
    """Raise :class:`ConfigError` (one line) when ``cfg`` would train something else than the finished job in
    ``out`` recorded in ``.hydra/config.yaml``; a folder without that record is not checked.

    Both sides go through YAML, unresolved, so that ``1e-3`` and ``0.001`` compare equal and interpolations compare
    as written (their targets are compared themselves). Keys on one side only are ignored: a key added to conf/
    later, with a default that keeps the old behaviour, must not orphan every finished job. A record made before a
    config group was renamed is read under the new name (:mod:`octo.utils.renames`).
    """
    try:
        recorded = yaml.safe_load((out / CONFIG).read_text())
    except FileNotFoundError:
        return
    old = {current_key(k): v for k, v in _flat(recorded or {}).items()}
    new = _flat(yaml.safe_load(OmegaConf.to_yaml(cfg)))
    changed = [f"{k}={old[k]} (now {new[k]})" for k in sorted(old.keys() & new.keys())
               if old[k] != new[k] and not _free(k)]
    if changed:
        shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
        raise ConfigError(f"{out} holds a finished run of another config: {shown}; it is neither retrained nor "
                          "relabelled (use another sweep_name, or delete the folder to train it again)")
