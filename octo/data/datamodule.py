"""The Lightning data module: loads a data set once, carves a seeded validation split, serves DeviceLoaders.

The test split is only ever served by :meth:`DeviceDataModule.test_dataloader`; model selection uses the
validation split carved out of the training images.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor

from octo.data.loader import DeviceLoader
from octo.data.sources import DATASETS, load_split, resolve_source
from octo.utils.errors import ConfigError, check_choice, check_int

log = logging.getLogger(__name__)


def _check_int(name: str, value: Any, minimum: int, allow_full: bool = False) -> None:
    """ConfigError unless ``value`` is an int >= ``minimum`` (or -1 when ``allow_full``)."""
    if not (allow_full and value == -1 and not isinstance(value, bool)):
        check_int(f"dataset.{name}", value, minimum, hint="or -1 (full batch)" if allow_full else "")


def resize_images(x: Tensor, size: int, chunk: int = 1000) -> Tensor:
    """uint8 ``[N, C, H, W]`` -> uint8 ``[N, C, size, size]``, bilinear with antialiasing, once at load time.

    This is torchvision's ``Resize(size)`` on square images (what the STL-10 classification recipes use), done
    before the data goes to the device so that no step pays for it. Chunked to bound the float copy's memory.
    """
    out = [torch.nn.functional.interpolate(part.float(), size=(size, size), mode="bilinear", antialias=True,
                                           align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
           for part in x.split(chunk)]
    return torch.cat(out) if out else x.new_zeros((0, x.shape[1], size, size))


class DeviceDataModule(L.LightningDataModule):
    """One image classification data set, held on the training device as uint8 tensors.

    All arguments come from ``conf/dataset/<name>.yaml``. ``train_passes`` (default 1) is set by the training
    code before ``fit`` for algorithms that make several passes over the data per epoch.
    """

    def __init__(self, name: str, root: str | os.PathLike, cache_dir: str | os.PathLike, *,
                 mean: Sequence[float], std: Sequence[float], num_classes: int, input_shape: Sequence[int],
                 batch_size: int = 128, eval_batch_size: int = 1000, val_size: int = 5000, val_seed: int = 0,
                 train_subset: int | None = None, augment: Mapping | None = None, download: bool = False,
                 synthetic: Mapping | None = None, shuffle_seed: int = 0, resize: int | None = None) -> None:
        super().__init__()
        check_choice("dataset.name", name, DATASETS)
        augment = dict(augment or {})
        _check_int("batch_size", batch_size, 1, allow_full=True)
        _check_int("eval_batch_size", eval_batch_size, 1, allow_full=True)
        # 0 = no validation split: every training image is trained on and nothing is selected (the faithful
        # evaluation mode, faithful_eval=true, which compares with published numbers that trained on all of them)
        _check_int("val_size", val_size, 0)
        _check_int("val_seed", val_seed, 0)
        _check_int("shuffle_seed", shuffle_seed, 0)
        _check_int("num_classes", num_classes, 2)
        if train_subset is not None:
            _check_int("train_subset", train_subset, 1)
        if resize is not None:
            _check_int("resize", resize, 1)
        if (not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3
                or not all(isinstance(s, int) and s >= 1 for s in input_shape)):
            raise ConfigError(f"dataset.input_shape={input_shape!r} must be three positive ints [C, H, W]")
        for key, values in (("mean", mean), ("std", std)):
            if not isinstance(values, (list, tuple)) or len(values) != input_shape[0]:
                raise ConfigError(f"dataset.{key}={values!r} needs {input_shape[0]} values, one per channel")
        if not all(isinstance(s, (int, float)) and s > 0 for s in std):
            raise ConfigError(f"dataset.std={std!r} must be positive")
        unknown = set(augment) - {"crop_padding", "hflip"}
        if unknown:
            raise ConfigError(f"unknown dataset.augment keys {sorted(unknown)}; valid: crop_padding, hflip")
        _check_int("augment.crop_padding", augment.setdefault("crop_padding", 0), 0)
        if not isinstance(augment.setdefault("hflip", False), bool):
            raise ConfigError(f"dataset.augment.hflip={augment['hflip']!r} must be true or false")
        if (name == "synthetic") != (synthetic is not None):
            raise ConfigError("dataset.synthetic (n_train, n_test, seed) is required for name=synthetic "
                              f"and only valid for it; got name={name!r}, synthetic={synthetic!r}")
        if synthetic is not None:
            unknown = set(synthetic) - {"n_train", "n_test", "seed", "noise"}
            if unknown:
                raise ConfigError(f"unknown dataset.synthetic keys {sorted(unknown)}; "
                                  "valid: n_train, n_test, seed, noise")
            synthetic = {**synthetic, "shape": list(input_shape), "num_classes": num_classes}

        self.name, self.root, self.cache_dir, self.download = name, root, cache_dir, bool(download)
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.val_seed, self.train_subset = val_size, val_seed, train_subset
        self.augment, self.synthetic, self.shuffle_seed = augment, synthetic, shuffle_seed
        self.resize = resize
        self._num_classes, self._input_shape = num_classes, tuple(input_shape)
        self.train_passes = 1
        self.device = torch.device("cpu")
        #: "train" / "val" / "test" -> (uint8 images, int64 labels), filled by setup()
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}
        #: indices into the original training split of the validation / training images (CPU), for provenance
        self.val_indices: Tensor | None = None
        self.train_indices: Tensor | None = None
        #: the file or folder the data was read from ("generated" for synthetic)
        self.source = ""

    # --- properties -----------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._input_shape

    @property
    def train_size(self) -> int:
        """Training images left after the validation split and ``train_subset``; loads the data if needed."""
        self.setup("fit")
        return len(self.splits["train"][1])

    # --- loading --------------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Runs on one process only: download when asked, so that ranks do not download concurrently."""
        if self.download:
            for split in ("train", "test"):
                load_split(self.name, split, self.root, self.cache_dir, download=True)

    def setup(self, stage: str | None = None) -> None:
        """Load both splits once, check them against the config and split off the validation images."""
        if not self.splits:
            self._load()
        self._move(self._target_device())

    def _load(self) -> None:
        kwargs = {"download": self.download, "synthetic": self.synthetic}
        train_x, train_y = load_split(self.name, "train", self.root, self.cache_dir, **kwargs)
        test_x, test_y = load_split(self.name, "test", self.root, self.cache_dir, **kwargs)
        if self.resize is not None:
            train_x, test_x = resize_images(train_x, self.resize), resize_images(test_x, self.resize)
        synthetic = self.name == "synthetic"
        self.source = ("generated" if synthetic
                       else str(resolve_source(self.name, "train", self.root, self.download)))
        for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
            if tuple(x.shape[1:]) != self.input_shape:
                raise ConfigError(f"dataset.input_shape={list(self.input_shape)} does not match the "
                                  f"{self.name} {split} images of shape {list(x.shape[1:])} "
                                  f"from {self.source}")
            if len(y) and int(y.max()) >= self.num_classes:
                raise ConfigError(f"dataset.num_classes={self.num_classes} but the {self.name} {split} "
                                  f"labels go up to {int(y.max())} (from {self.source})")
        n = len(train_y)
        if self.val_size >= n:
            raise ConfigError(f"dataset.val_size={self.val_size} leaves no training images: "
                              f"{self.name} has {n}")
        # a CPU generator: the split must not depend on the device the run uses
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.val_seed))
        val_idx, train_idx = perm[: self.val_size], perm[self.val_size:]
        if self.train_subset is not None:
            if self.train_subset > len(train_idx):
                raise ConfigError(f"dataset.train_subset={self.train_subset} exceeds the {len(train_idx)} "
                                  f"training images left after val_size={self.val_size}")
            train_idx = train_idx[: self.train_subset]
        # sorted: the original order keeps eval batches reproducible to read; training shuffles anyway
        self.val_indices, self.train_indices = val_idx.sort().values, train_idx.sort().values
        self.splits = {"train": (train_x[self.train_indices], train_y[self.train_indices]),
                       "val": (train_x[self.val_indices], train_y[self.val_indices]),
                       "test": (test_x, test_y)}
        log.info("%s: %d train / %d val / %d test images from %s", self.name, len(self.train_indices),
                 len(self.val_indices), len(test_y), self.source)

    # --- device ---------------------------------------------------------------------------------------------
    def _target_device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else self.device

    def _move(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.splits = {k: (x.to(self.device), y.to(self.device)) for k, (x, y) in self.splits.items()}

    def to(self, device: torch.device | str) -> DeviceDataModule:
        """Hold the data on ``device`` (moved now if loaded, else at setup); returns self."""
        self.device = torch.device(device)
        if self.splits:
            self._move(self.device)
        return self

    # --- loaders --------------------------------------------------------------------------------------------
    def _loader(self, split: str, train: bool) -> DeviceLoader:
        self.setup()  # no-op after the first call, except for following the trainer's device
        x, y = self.splits[split]
        if train:
            return DeviceLoader(x, y, self.batch_size, self.mean, self.std, train=True, augment=self.augment,
                                seed=self.shuffle_seed, passes=self.train_passes)
        return DeviceLoader(x, y, self.eval_batch_size, self.mean, self.std)

    def train_dataloader(self) -> DeviceLoader:
        loader = self._loader("train", train=True)
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            self._apply_train_limit(loader, trainer)
        return loader

    def _apply_train_limit(self, loader: DeviceLoader, trainer: L.Trainer) -> None:
        """Move the trainer's ``limit_train_batches`` into the loader, which shares it out over the passes.

        Lightning would cut the epoch after that many batches, and a multi-phase algorithm's passes come one
        after another: a limit below one pass (the debug and smoke configs use 2 batches) would never run the
        later phases (OctopusNet's coordinator, the SFF heads). Eval loaders make one pass: nothing to do there.
        """
        limit = trainer.limit_train_batches
        full = len(loader)
        n = min(full, limit) if isinstance(limit, int) else int(full * limit)  # as Lightning counts
        if n >= full:
            return
        if n < self.train_passes:
            # Lightning turns fast_dev_run=n into limit_train_batches=n: name what the user set
            setting, value = (("fast_dev_run", trainer.fast_dev_run) if trainer.fast_dev_run
                              else ("limit_train_batches", limit))
            raise ConfigError(f"trainer.{setting}={value!r} gives {n} training batch(es) per epoch but the "
                              f"algorithm makes {self.train_passes} passes (one per phase), each needing one; "
                              f"set trainer.{setting} to an int >= {self.train_passes}")
        loader.limit = n
        # Lightning applies the limit to len(loader) itself: a fraction would cut the shortened loader a second
        # time. The exact count is a no-op for it (Lightning rewrites this attribute itself for fast_dev_run).
        trainer.limit_train_batches = n

    def val_dataloader(self) -> DeviceLoader | list:
        if self.val_size == 0:
            return []  # Lightning runs no validation for an empty list
        return self._eval_loader("val")

    def test_dataloader(self) -> DeviceLoader:
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> DeviceLoader:
        """The ``split``'s evaluation loader. Under a trainer limit below the whole split (``limit_val_batches`` /
        ``limit_test_batches``, e.g. ``trainer=debug``) its images come in one fixed random order (seeded by
        ``val_seed``, the same in every run), so that the batches Lightning keeps are a random subset and not the
        split's first images: the CIFAR test set is sorted by class, and its first batch alone scores 0 or 1. A
        full evaluation keeps the split's order."""
        loader = self._loader(split, train=False)
        trainer = getattr(self, "trainer", None)
        limit = getattr(trainer, f"limit_{split}_batches", None) if trainer is not None else None
        if limit is None or isinstance(limit, bool):
            return loader
        full = len(loader)
        n = min(full, limit) if isinstance(limit, int) else int(full * limit)  # as Lightning counts
        if n >= full or n <= 0:
            return loader
        x, y = self.splits[split]
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.val_seed)).to(x.device)
        return DeviceLoader(x[order], y[order], self.eval_batch_size, self.mean, self.std)

    def train_eval_dataloader(self) -> DeviceLoader:
        """The training images in order, without augmentation: for measuring training error."""
        return self._loader("train", train=False)
