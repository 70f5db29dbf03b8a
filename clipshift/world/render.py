"""Vectorised rendering of world samples: whole batches as tensor ops, no per-pixel Python.

Layers: background (habitat texture) -> object silhouette (class-specific Fourier radius profile with
per-instance deformation) filled with colour x pattern and shaded -> domain style -> corruption (both
registered by name in `clipshift.world.shifts`).

Speed: textures that do not depend on the class (habitat textures, fill patterns, noise) are drawn
once per world into small banks and gathered per sample; the silhouette is evaluated as a radius
profile over angle bins per sample (N x bins) and looked up per pixel, so the per-pixel work is a
few dozen cheap tensor ops. Batches of ~512 keep every intermediate in cache.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from clipshift.world import shifts
from clipshift.world.concepts import Concepts
from clipshift.world.names import ALL_COLOURS, PATTERNS, habitat_table
from clipshift.world.rng import rng_for
from clipshift.world.sampling import Factors
from clipshift.world.shifts import Scene
from clipshift.world.spec import WorldSpec

BASE_RADIUS = 0.52  # silhouette radius (image half-widths) at scale 1
ANGLE_BINS = 96
RENDER_BATCH = 512


class Renderer:
    """Holds the world's constant tensors (palettes, banks, grids) and renders Factors to uint8.

    Shift functions (`clipshift.world.shifts`) read its grids `xx`, `yy` (pixel centres in [-1, 1]),
    the pixel size `px`, the habitat means `bg_mean` and the noise bank (`noise_bank`, `variants`)."""

    def __init__(self, spec: WorldSpec, concepts: Concepts):
        self.spec = spec
        n = spec.image_size
        lin = (torch.arange(n, dtype=torch.float32) + 0.5) / n * 2 - 1
        self.yy, self.xx = torch.meshgrid(lin, lin, indexing="ij")
        self.px = 2.0 / n
        self.shape = torch.tensor(concepts.shape, dtype=torch.float32)
        self.elong_sqrt = torch.tensor(concepts.elongation, dtype=torch.float32).sqrt()
        self.colours = torch.tensor(
            [c[2] for c in ALL_COLOURS[: spec.details.n_colours]], dtype=torch.float32
        )
        # radius profile basis: cos/sin of harmonics 2..J+1 at the centres of the angle bins
        th = (torch.arange(ANGLE_BINS, dtype=torch.float32) + 0.5) / ANGLE_BINS * 2 * math.pi - math.pi
        harm = torch.arange(2, 2 + self.shape.shape[1], dtype=torch.float32)
        self.cos_basis = torch.cos(harm[:, None] * th[None])  # (J, bins)
        self.sin_basis = torch.sin(harm[:, None] * th[None])
        # banks: enough variants that a small net cannot memorise them, small enough to stay in cache
        self.variants = max(4, min(48, int(48 * (32 / n) ** 2)))
        # beyond the 16 named habitats, fewer variants each: the bank stays the size of 16 habitats' (or
        # 8 variants), a few MB that gathers keep in cache
        nb = spec.backgrounds.n_backgrounds
        self.bg_variants = self.variants if nb <= 16 else max(8, self.variants * 16 // nb)
        rng = rng_for(spec.seed, "banks")
        self.bg_bank, self.bg_mean = _background_bank(spec, self.xx, self.yy, self.bg_variants, rng)
        self.pattern_bank = _pattern_bank(self.xx, self.yy, self.variants, rng)
        if spec.details.n_patterns > len(PATTERNS):  # a second stream: the original banks' draws stay
            extra = _extra_patterns(self.xx, self.yy, self.variants, rng_for(spec.seed, "banks-extra"))
            self.pattern_bank = torch.cat([self.pattern_bank, extra])[: spec.details.n_patterns]
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        self.noise_bank = torch.randn(self.variants, 3, n, n, generator=g)

    @torch.no_grad()
    def render(self, f: Factors, out: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) uint8, written into `out` when given (no extra copy of a big split)."""
        n = len(f)
        size = (n, 3, self.spec.image_size, self.spec.image_size)
        out = torch.empty(size, dtype=torch.uint8) if out is None else out
        t = _tensors(f)
        for lo in range(0, n, RENDER_BATCH):
            part = {k: v[lo : lo + RENDER_BATCH] for k, v in t.items()}
            img = self._render_float(part, f.corruption, f.severity)
            out[lo : lo + RENDER_BATCH] = img.mul_(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)
        return out

    def _render_float(self, t: dict[str, torch.Tensor], corruption: str, severity: int) -> torch.Tensor:
        label = t["label"]
        n = len(label)
        v = self.variants

        # --- object frame: translate, rotate, scale, elongate
        c = torch.cos(t["rotation"]).view(n, 1, 1)
        s = torch.sin(t["rotation"]).view(n, 1, 1)
        sc = t["scale"].view(n, 1, 1)
        el = self.elong_sqrt[label].view(n, 1, 1)
        dx = self.xx - t["position"][:, 0].view(n, 1, 1)
        dy = self.yy - t["position"][:, 1].view(n, 1, 1)
        u = (dx * c + dy * s) / (sc * el)
        w = (dy * c - dx * s) * (el / sc)
        r = torch.sqrt(u * u + w * w)

        # --- silhouette: radius profile per sample over angle bins, looked up per pixel
        coef = self.shape[label] + t["deform"]  # (N, J, 2)
        prof = coef[:, :, 0] @ self.cos_basis + coef[:, :, 1] @ self.sin_basis  # (N, bins)
        radius_bins = BASE_RADIUS * (1 + prof).clamp(min=0.15)
        pos = (torch.atan2(w, u) + math.pi) * (ANGLE_BINS / (2 * math.pi)) - 0.5
        lo_bin = pos.floor()
        frac = pos - lo_bin
        i0 = lo_bin.long().remainder_(ANGLE_BINS).view(n, -1)
        i1 = (i0 + 1).remainder_(ANGLE_BINS)
        r0 = torch.gather(radius_bins, 1, i0).view_as(r)
        r1 = torch.gather(radius_bins, 1, i1).view_as(r)
        radius = r0 + frac * (r1 - r0)
        sdf = (r - radius) * sc * el  # ~ distance to the outline in image units
        mask = torch.sigmoid(sdf * (-1.0 / (0.35 * self.px)))

        # --- fill: colour x pattern, shaded by a light direction
        col = self.colours[t["colour"]].view(n, 3, 1, 1)
        pvar = (t["texture"][:, 0] * v).long().clamp_(max=v - 1)
        pat = self.pattern_bank[t["pattern"], pvar]  # (N, H, W)
        light = 1.0 + (t["light"][:, 0].view(n, 1, 1) * u + t["light"][:, 1].view(n, 1, 1) * w) * (0.25 / 1.5)
        fill = (col * (1 - 0.55 * pat).unsqueeze(1) + (0.12 * pat).unsqueeze(1)) * light.unsqueeze(1)

        bv = self.bg_variants
        bvar = (t["bg_texture"][:, 0] * bv).long().clamp_(max=bv - 1)
        bg = self.bg_bank[t["background"], bvar] * (1 + t["bg_texture"][:, 3]).view(n, 1, 1, 1)
        m = mask.unsqueeze(1)
        out = torch.lerp(bg, fill, m)

        dom = t["domain"]
        if bool((dom != 0).any()):  # code 0 is the reference (photo): every style starts from it
            photo = out
            out = photo.clone()
            for d, entry in enumerate(shifts.domains()):
                if entry.render is None:
                    continue
                sel = (dom == d).nonzero().squeeze(1)
                if len(sel):
                    scene = Scene(photo[sel], m[sel], sdf[sel], t["background"][sel], col[sel], pat[sel])
                    out[sel] = entry.render(self, scene)
        if corruption != "none":
            cdef = shifts.corruption(corruption)
            out = cdef.apply(self, out.clamp_(0, 1), cdef.severities[severity - 1], t["corrupt_params"])
        return out.clamp_(0, 1)


