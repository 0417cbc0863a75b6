"""Reading STL-10's binary release (``stl10_binary/``, as torchvision downloads it).

``<split>_X.bin`` holds uint8 images of 3 x 96 x 96, each channel stored column-major (the MATLAB layout), and
``<split>_y.bin`` one uint8 label per image in 1..10. Only the labelled splits are read (5,000 train, 8,000
test); the 100,000 unlabelled images are not used by any octo recipe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from octo.data.classes import STL10_CLASSES
from octo.utils.errors import DataError

FOLDER = "stl10_binary"
SHAPE = (3, 96, 96)
CLASSES = list(STL10_CLASSES)


def read_split(folder: Path, split: str, hint: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 3, 96, 96]`` uint8 (row-major, like every other octo data set) and labels 0..9 int64."""
    x_path, y_path = folder / f"{split}_X.bin", folder / f"{split}_y.bin"
    for path in (x_path, y_path):
        if not path.is_file():
            raise DataError(f"{path} not found (STL-10 {split} split); {hint}")
    per_image = int(np.prod(SHAPE))
    size = x_path.stat().st_size
    if size == 0 or size % per_image:
        raise DataError(f"{x_path}: {size} bytes is not a whole number of {per_image}-byte 3x96x96 images; the "
                        f"file is truncated or not STL-10; {hint}")
    images = np.fromfile(x_path, dtype=np.uint8).reshape(-1, *SHAPE)
    labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64)
    if len(labels) != len(images):
        raise DataError(f"{y_path}: {len(labels)} labels for the {len(images)} images of {x_path.name}; {hint}")
    if len(labels) and (labels.min() < 1 or labels.max() > len(CLASSES)):
        raise DataError(f"{y_path}: labels range over {labels.min()}..{labels.max()}, STL-10's are 1..10; {hint}")
    # column-major channels -> row-major (H, W), then labels 1..10 -> 0..9
    return np.ascontiguousarray(images.transpose(0, 1, 3, 2)), labels - 1
