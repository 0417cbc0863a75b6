"""Loaded at start-up (through PYTHONPATH) by ``make gpu-next DRY=1``: makes this interpreter look like the lent GPU
machine's image, where wandb is not installed, so a dry run fails on anything that would need it there.

hydra-core and omegaconf come from the carried wheels (``.site/`` first on PYTHONPATH) and octo from the work
tree (the repository root on PYTHONPATH), as on the GPU machine.
"""

import importlib.abc
import sys


class _NotInImage(importlib.abc.MetaPathFinder):
    """Refuses the packages the GPU image lacks."""

    missing = ("wandb",)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.missing:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the GPU image)", name=name)


sys.meta_path.insert(0, _NotInImage())
