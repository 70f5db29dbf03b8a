"""The corruptions: degradations of the finished image, each with a severity table. To add one, write
its function and register it below with its table; everything else derives from the entry.

`apply(r, img, level, cp)`: `img` (n, 3, H, W) in [0, 1], `level` the table's value at the set's
severity, `cp` (n, 4) uniforms drawn per sample index (so a sample is corrupted the same way in any
batch). torch is imported inside the functions, so that the names load without torch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from clipshift.world.shifts.registry import CorruptionDef, register_corruption

if TYPE_CHECKING:
    from torch import Tensor

    from clipshift.world.render import Renderer


def noise(r: Renderer, img: Tensor, std: float, cp: Tensor) -> Tensor:
    """Gaussian noise of standard deviation `std`."""
    import torch

    # a per-sample tile of the world's noise bank, flipped per sample: deterministic per index
    tile = (cp[:, 3] * r.variants).long().clamp(max=r.variants - 1)
    bank = r.noise_bank[tile]
    bank = torch.where((cp[:, 2] < 0.5).view(-1, 1, 1, 1), bank, bank.flip(3))
    bank = torch.where((cp[:, 1] < 0.5).view(-1, 1, 1, 1), bank, bank.flip(2))
    return img + std * bank


def blur(r: Renderer, img: Tensor, sigma: float, cp: Tensor) -> Tensor:
    """Gaussian blur of standard deviation `sigma` pixels."""
    import torch

    from clipshift.world.shifts.ops import separable_filter

    rad = max(1, math.ceil(2.5 * sigma))
    xs = torch.arange(-rad, rad + 1, dtype=torch.float32)
    k1 = torch.exp(-(xs**2) / (2 * sigma**2))
    k1 = k1 / k1.sum()
    return separable_filter(img, k1)


def contrast(r: Renderer, img: Tensor, factor: float, cp: Tensor) -> Tensor:
    """Pull every pixel toward the image mean: contrast scaled by `factor`."""
    mean = img.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (img - mean) * factor


def occlusion(r: Renderer, img: Tensor, half: float, cp: Tensor) -> Tensor:
    """A grey square of side `half` (fraction of the image == half-side in [-1, 1] coordinates)."""
    import torch

    # the occluder sits near the centre, where the object is, so it hides core features
    cx = ((cp[:, 0] - 0.5) * 0.8).view(-1, 1, 1)
    cy = ((cp[:, 1] - 0.5) * 0.8).view(-1, 1, 1)
    box = ((r.xx - cx).abs() < half) & ((r.yy - cy).abs() < half)
    grey = (0.3 + 0.4 * cp[:, 2]).view(-1, 1, 1, 1)
    return torch.where(box.unsqueeze(1), grey.expand_as(img), img)


# severities: the level passed to the function at severity 1..5 (ImageNet-C's convention of five)
register_corruption(
    CorruptionDef(
        name="noise",
        description="Gaussian pixel noise",
        severities=(0.04, 0.08, 0.13, 0.19, 0.27),  # standard deviation
        apply=noise,
    )
)
register_corruption(
    CorruptionDef(
        name="blur",
        description="Gaussian blur",
        severities=(0.5, 0.8, 1.1, 1.5, 2.0),  # sigma in pixels
        apply=blur,
    )
)
register_corruption(
    CorruptionDef(
        name="contrast",
        description="contrast pulled toward the image mean",
        severities=(0.7, 0.5, 0.38, 0.28, 0.2),  # remaining contrast
        apply=contrast,
    )
)
register_corruption(
    CorruptionDef(
        name="occlusion",
        description="a grey square hides part of the object",
        severities=(0.25, 0.35, 0.45, 0.55, 0.65),  # side of the square (fraction of the image)
        apply=occlusion,
    )
)
