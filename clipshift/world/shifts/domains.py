"""The domains: the styles an object is drawn in. To add one, write its style function and register
it below (the order is the domain code; add at the end). Everything else derives from the entry.

A style draws from the photo render's layers (`Scene`) and the renderer's grids (`r.xx`, `r.yy`, the
pixel size `r.px`, the habitat means `r.bg_mean`). torch is imported inside the functions, so that the
names load without torch (help texts, spec validation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipshift.world.shifts.registry import DomainDef, Scene, register_domain

if TYPE_CHECKING:
    from torch import Tensor

    from clipshift.world.render import Renderer


def sketch(r: Renderer, s: Scene) -> Tensor:
    """Ink for luminance edges and the outline on white paper: no colour, no texture."""
    import torch
    import torch.nn.functional as F

    lum = (s.photo * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    gx = F.pad((lum[..., :, 1:] - lum[..., :, :-1]).abs(), (0, 1, 0, 0))
    gy = F.pad((lum[..., 1:, :] - lum[..., :-1, :]).abs(), (0, 0, 0, 1))
    outline = torch.exp(-((s.sdf / (0.9 * r.px)) ** 2)).unsqueeze(1)
    ink = ((gx + gy) * 2.5 + outline).clamp(0, 1)
    return (0.96 - 0.85 * ink).expand(-1, 3, -1, -1)


def rendition(r: Renderer, s: Scene) -> Tensor:
    """A flat cartoon: saturated flat habitat colour, two-tone fill, black outline."""
    flat_bg = (0.5 + 1.4 * (r.bg_mean[s.background] - 0.5)).view(-1, 3, 1, 1)  # flat, saturated palette
    fill = s.colour * (1 - 0.5 * (s.pattern > 0.5).float().unsqueeze(1))
    img = flat_bg.expand_as(fill).lerp(fill, s.mask)
    outline = (s.sdf.abs() < 1.1 * r.px).float().unsqueeze(1)
    return img * (1 - outline)


def painting(r: Renderer, s: Scene) -> Tensor:
    """Posterised and softened, with brush-stroke shading and a warm tint."""
    import torch

    from clipshift.world.shifts.ops import separable_filter

    img = torch.round(s.photo.clamp(0, 1) * 4.0) / 4.0  # posterise
    img = separable_filter(img, torch.tensor([0.25, 0.5, 0.25]))
    strokes = 1 + 0.12 * torch.sin(9 * r.xx + 5 * r.yy) * torch.sin(7 * r.yy - 3 * r.xx)
    warm = torch.tensor([1.08, 1.0, 0.86]).view(1, 3, 1, 1)
    return img * strokes * warm


# the order is the domain code (photo = 0, the reference every style starts from): add new ones at the end
register_domain(
    DomainDef(
        name="photo",
        word="photo",
        description="photo-like renders: a shaded, textured object on its habitat",
        render=None,
    )
)
register_domain(
    DomainDef(
        name="sketch",
        word="sketch",
        description="edges and outline in ink, no colour (the ImageNet-Sketch analogue)",
        render=sketch,
        keeps_colour=False,
    )
)
register_domain(
    DomainDef(
        name="rendition",
        word="cartoon",
        description="flat cartoon palette with outlines (the ImageNet-R analogue)",
        render=rendition,
    )
)
register_domain(
    DomainDef(
        name="painting",
        word="painting",
        description="posterised and softened, with brush strokes and a warm tint",
        render=painting,
    )
)
