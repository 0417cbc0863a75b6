"""Reading CIFAR: the JPEG copy (archive or folder of ``<split>/<class>/<file>``) and torchvision's pickles.

The JPEG copy is read into lists of encoded bytes per split first and decoded afterwards, so the archive is
decompressed once for both splits (xz decompression is a good part of the cost).
"""

from __future__ import annotations

import io
import lzma
import pickle
import tarfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from octo.utils.errors import DataError

SPLITS = ("train", "test")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

#: encoded files of one split: class folder name -> list of (file name, bytes)
EncodedSplit = dict[str, list[tuple[str, bytes]]]


def read_jpeg_archive(path: Path, hint: str) -> dict[str, EncodedSplit]:
    """Encoded images per split and class from a tar (any compression) of ``[prefix/]<split>/<class>/<file>``.
    """
    splits: dict[str, EncodedSplit] = {s: {} for s in SPLITS}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:  # members are read in archive order: a forward-only pass over the xz stream
                parts = PurePosixPath(member.name).parts
                if not member.isfile() or len(parts) < 3 or not parts[-1].lower().endswith(_IMAGE_SUFFIXES):
                    continue
                split, cls, fname = parts[-3:]
                if split in splits:
                    splits[split].setdefault(cls, []).append((fname, tar.extractfile(member).read()))
            # tarfile ends the member loop silently when the archive is cut inside a header, which would turn
            # a partial download into a smaller data set; reading the compressed stream to its end raises
            # EOFError then
            while tar.fileobj.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, lzma.LZMAError, OSError) as err:
        raise DataError(f"{path}: cannot read the archive, it is probably truncated or corrupt ({err}); "
                        f"{hint}") from None
    return splits


def read_jpeg_folder(folder: Path, hint: str) -> dict[str, EncodedSplit]:
    """Encoded images per split and class from an extracted ``<split>/<class>/<file>`` folder."""
    splits: dict[str, EncodedSplit] = {}
    for split in SPLITS:
        splits[split] = {}
        if not (folder / split).is_dir():
            continue
        for cls_dir in (folder / split).iterdir():
            if cls_dir.is_dir():
                files = [f for f in cls_dir.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES]
                splits[split][cls_dir.name] = [(f.name, f.read_bytes()) for f in files]
    return splits


def decode_images(blobs: Iterable[bytes], count: int, source: Path, hint: str) -> np.ndarray:
    """Decode ``count`` encoded RGB images (all of one size) into a uint8 array ``[N, 3, H, W]``."""
    out: np.ndarray | None = None
    for i, blob in enumerate(blobs):
        try:
            with Image.open(io.BytesIO(blob)) as img:
                arr = np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise DataError(f"{source}: image {i} cannot be decoded ({err}); {hint}") from None
        if out is None:  # the first image fixes the size; allocating once avoids a 60k-element list of arrays
            out = np.empty((count, *arr.shape), dtype=np.uint8)
        elif arr.shape != out.shape[1:]:
            raise DataError(f"{source}: image {i} is {arr.shape[1]}x{arr.shape[0]}, the first one "
                            f"{out.shape[2]}x{out.shape[1]}; {hint}")
        out[i] = arr
    if out is None:
        raise DataError(f"{source}: no images found; {hint}")
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def decode_split(encoded: EncodedSplit, classes: list[str], source: Path,
                 hint: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split; label = index of the class folder in ``classes`` (sorted names).

    File names are sorted inside each class so the order (and thus every seeded split) never depends on the
    order of the archive or of the file system.
    """
    blobs: list[bytes] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        files = sorted(encoded.get(cls, []))
        blobs.extend(blob for _, blob in files)
        labels.extend([label] * len(files))
    images = decode_images(blobs, len(blobs), source, hint)
    return images, np.asarray(labels, dtype=np.int64)


def read_pickle_batches(folder: Path, files: list[str], label_key: str,
                        hint: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 3, 32, 32]`` and labels from torchvision's CIFAR python layout (a pickled dict a file)."""
    images, labels = [], []
    for name in files:
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path}: missing; {hint}")
        try:
            with open(path, "rb") as f:
                # latin1: the files were pickled by Python 2; this decodes their str keys (and is what
                # torchvision does). They are the published data set files, so unpickling them is expected.
                batch = pickle.load(f, encoding="latin1")
        except EOFError:
            raise DataError(f"{path}: truncated pickle; {hint}") from None
        except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError,
                IndexError) as err:
            raise DataError(f"{path}: not a CIFAR batch pickle ({err}); {hint}") from None
        if not isinstance(batch, dict) or "data" not in batch or label_key not in batch:
            keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise DataError(f"{path}: expected a dict with 'data' and '{label_key}', found {keys}; {hint}")
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"{path}: 'data' has shape {data.shape}, expected [N, 3072]; {hint}")
        if len(batch[label_key]) != len(data):
            raise DataError(f"{path}: {len(batch[label_key])} labels for {len(data)} images; {hint}")
        images.append(data.reshape(-1, 3, 32, 32))  # rows are stored channel-major: R plane, G plane, B plane
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)
