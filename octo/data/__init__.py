"""Data: reading the benchmark files (``sources``), device-resident batching (``loader``) and the
Lightning data module (``datamodule``, imported from there so that reading data does not import Lightning)."""

from octo.data.loader import DeviceLoader
from octo.data.sources import DATASETS, load_split

__all__ = ["DATASETS", "DeviceLoader", "load_split"]
