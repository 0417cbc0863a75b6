"""Tests of octo.data: reading real and generated files, the validation split, device batching, configs.

Real MNIST / Fashion-MNIST come from the offline copies (``OCTO_DATA`` or ``../shared/data`` next to the
checkout); CIFAR layouts are exercised on small generated archives and pickles. Everything writes only into
``tmp_path``.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from conftest import tiny_stl10, write_stl10

from octo.data import cifar, sources
from octo.data.augment import crop_flip
from octo.data.datamodule import DeviceDataModule
from octo.data.idx import IMAGES_MAGIC, LABELS_MAGIC
from octo.data.loader import DeviceLoader, epoch_seed
from octo.data.sources import load_split
from octo.data.synthetic import make_synthetic
from octo.utils.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("OCTO_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
HAVE_MNIST = (DATA_ROOT / "mnist" / "train-images-idx3-ubyte.gz").is_file()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"offline MNIST copy not found under {DATA_ROOT}")
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_KW = {"mean": [0.1307], "std": [0.3081], "num_classes": 10, "input_shape": [1, 28, 28]}
SYNTH_KW = {"mean": [0.39], "std": [0.26], "num_classes": 4, "input_shape": [1, 8, 8], "val_size": 64,
            "synthetic": {"n_train": 256, "n_test": 128, "seed": 0}}


# --- helpers ------------------------------------------------------------------------------------------------
def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file: magic, big-endian dimensions, raw uint8 payload."""
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()


