"""Config groups renamed between releases, in one place.

Old runs keep the old names on disk (``.hydra/config.yaml``, ``.hydra/overrides.yaml``, committed ``runs.csv``
columns) and are never rewritten: octo reads them under today's names (:func:`current_key`), so old and new rows
share their columns and a finished job is still compared key by key. On the command line the old name is refused
with a one-line hint (:func:`octo.training.validate.check_cli_overrides`), for one release.

Only a top-level name is renamed: ``model.coordinator.*`` (OctopusNet's coordinator block) and the per-block
settings that name that block (``algorithm.block_optim.coordinator``) are other keys and keep their names.
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
