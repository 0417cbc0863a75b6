"""Data: reading the benchmark files (``sources``), device-resident batching (``loader``), the Lightning data
module (``datamodule``, imported from there so that reading data does not import Lightning) and the class names
(``classes``, plain constants).

``DATASETS``, ``DeviceLoader`` and ``load_split`` are imported on first use, so that ``octo.data.classes`` can be
read without importing torch (the analysis does not need it)."""

from __future__ import annotations

from importlib import import_module

_LAZY = {"DATASETS": "octo.data.sources", "DeviceLoader": "octo.data.loader", "load_split": "octo.data.sources"}

__all__ = ["DATASETS", "DeviceLoader", "load_split"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'octo.data' has no attribute {name!r}")