def _background_bank(
    spec: WorldSpec, x: torch.Tensor, y: torch.Tensor, variants: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, V, 3, H, W) habitat textures with random phase/orientation per variant, and (B, 3) means.

    Salience pulls every habitat's colours toward one grey: backgrounds become harder to tell apart.
    """
    nb = spec.backgrounds.n_backgrounds
    sal = spec.backgrounds.salience
    grey = torch.tensor([0.5, 0.5, 0.5])
    bank = torch.empty(nb, variants, 3, *x.shape)
    for b, (_, _, ca, cb, kind, fr) in enumerate(habitat_table(nb)):
        p1 = torch.tensor(rng.uniform(0, 2 * np.pi, variants), dtype=torch.float32).view(-1, 1, 1)
        p2 = torch.tensor(rng.uniform(0, 2 * np.pi, variants), dtype=torch.float32).view(-1, 1, 1)
        ang = torch.tensor(rng.uniform(-0.3, 0.3, variants), dtype=torch.float32).view(-1, 1, 1)
        xr = x * torch.cos(ang) + y * torch.sin(ang)
        yr = y * torch.cos(ang) - x * torch.sin(ang)
        if kind == 0:  # gradient with soft clouds
            m = (yr + 1) * 0.5 + 0.15 * torch.sin(2.5 * xr + p1) * torch.sin(2 * yr + p2)
        elif kind == 1:  # waves / ripples
            m = 0.5 + 0.5 * torch.sin(fr * yr * math.pi + 0.8 * torch.sin(fr * 0.7 * xr + p1) + p2)
        elif kind == 2:  # blotches
            m = (0.5 + 0.8 * torch.sin(fr * xr + p1) * torch.sin(fr * 0.8 * yr + p2)).clamp(0, 1)
        elif kind == 3:  # grain / speckles
            m = ((torch.sin(fr * 3.1 * xr + p1) * torch.sin(fr * 2.7 * yr + p2)) > 0.55).float()
        elif kind == 4:  # blades / stripes
            m = 0.5 + 0.5 * torch.sin(fr * xr * math.pi + p1 + 0.3 * torch.sin(5 * yr))
        else:  # cells / cracks
            m = (torch.sin(fr * xr * math.pi + p1).abs() < 0.25) | (
                torch.sin(fr * yr * math.pi + p2).abs() < 0.25
            )
            m = m.float()
        a = grey + sal * (torch.tensor(ca) - grey)
        c = grey + sal * (torch.tensor(cb) - grey)
        bank[b] = a.view(1, 3, 1, 1) * (1 - m.unsqueeze(1)) + c.view(1, 3, 1, 1) * m.unsqueeze(1)
    return bank, bank.mean(dim=(1, 3, 4))


def _pattern_bank(x: torch.Tensor, y: torch.Tensor, variants: int, rng: np.random.Generator) -> torch.Tensor:
    """(P, V, H, W) fill patterns in [0, 1]: solid, stripes, dots, checks at random freq/angle/phase."""
    out = torch.zeros(len(PATTERNS), variants, *x.shape)
    freq = torch.tensor(rng.uniform(8.0, 14.0, variants), dtype=torch.float32).view(-1, 1, 1)
    ang = torch.tensor(rng.uniform(0, np.pi, variants), dtype=torch.float32).view(-1, 1, 1)
    ph = torch.tensor(rng.uniform(0, 2 * np.pi, (2, variants)), dtype=torch.float32).view(2, -1, 1, 1)
    s1 = torch.sin(freq * (x * torch.cos(ang) + y * torch.sin(ang)) + ph[0])
    s2 = torch.sin(freq * (y * torch.cos(ang) - x * torch.sin(ang)) + ph[1])
    out[1] = (s1 * 3).clamp(-1, 1) * 0.5 + 0.5
    out[2] = ((s1 * s2 - 0.45) * 6).clamp(0, 1)
    out[3] = (s1 * s2 * 4).clamp(-1, 1) * 0.5 + 0.5
    return out


def _extra_patterns(
    x: torch.Tensor, y: torch.Tensor, variants: int, rng: np.random.Generator
) -> torch.Tensor:
    """(4, V, H, W) the patterns after the original four: zigzags, rings, marbling, grid."""
    freq = torch.tensor(rng.uniform(8.0, 14.0, variants), dtype=torch.float32).view(-1, 1, 1)
    ang = torch.tensor(rng.uniform(0, np.pi, variants), dtype=torch.float32).view(-1, 1, 1)
    ph = torch.tensor(rng.uniform(0, 2 * np.pi, (2, variants)), dtype=torch.float32).view(2, -1, 1, 1)
    centre = torch.tensor(rng.uniform(-0.5, 0.5, (2, variants)), dtype=torch.float32).view(2, -1, 1, 1)
    u = x * torch.cos(ang) + y * torch.sin(ang)
    w = y * torch.cos(ang) - x * torch.sin(ang)
    tri = 2 * torch.abs(torch.remainder(freq * w / (2 * math.pi) + ph[1] / (2 * math.pi), 1.0) - 0.5)
    out = torch.empty(4, variants, *x.shape)
    out[0] = (torch.sin(freq * u + 2.5 * tri + ph[0]) * 3).clamp(-1, 1) * 0.5 + 0.5
    r = torch.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2)
    out[1] = (torch.sin(freq * 1.3 * r + ph[0]) * 3).clamp(-1, 1) * 0.5 + 0.5
    out[2] = 0.5 + 0.5 * torch.sin(0.6 * freq * u + 3.0 * torch.sin(0.45 * freq * w + ph[1]))
    grid = (torch.sin(freq * u + ph[0]).abs() < 0.3) | (torch.sin(freq * w + ph[1]).abs() < 0.3)
    out[3] = grid.float()
    return out


def _tensors(f: Factors) -> dict[str, torch.Tensor]:
    out = {
        k: torch.from_numpy(np.ascontiguousarray(getattr(f, k))).long()
        for k in ("label", "background", "domain", "colour", "pattern")
    }
    for k in ("rotation", "scale", "position", "deform", "texture", "bg_texture", "light", "corrupt_params"):
        out[k] = torch.from_numpy(np.ascontiguousarray(getattr(f, k), dtype=np.float32))
    return out
