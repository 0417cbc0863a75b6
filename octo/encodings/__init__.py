"""Label encodings (how a label is written into an image) and negative data for contrastive local losses."""

from octo.encodings.fourier import fourier_overlay, fourier_patterns
from octo.encodings.negatives import hardest_wrong_labels, hybrid_images, smooth_masks, wrong_labels
from octo.encodings.onehot import onehot_overlay

__all__ = [
    "fourier_overlay",
    "fourier_patterns",
    "hardest_wrong_labels",
    "hybrid_images",
    "onehot_overlay",
    "smooth_masks",
    "wrong_labels",
]