def write_mnist(folder: Path, images: np.ndarray, labels: np.ndarray, split: str = "train",
                gz: bool = True) -> None:
    """Write the two IDX files of ``split`` into ``folder`` (``images`` as [N, H, W])."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    for kind, arr, magic in (("images-idx3", images, IMAGES_MAGIC), ("labels-idx1", labels, LABELS_MAGIC)):
        data = idx_bytes(arr.astype(np.uint8), magic)
        path = folder / f"{prefix}-{kind}-ubyte{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(data) if gz else data)


def tiny_mnist(n: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def one_line_error(exc_info, *fragments: str) -> str:
    """The message of a raised OctoError: one line, containing every fragment."""
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return msg


def jpeg(colour: tuple[int, int, int], size: int = 32) -> bytes:
    """A flat-coloured JPEG: flat images survive JPEG almost exactly, so the decoded values are checkable."""
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def class_colour(label: int, index: int) -> tuple[int, int, int]:
    return (20 * label + 10, 5 * index + 40, 200 - 10 * label)


def make_cifar10_tar(path: Path, per_class: dict[str, int]) -> None:
    """A CIFAR-10-layout tar.xz; files are added in reverse name order to check that the reader sorts."""
    with tarfile.open(path, "w:xz") as tar:
        for split, count in per_class.items():
            for label, cls in enumerate(sources.CIFAR10_CLASSES):
                for i in reversed(range(count)):
                    data = jpeg(class_colour(label, i))
                    info = tarfile.TarInfo(f"{split}/{cls}/{i:04d}.jpg")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def cifar_pickle(path: Path, n: int, label_key: str, num_classes: int, seed: int) -> tuple[np.ndarray, list]:
    """One batch file of torchvision's CIFAR python layout; returns (data rows, labels)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    data[0, :1024], data[0, 1024:2048], data[0, 2048:] = 10, 20, 30  # R, G, B planes of image 0
    labels = rng.integers(0, num_classes, n).tolist()
    batch = {"data": data, label_key: labels, "filenames": [f"img{i}.png" for i in range(n)]}
    if label_key == "fine_labels":
        batch["coarse_labels"] = [lab // 5 for lab in labels]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch))
    return data, labels


@pytest.fixture(scope="module")
def mnist():
    if not HAVE_MNIST:
        pytest.skip(f"offline MNIST copy not found under {DATA_ROOT}")
    return {s: load_split("mnist", s, DATA_ROOT, "/nonexistent-cache-unused") for s in ("train", "test")}


@pytest.fixture(scope="module")
def mnist_dm(tmp_path_factory):
    if not HAVE_MNIST:
        pytest.skip(f"offline MNIST copy not found under {DATA_ROOT}")
    dm = DeviceDataModule("mnist", DATA_ROOT, tmp_path_factory.mktemp("cache"), val_size=10000, **MNIST_KW)
    dm.setup("fit")
    return dm


# --- real MNIST / Fashion-MNIST -----------------------------------------------------------------------------
def test_mnist_shapes_dtypes_and_counts(mnist):
    (x, y), (xt, yt) = mnist["train"], mnist["test"]
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert x.dtype == xt.dtype == torch.uint8 and y.dtype == yt.dtype == torch.int64
    assert torch.bincount(yt).tolist() == MNIST_TEST_COUNTS
    assert int(x.max()) == 255 and int(x.min()) == 0


def test_fashion_mnist_from_debian_package(tmp_path):
    if not sources.FASHION_MNIST_SYSTEM_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist is not installed")
    xt, yt = load_split("fashion_mnist", "test", tmp_path, tmp_path)  # empty root: falls back to the package
    assert xt.shape == (10000, 1, 28, 28) and torch.bincount(yt).tolist() == [1000] * 10


def test_uncompressed_idx_in_torchvision_layout(tmp_path):
    images, labels = tiny_mnist()
    write_mnist(tmp_path / "MNIST" / "raw", images, labels, gz=False)
    x, y = load_split("mnist", "train", tmp_path, tmp_path)
    assert torch.equal(x[:, 0], torch.from_numpy(images)) and y.tolist() == labels.tolist()
    assert sources.find_source("mnist", "train", tmp_path) == tmp_path / "MNIST" / "raw"


# --- error paths --------------------------------------------------------------------------------------------
def test_missing_data_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(DataError) as err:
        load_split("mnist", "train", tmp_path / "nowhere", tmp_path)
    one_line_error(err, "train-images-idx3-ubyte", str(tmp_path / "nowhere" / "mnist"), "OCTO_DATA",
                   "download=true")


def test_missing_labels_file(tmp_path):
    write_mnist(tmp_path / "mnist", *tiny_mnist())
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        load_split("mnist", "train", tmp_path, tmp_path)
    one_line_error(err, "train-labels-idx1-ubyte", "missing")


@pytest.mark.parametrize("garbage, problem", [(b"\x1f\x8b\x08\x00" + bytes(range(200)) * 3, "corrupt gzip"),
                                              (b"this is not an idx file at all", "bad magic")])
def test_garbage_file(tmp_path, garbage, problem):
    write_mnist(tmp_path / "mnist", *tiny_mnist())
    bad = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    bad.write_bytes(garbage)
    with pytest.raises(DataError) as err:
        load_split("mnist", "train", tmp_path, tmp_path)
    one_line_error(err, str(bad), problem)


def test_wrong_magic(tmp_path):
    images, labels = tiny_mnist()
    write_mnist(tmp_path / "mnist", images, labels)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(images, LABELS_MAGIC)))  # a labels header on an images file
    with pytest.raises(DataError) as err:
        load_split("mnist", "train", tmp_path, tmp_path)
    one_line_error(err, str(path), "bad magic number 0x00000801")


def test_truncated_gzip(tmp_path):
    write_mnist(tmp_path / "mnist", *tiny_mnist(200))
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError) as err:
        load_split("mnist", "train", tmp_path, tmp_path)
    one_line_error(err, str(path), "truncated")


def test_truncated_and_padded_idx(tmp_path):
    images, labels = tiny_mnist()
    write_mnist(tmp_path / "mnist", images, labels, gz=False)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte"
    full = path.read_bytes()
    path.write_bytes(full[:-100])
    with pytest.raises(DataError) as err:
        load_split("mnist", "train", tmp_path, tmp_path)
    one_line_error(err, str(path), "truncated", "declares 20 images")
    path.write_bytes(full + b"\0" * 7)
    with pytest.raises(DataError) as err:
        load_split("mnist", "train", tmp_path, tmp_path)
    one_line_error(err, str(path), "7 unexpected bytes")


def test_label_count_and_range_checked(tmp_path):
    images, labels = tiny_mnist()
    write_mnist(tmp_path / "mnist", images, labels[:-1])
    with pytest.raises(DataError) as err:
        load_split("mnist", "train", tmp_path, tmp_path)
    one_line_error(err, "19 labels", "20 images")
    labels[3] = 12
    write_mnist(tmp_path / "mnist", images, labels)
    with pytest.raises(DataError) as err:
        load_split("mnist", "train", tmp_path, tmp_path)
    one_line_error(err, "0..12", "classes 0..9")


