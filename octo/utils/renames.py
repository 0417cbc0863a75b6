"""Config groups renamed between releases, in one place.

Old runs keep the old names on disk (``.hydra/config.yaml``, ``.hydra/overrides.yaml``, committed ``runs.csv``
columns) and are never rewritten: octo reads them under today's names (:func:`current_key`), so old and new rows
share their columns and a finished job is still compared key by key. On the command line the old name is refused
with a one-line hint (:func:`octo.training.validate.check_cli_overrides`), for one release.

Settings that moved (:data:`MOVED_KEYS`: the optimiser values algorithms used to hold, now all under
``optimizer``) are refused on the command line with their new key, for one release.

Only a top-level name is renamed: ``model.coordinator.*`` (OctopusNet's coordinator block) and the per-block
settings that name that block (``optimizer.blocks.coordinator``) are other keys and keep their names.
"""

from __future__ import annotations

#: old group name -> (new name, how the new spelling looks, for the error message)
RENAMED_GROUPS: dict[str, tuple[str, str]] = {
    "coordinator": ("schedule", "schedule=greedy, schedule.optimizer_layout=..."),
}


def current_key(key: str) -> str:
    """``key`` under today's group names: ``coordinator.optimizer_layout`` -> ``schedule.optimizer_layout``;
    any other key is returned as it is."""
    head, dot, rest = key.partition(".")
    return RENAMED_GROUPS[head][0] + dot + rest if head in RENAMED_GROUPS else key


#: old setting -> where it lives now (optimiser values have one home, the ``optimizer`` node)
MOVED_KEYS: dict[str, str] = {
    "grad_clip": "optimizer.clip_norm",
    "algorithm.lr": "optimizer.lr (FF's preset brings 0.03)",
    "algorithm.readout_lr": "optimizer.blocks.readout.lr",
    "algorithm.block_optim": "optimizer.blocks (e.g. optimizer.blocks.coordinator.lr=0.001)",
    "algorithm.grad_clip_value": "optimizer.clip_value",
    "algorithm.lr_f": "optimizer.lr, or optimizer.blocks.forward.lr",
    "algorithm.lr_b": "optimizer.lr, or optimizer.blocks.feedback.lr",
    "algorithm.momentum_f": "optimizer.momentum, or optimizer.blocks.forward.momentum",
    "algorithm.momentum_b": "optimizer.momentum, or optimizer.blocks.feedback.momentum",
    "algorithm.weight_decay_f": "optimizer.weight_decay, or optimizer.blocks.forward.weight_decay",
    "algorithm.weight_decay_b": "optimizer.weight_decay, or optimizer.blocks.feedback.weight_decay",
    "algorithm.grad_clip_f": "optimizer.blocks.forward.clip_norm (with clip_group: forward)",
    "algorithm.grad_clip_b": "optimizer.blocks.feedback.clip_norm (with clip_group: feedback)",
    "algorithm.clip_scope": "optimizer.blocks.<block or group>.clip_group",
    "algorithm.grad_centralize": "optimizer.grad_centralize",
}


def moved_key(key: str) -> str | None:
    """Where ``key`` (or the setting it lies under) lives now, if it moved."""
    for old, new in MOVED_KEYS.items():
        if key == old or key.startswith(old + "."):
            return new
    return None
