"""Batched data augmentation on the training device: random crops with zero padding and horizontal flips.

Both are done for the whole batch with one gather (index arithmetic), never a loop over samples, so augmentation
costs a few kernels per batch instead of per-image Python calls.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def crop_flip(x: Tensor, crop_padding: int = 0, hflip: bool = False,
              generator: torch.Generator | None = None) -> Tensor:
    """Randomly crop (after zero padding by ``crop_padding``) and/or horizontally flip each image of ``x``.

    ``x`` is ``[B, C, H, W]`` of any dtype (the loader passes raw uint8, so the padding is black like
    torchvision's ``RandomCrop(padding=p)`` on PIL images). Offsets and flips are drawn per sample from
    ``generator``, which must live on ``x.device``. The flip is folded into the column index of the same gather:
    column ``j`` of a flipped sample reads column ``W - 1 - j`` of its crop window.
    """
    if crop_padding == 0 and not hflip:
        return x
    b, c, h, w = x.shape
    dev = x.device
    if crop_padding > 0:
        x = F.pad(x, (crop_padding,) * 4)  # once for the whole batch
        off_y = torch.randint(0, 2 * crop_padding + 1, (b, 1), device=dev, generator=generator)
        off_x = torch.randint(0, 2 * crop_padding + 1, (b, 1), device=dev, generator=generator)
    else:
        off_y = off_x = torch.zeros(b, 1, dtype=torch.long, device=dev)
    cols = torch.arange(w, device=dev).expand(b, w)
    if hflip:
        flip = torch.rand(b, 1, device=dev, generator=generator) < 0.5
        cols = torch.where(flip, w - 1 - cols, cols)
    rows = off_y + torch.arange(h, device=dev)  # [B, H]
    cols = off_x + cols  # [B, W]
    batch = torch.arange(b, device=dev).view(b, 1, 1, 1)
    chan = torch.arange(c, device=dev).view(1, c, 1, 1)
    return x[batch, chan, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]