def test_download_failure_is_a_data_error(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\n<urlopen error Name not known>")

    monkeypatch.setattr(tvd, "MNIST", offline)
    with pytest.raises(DataError) as err:
        load_split("mnist", "train", tmp_path, tmp_path, download=True)
    one_line_error(err, "downloading mnist", "urlopen error", "RuntimeError")


def test_download_reads_what_torchvision_wrote(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    images, labels = tiny_mnist()
    calls = []

    def fake_mnist(root, train, download):  # writes what torchvision's MNIST writes: extracted MNIST/raw/
        calls.append((root, train, download))
        write_mnist(Path(root) / "MNIST" / "raw", images, labels, gz=False)

    write_mnist(tmp_path / "mnist", *tiny_mnist(seed=1))  # another copy that download=True must not read
    monkeypatch.setattr(tvd, "MNIST", fake_mnist)
    x, _ = load_split("mnist", "train", tmp_path, tmp_path, download=True)
    assert calls and all(c[2] for c in calls)
    assert torch.equal(x[:, 0], torch.from_numpy(images))


@pytest.mark.parametrize("change, fragments", [
    ({"name": "svhn"}, ["dataset.name='svhn'", "mnist, fashion_mnist, cifar10, cifar100, stl10, synthetic"]),
    ({"batch_size": 0}, ["dataset.batch_size=0", "-1 (full batch)"]),
    ({"val_size": -1}, ["dataset.val_size=-1", ">= 0"]),
    ({"augment": {"crop": 4}}, ["crop", "crop_padding, hflip"]),
    ({"augment": {"hflip": "yes"}}, ["dataset.augment.hflip"]),
    ({"mean": [0.1, 0.2]}, ["dataset.mean", "one per channel"]),
    ({"std": [0.0]}, ["dataset.std"]),
    ({"input_shape": [28, 28]}, ["dataset.input_shape"]),
    ({"synthetic": {"n_train": 5}}, ["dataset.synthetic", "name=synthetic"]),
    ({"resize": 0}, ["dataset.resize=0", ">= 1"]),
])
def test_bad_config_values(tmp_path, change, fragments):
    kwargs = dict(name="mnist", root=tmp_path, cache_dir=tmp_path, **MNIST_KW) | change
    with pytest.raises(ConfigError) as err:
        DeviceDataModule(**kwargs)
    one_line_error(err, *fragments)


@needs_mnist
def test_config_must_match_the_data(tmp_path):
    dm = DeviceDataModule("mnist", DATA_ROOT, tmp_path, **(MNIST_KW | {"input_shape": [3, 32, 32],
                                                                       "mean": [0, 0, 0], "std": [1, 1, 1]}))
    with pytest.raises(ConfigError) as err:
        dm.setup("fit")
    one_line_error(err, "dataset.input_shape=[3, 32, 32]", "[1, 28, 28]")
    dm = DeviceDataModule("mnist", DATA_ROOT, tmp_path, **(MNIST_KW | {"num_classes": 5}))
    with pytest.raises(ConfigError) as err:
        dm.setup("fit")
    one_line_error(err, "dataset.num_classes=5", "up to 9")


# --- validation split ---------------------------------------------------------------------------------------
def test_val_split_seeded_disjoint_and_complete(mnist_dm, mnist, tmp_path):
    val, train = mnist_dm.val_indices, mnist_dm.train_indices
    assert len(val) == 10000 and len(train) == 50000 and mnist_dm.train_size == 50000
    assert torch.equal(torch.cat([val, train]).sort().values, torch.arange(60000))  # disjoint and complete
    x, y = mnist["train"]
    assert torch.equal(mnist_dm.splits["val"][0], x[val])
    assert torch.equal(mnist_dm.splits["train"][1], y[train])
    assert torch.equal(mnist_dm.splits["test"][1], mnist["test"][1])
    again = DeviceDataModule("mnist", DATA_ROOT, tmp_path, val_size=10000, **MNIST_KW)
    again.setup("fit")
    assert torch.equal(again.val_indices, val)
    other = DeviceDataModule("mnist", DATA_ROOT, tmp_path, val_size=10000, val_seed=1, train_subset=1000,
                             **MNIST_KW)
    other.setup("fit")
    assert not torch.equal(other.val_indices, val) and other.train_size == 1000
    assert not set(other.train_indices.tolist()) & set(other.val_indices.tolist())
    assert mnist_dm.num_classes == 10 and mnist_dm.input_shape == (1, 28, 28)


# --- loaders ------------------------------------------------------------------------------------------------
def test_normalisation_over_a_full_pass(mnist_dm):
    total = total_sq = count = 0
    for x, _ in mnist_dm.train_eval_dataloader():
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
        # per-batch float32 sums (pairwise summation, accurate enough), accumulated as Python floats
        total, total_sq, count = total + x.sum().item(), total_sq + (x * x).sum().item(), count + x.numel()
    mean = total / count
    assert abs(mean) < 0.01 and abs((total_sq / count - mean**2) ** 0.5 - 1) < 0.01


def id_loader(n: int = 1000, batch_size: int = 128, **kwargs) -> DeviceLoader:
    """A loader whose labels are the image indices, to track which images each batch holds."""
    return DeviceLoader(torch.zeros(n, 1, 4, 4, dtype=torch.uint8), torch.arange(n), batch_size, [0.0], [1.0],
                        **kwargs)


def test_every_index_once_per_pass_and_passes():
    loader = id_loader(train=True, passes=2, seed=3)
    batches = list(loader)
    assert len(batches) == len(loader) == 2 * 8
    assert all(isinstance(b[2], int) for b in batches)
    per_pass = [torch.cat([y for _, y, p in batches if p == k]) for k in range(2)]
    for ids in per_pass:
        assert torch.equal(ids.sort().values, torch.arange(1000))
    assert not torch.equal(per_pass[0], per_pass[1])  # each pass reshuffles
    assert [b[2] for b in batches] == [0] * 8 + [1] * 8


def test_shuffling_is_reproducible_per_epoch():
    a, b = id_loader(train=True, seed=5), id_loader(train=True, seed=5)
    epochs_a = [torch.cat([y for _, y, _ in a]) for _ in range(2)]
    assert not torch.equal(epochs_a[0], epochs_a[1])
    b.set_epoch(1)  # a resumed run: starts at epoch 1 and must see what an uninterrupted run saw
    assert torch.equal(torch.cat([y for _, y, _ in b]), epochs_a[1])
    c = id_loader(train=True, seed=6)
    assert not torch.equal(torch.cat([y for _, y, _ in c]), epochs_a[0])
    assert epoch_seed(1, 0) != epoch_seed(0, 1)


def test_full_batch_drop_last_and_eval_order():
    full = id_loader(batch_size=-1, train=True)
    for _ in range(2):  # a full batch keeps its order every epoch (per-sample choices stay with their samples)
        (x, y, p), = list(full)
        assert x.shape[0] == 1000 and p == 0 and torch.equal(y, torch.arange(1000))
    dropped = id_loader(batch_size=300, train=True, drop_last=True)
    assert len(dropped) == 3 and all(len(b[1]) == 300 for b in dropped)
    evaluation = list(id_loader(batch_size=300))
    assert len(evaluation) == 4 and all(len(b) == 2 for b in evaluation)
    assert torch.equal(torch.cat([y for _, y in evaluation]), torch.arange(1000))  # eval keeps the order
    with pytest.raises(ConfigError):
        id_loader(batch_size=2000, train=True, drop_last=True)
    with pytest.raises(ConfigError):
        id_loader(augment={"hflip": True})  # eval loaders never augment


def find_window(out: torch.Tensor, padded: torch.Tensor, p: int) -> bool:
    """Whether ``out`` is one crop window of ``padded``, flipped or not."""
    h, w = out.shape[-2:]
    windows = [padded[:, dy: dy + h, dx: dx + w] for dy in range(2 * p + 1) for dx in range(2 * p + 1)]
    return any(torch.equal(out, win) or torch.equal(out, win.flip(-1)) for win in windows)


def test_crop_and_flip_are_real_windows():
    x = torch.randint(1, 256, (16, 3, 10, 10), dtype=torch.uint8)  # no zeros: padding is recognisable
    p = 2
    out = crop_flip(x, p, True, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (p,) * 4)
    assert all(find_window(out[i], padded[i], p) for i in range(len(x)))
    assert sum(not torch.equal(out[i], x[i]) for i in range(len(x))) >= 12  # almost all changed
    assert (out == 0).any()  # some crops reach into the zero padding


def test_hflip_twice_is_identity_and_flips_some():
    x = torch.randint(0, 256, (64, 1, 6, 6), dtype=torch.uint8)
    once = crop_flip(x, 0, True, torch.Generator().manual_seed(7))
    twice = crop_flip(once, 0, True, torch.Generator().manual_seed(7))  # same seed: the same samples flip
    assert torch.equal(twice, x)
    flipped = [not torch.equal(once[i], x[i]) for i in range(len(x))]
    assert 16 < sum(flipped) < 48
    assert all(torch.equal(once[i], x[i].flip(-1)) for i in range(len(x)) if flipped[i])


def test_augmenting_train_loader(mnist_dm):
    mnist_dm.augment = {"crop_padding": 4, "hflip": True}
    try:
        x, _, p = next(iter(mnist_dm.train_dataloader()))
    finally:
        mnist_dm.augment = {"crop_padding": 0, "hflip": False}
    assert x.shape == (128, 1, 28, 28) and x.dtype == torch.float32 and p == 0


# --- synthetic ----------------------------------------------------------------------------------------------
def test_synthetic_deterministic_and_learnable():
    x, y = make_synthetic("train", n_train=400, shape=(1, 8, 8), num_classes=4, seed=3)
    x2, y2 = make_synthetic("train", n_train=400, shape=(1, 8, 8), num_classes=4, seed=3)
    assert x.shape == (400, 1, 8, 8) and x.dtype == np.uint8
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert np.bincount(y).tolist() == [100] * 4
    assert not np.array_equal(make_synthetic("train", n_train=400, seed=4)[0], x)
    xt, yt = make_synthetic("test", n_train=999, n_test=200, shape=(1, 8, 8), num_classes=4, seed=3)
    assert np.array_equal(xt, make_synthetic("test", n_train=1, n_test=200, shape=(1, 8, 8), seed=3)[0])
    means = np.stack([x[y == k].reshape(-1, 64).mean(0) / 255 for k in range(4)])
    gaps = [np.abs(means[i] - means[j]).mean() for i in range(4) for j in range(i + 1, 4)]
    assert min(gaps) > 0.05  # class means clearly differ
    dist = (((xt.reshape(-1, 1, 64) / 255) - means[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == yt).mean() > 0.9  # a nearest-class-mean classifier already solves it
    tx, _ = load_split("synthetic", "test", "unused", "unused",
                        synthetic={"n_test": 200, "shape": (1, 8, 8), "num_classes": 4, "seed": 3})
    assert torch.equal(tx, torch.from_numpy(xt))


# --- CIFAR layouts and the cache ----------------------------------------------------------------------------
def test_cifar10_jpeg_archive_cache_and_folder(tmp_path, monkeypatch):
    root, cache_dir = tmp_path / "data", tmp_path / "cache"
    root.mkdir()
    make_cifar10_tar(root / sources.CIFAR10_ARCHIVE, {"train": 3, "test": 2})
    x, y = load_split("cifar10", "train", root, cache_dir)
    assert x.shape == (30, 3, 32, 32) and x.dtype == torch.uint8 and y.tolist() == sorted(list(range(10)) * 3)
    expected = torch.tensor([[class_colour(lab, i) for i in range(3)] for lab in range(10)]).view(30, 3)
    assert (x.float().mean((2, 3)) - expected).abs().max() < 3  # sorted file order, JPEG error small
    assert len(list(cache_dir.glob("cifar10-*.npz"))) == 2  # both splits decoded and cached in one go

    def broken(*args, **kwargs):
        raise AssertionError("decoder called although a cache exists")

    monkeypatch.setattr(cifar, "decode_images", broken)
    x2, y2 = load_split("cifar10", "train", root, cache_dir)
    xt, _ = load_split("cifar10", "test", root, cache_dir)
    assert torch.equal(x2, x) and torch.equal(y2, y) and xt.shape == (20, 3, 32, 32)
    os.utime(root / sources.CIFAR10_ARCHIVE, ns=(0, 10**18))  # a changed source must not be served from cache
    with pytest.raises(AssertionError, match="decoder called"):
        load_split("cifar10", "train", root, cache_dir)
    monkeypatch.undo()

    folder_root = tmp_path / "extracted"
    with tarfile.open(root / sources.CIFAR10_ARCHIVE) as tar:
        tar.extractall(folder_root / "cifar10-jpeg-q75", filter="data")
    xf, yf = load_split("cifar10", "train", folder_root, cache_dir)
    assert torch.equal(xf, x) and torch.equal(yf, y)


def test_truncated_cifar_archive(tmp_path):
    make_cifar10_tar(tmp_path / sources.CIFAR10_ARCHIVE, {"train": 2, "test": 1})
    path = tmp_path / sources.CIFAR10_ARCHIVE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError) as err:
        load_split("cifar10", "train", tmp_path, tmp_path / "cache")
    one_line_error(err, str(path), "truncated or corrupt", "cifar10-jpeg-q75.tar.xz or cifar-10-batches-py/")


def test_cifar100_pickle_layout(tmp_path):
    folder = tmp_path / "cifar-100-python"
    data, labels = cifar_pickle(folder / "train", 40, "fine_labels", 100, seed=0)
    cifar_pickle(folder / "test", 10, "fine_labels", 100, seed=1)
    x, y = load_split("cifar100", "train", tmp_path, tmp_path)
    assert x.shape == (40, 3, 32, 32) and y.tolist() == labels
    assert [x[0, c].unique().tolist() for c in range(3)] == [[10], [20], [30]]  # R, G, B planes
    assert torch.equal(x.reshape(40, -1), torch.from_numpy(data))
    (folder / "test").write_bytes((folder / "test").read_bytes()[:100])
    with pytest.raises(DataError) as err:
        load_split("cifar100", "test", tmp_path, tmp_path)
    one_line_error(err, str(folder / "test"), "cifar-100-python/")


def test_cifar10_pickles_preferred_over_jpeg(tmp_path):
    make_cifar10_tar(tmp_path / sources.CIFAR10_ARCHIVE, {"train": 1, "test": 1})
    folder = tmp_path / "cifar-10-batches-py"
    parts = [cifar_pickle(folder / f"data_batch_{i}", 4, "labels", 10, seed=i)[1] for i in range(1, 6)]
    cifar_pickle(folder / "test_batch", 4, "labels", 10, seed=9)
    x, y = load_split("cifar10", "train", tmp_path, tmp_path / "cache")
    assert x.shape == (20, 3, 32, 32) and y.tolist() == [label for part in parts for label in part]
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError) as err:
        load_split("cifar10", "train", tmp_path, tmp_path / "cache")
    one_line_error(err, str(folder / "data_batch_3"), "missing")


# --- configs and Lightning ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100", "stl10", "synthetic"])
def test_dataset_configs_instantiate(name, tmp_path):
    paths = {"data_dir": str(tmp_path), "cache_dir": str(tmp_path / "cache")}
    cfg = OmegaConf.create({"seed": 7, "paths": paths,
                            "dataset": OmegaConf.load(REPO / "conf" / "dataset" / f"{name}.yaml")})
    dm = instantiate(cfg.dataset, _convert_="all")  # as octo.train builds it
    assert isinstance(dm, DeviceDataModule) and dm.name == name and dm.root == str(tmp_path)
    assert dm.shuffle_seed == 7  # the run seed drives the training order
    assert len(dm.mean) == len(dm.std) == dm.input_shape[0]
    if name == "synthetic":
        dm.setup("fit")
        assert dm.train_size == 512 - 128 and len(dm.splits["test"][1]) == 256
        x, _ = dm.splits["train"]
        pixels = x.float() / 255  # the config's mean/std describe the generated data
        assert abs(pixels.mean() - dm.mean[0]) < 0.02 and abs(pixels.std() - dm.std[0]) < 0.02


class _Probe(L.LightningModule):
    """A linear classifier that records what reaches training_step."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
        self.seen_passes: list[int] = []
        self.val_batches = self.test_correct = 0

    def training_step(self, batch, batch_idx):
        x, y, pass_idx = batch
        self.seen_passes.append(pass_idx)
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        assert len(batch) == 2  # eval batches carry no pass index
        self.val_batches += 1

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.test_correct += int((self.net(x).argmax(1) == y).sum())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_fit_with_passes(tmp_path):
    dm = DeviceDataModule("synthetic", tmp_path, tmp_path, batch_size=32, eval_batch_size=50, **SYNTH_KW)
    dm.train_passes = 2
    model = _Probe()
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    per_pass = (256 - 64) // 32
    assert model.seen_passes == ([0] * per_pass + [1] * per_pass) * 3
    assert model.val_batches == 2 * 3 + 2  # 64 val images in batches of 50, each epoch plus the sanity check
    assert trainer.train_dataloader.epoch == 3  # Lightning drove set_epoch (0, 1, 2)
    trainer.test(model, datamodule=dm, verbose=False)
    assert model.test_correct / 128 > 0.9  # the synthetic task is learnable


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_loaders_on_cuda(tmp_path):
    dm = DeviceDataModule("synthetic", tmp_path, tmp_path, augment={"crop_padding": 2, "hflip": True},
                          **SYNTH_KW).to("cuda")
    dm.setup("fit")
    assert dm.splits["train"][0].is_cuda and dm.splits["test"][0].is_cuda
    first = [(x, y) for x, y, _ in dm.train_dataloader()]
    assert first[0][0].is_cuda and first[0][0].dtype == torch.float32
    loader = dm.train_dataloader()
    loader.set_epoch(0)  # the same epoch on the same device gives the same batches
    again = [(x, y) for x, y, _ in loader]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    x, y = next(iter(dm.test_dataloader()))
    assert x.is_cuda and y.is_cuda


# --- STL-10 (binary release; no offline copy, so generated files in its exact layout) -----------------------

def test_stl10_binary_orientation_and_labels(tmp_path):
    written = tiny_stl10(tmp_path)
    for split in ("train", "test"):
        x, y = load_split("stl10", split, tmp_path, tmp_path / "cache")
        assert x.dtype == torch.uint8 and tuple(x.shape[1:]) == (3, 96, 96)
        # rows stay rows: the column-major file is transposed back (an untransposed read would swap H and W)
        assert np.array_equal(x.numpy(), written[split][0])
        assert y.tolist() == [int(v) - 1 for v in written[split][1]]


@pytest.mark.parametrize("damage, fragments", [
    ("truncate", ["train_X.bin", "not a whole number", "stl10_binary/"]),
    ("labels", ["train_y.bin", "1..10"]),
    ("count", ["train_y.bin", "labels for the"]),
    ("missing", ["stl10 train data not found", "stl10_binary", "download=true"]),
])
def test_stl10_errors(tmp_path, damage, fragments):
    tiny_stl10(tmp_path)
    folder = tmp_path / "stl10_binary"
    if damage == "truncate":
        data = (folder / "train_X.bin").read_bytes()
        (folder / "train_X.bin").write_bytes(data[:-100])
    elif damage == "labels":
        np.full(12, 11, dtype=np.uint8).tofile(folder / "train_y.bin")
    elif damage == "count":
        np.ones(11, dtype=np.uint8).tofile(folder / "train_y.bin")
    else:
        import shutil
        shutil.rmtree(folder)
    with pytest.raises(DataError) as exc_info:
        load_split("stl10", "train", tmp_path, tmp_path / "cache")
    one_line_error(exc_info, *fragments)


def test_stl10_resized_once_at_load_time(tmp_path):
    # the STL10_cls recipes' Resize(32): a flat colour stays that colour, and the module serves 32x32 images
    images = np.zeros((12, 3, 96, 96), dtype=np.uint8)
    images[:, 0], images[:, 1], images[:, 2] = 200, 100, 7
    write_stl10(tmp_path / "stl10_binary", "train", images, np.arange(12) % 10 + 1)
    write_stl10(tmp_path / "stl10_binary", "test", images[:6], np.arange(6) + 1)
    dm = DeviceDataModule("stl10", tmp_path, tmp_path / "cache", mean=[0.0] * 3, std=[1.0] * 3, num_classes=10,
                          input_shape=[3, 32, 32], val_size=2, resize=32)
    dm.setup("fit")
    x, _ = dm.splits["train"]
    assert tuple(x.shape) == (10, 3, 32, 32)
    assert x[:, 0].unique().tolist() == [200] and x[:, 2].unique().tolist() == [7]
    with pytest.raises(ConfigError, match="resize"):
        DeviceDataModule("stl10", tmp_path, tmp_path, mean=[0.0] * 3, std=[1.0] * 3, num_classes=10,
                         input_shape=[3, 32, 32], resize=0)
