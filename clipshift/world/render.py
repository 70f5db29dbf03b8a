"""Vectorised rendering of world samples: whole batches as tensor ops, no per-pixel Python.

Layers: background (habitat texture) -> object silhouette (class-specific Fourier radius profile with
per-instance deformation) filled with colour x pattern and shaded -> domain style (photo / sketch /
rendition / painting) -> corruption (noise / blur / contrast / occlusion).

Speed: textures that do not depend on the class (habitat textures, fill patterns, noise) are drawn
once per world into small banks and gathered per sample; the silhouette is evaluated as a radius
profile over angle bins per sample (N x bins) and looked up per pixel, so the per-pixel work is a
few dozen cheap tensor ops. Batches of ~512 keep every intermediate in cache.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from clipshift.world.concepts import Concepts
from clipshift.world.names import BACKGROUNDS, COLOURS, PATTERNS
from clipshift.world.rng import rng_for
from clipshift.world.sampling import Factors
from clipshift.world.spec import WorldSpec

BASE_RADIUS = 0.52  # silhouette radius (image half-widths) at scale 1
ANGLE_BINS = 96
RENDER_BATCH = 512

# severity 1..5 of each corruption
NOISE_STD = (0.04, 0.08, 0.13, 0.19, 0.27)
BLUR_SIGMA = (0.5, 0.8, 1.1, 1.5, 2.0)
CONTRAST = (0.7, 0.5, 0.38, 0.28, 0.2)
T = torch.Tensor
OCCLUDE = (0.25, 0.35, 0.45, 0.55, 0.65)  # side of the occluding square (fraction of image)


class Renderer:
    """Holds the world's constant tensors (palettes, banks, grids) and renders Factors to uint8."""

    def __init__(self, spec: WorldSpec, concepts: Concepts):
        self.spec = spec
        n = spec.image_size
        lin = (torch.arange(n, dtype=torch.float32) + 0.5) / n * 2 - 1
        self.yy, self.xx = torch.meshgrid(lin, lin, indexing="ij")
        self.px = 2.0 / n
        self.shape = torch.tensor(concepts.shape, dtype=torch.float32)
        self.elong_sqrt = torch.tensor(concepts.elongation, dtype=torch.float32).sqrt()
        self.colours = torch.tensor([c[2] for c in COLOURS], dtype=torch.float32)
        # radius profile basis: cos/sin of harmonics 2..J+1 at the centres of the angle bins
        th = (torch.arange(ANGLE_BINS, dtype=torch.float32) + 0.5) / ANGLE_BINS * 2 * math.pi - math.pi
        harm = torch.arange(2, 2 + self.shape.shape[1], dtype=torch.float32)
        self.cos_basis = torch.cos(harm[:, None] * th[None])  # (J, bins)
        self.sin_basis = torch.sin(harm[:, None] * th[None])
        # banks: enough variants that a small net cannot memorise them, small enough to stay in cache
        self.variants = max(4, min(48, int(48 * (32 / n) ** 2)))
        rng = rng_for(spec.seed, "banks")
        self.bg_bank, self.bg_mean = _background_bank(spec, self.xx, self.yy, self.variants, rng)
        self.pattern_bank = _pattern_bank(self.xx, self.yy, self.variants, rng)
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

        bvar = (t["bg_texture"][:, 0] * v).long().clamp_(max=v - 1)
        bg = self.bg_bank[t["background"], bvar] * (1 + t["bg_texture"][:, 3]).view(n, 1, 1, 1)
        m = mask.unsqueeze(1)
        out = torch.lerp(bg, fill, m)

        dom = t["domain"]
        if bool((dom != 0).any()):
            photo = out
            out = photo.clone()
            for d, style in ((1, self._sketch), (2, self._rendition), (3, self._painting)):
                sel = (dom == d).nonzero().squeeze(1)
                if len(sel):
                    out[sel] = style(photo[sel], m[sel], sdf[sel], t["background"][sel], col[sel], pat[sel])
        if corruption != "none":
            out = self._corrupt(out.clamp_(0, 1), corruption, severity, t["corrupt_params"])
        return out.clamp_(0, 1)

    # ----------------------------------------------------------------- domain styles
    def _sketch(self, photo: T, m: T, sdf: T, b: T, col: T, pat: T) -> T:
        lum = (photo * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        gx = F.pad((lum[..., :, 1:] - lum[..., :, :-1]).abs(), (0, 1, 0, 0))
        gy = F.pad((lum[..., 1:, :] - lum[..., :-1, :]).abs(), (0, 0, 0, 1))
        outline = torch.exp(-((sdf / (0.9 * self.px)) ** 2)).unsqueeze(1)
        ink = ((gx + gy) * 2.5 + outline).clamp(0, 1)
        return (0.96 - 0.85 * ink).expand(-1, 3, -1, -1)

    def _rendition(self, photo: T, m: T, sdf: T, b: T, col: T, pat: T) -> T:
        flat_bg = (0.5 + 1.4 * (self.bg_mean[b] - 0.5)).view(-1, 3, 1, 1)  # flat, saturated palette
        fill = col * (1 - 0.5 * (pat > 0.5).float().unsqueeze(1))
        img = torch.lerp(flat_bg.expand_as(fill), fill, m)
        outline = (sdf.abs() < 1.1 * self.px).float().unsqueeze(1)
        return img * (1 - outline)

    def _painting(self, photo: T, m: T, sdf: T, b: T, col: T, pat: T) -> T:
        img = torch.round(photo.clamp(0, 1) * 4.0) / 4.0  # posterise
        img = _separable_filter(img, torch.tensor([0.25, 0.5, 0.25]))
        strokes = 1 + 0.12 * torch.sin(9 * self.xx + 5 * self.yy) * torch.sin(7 * self.yy - 3 * self.xx)
        warm = torch.tensor([1.08, 1.0, 0.86]).view(1, 3, 1, 1)
        return img * strokes * warm

    # ----------------------------------------------------------------- corruptions
    def _corrupt(self, img: torch.Tensor, kind: str, sev: int, cp: torch.Tensor) -> torch.Tensor:
        if kind == "noise":
            # a per-sample tile of the world's noise bank, flipped per sample: deterministic per index
            tile = (cp[:, 3] * self.variants).long().clamp(max=self.variants - 1)
            noise = self.noise_bank[tile]
            noise = torch.where((cp[:, 2] < 0.5).view(-1, 1, 1, 1), noise, noise.flip(3))
            noise = torch.where((cp[:, 1] < 0.5).view(-1, 1, 1, 1), noise, noise.flip(2))
            return img + NOISE_STD[sev - 1] * noise
        if kind == "blur":
            sigma = BLUR_SIGMA[sev - 1]
            rad = max(1, math.ceil(2.5 * sigma))
            xs = torch.arange(-rad, rad + 1, dtype=torch.float32)
            k1 = torch.exp(-(xs**2) / (2 * sigma**2))
            k1 = k1 / k1.sum()
            return _separable_filter(img, k1)
        if kind == "contrast":
            mean = img.mean(dim=(1, 2, 3), keepdim=True)
            return mean + (img - mean) * CONTRAST[sev - 1]
        if kind == "occlusion":
            half = OCCLUDE[sev - 1]  # side fraction of the image == half-side in [-1, 1] coordinates
            # the occluder sits near the centre, where the object is, so it hides core features
            cx = ((cp[:, 0] - 0.5) * 0.8).view(-1, 1, 1)
            cy = ((cp[:, 1] - 0.5) * 0.8).view(-1, 1, 1)
            box = ((self.xx - cx).abs() < half) & ((self.yy - cy).abs() < half)
            grey = (0.3 + 0.4 * cp[:, 2]).view(-1, 1, 1, 1)
            return torch.where(box.unsqueeze(1), grey.expand_as(img), img)
        raise ValueError(f"unknown corruption {kind}")


def _separable_filter(img: torch.Tensor, k1: torch.Tensor) -> torch.Tensor:
    """Separable 2-D filter as shifted slice sums (replicate padding): on CPU this beats conv2d with
    groups=3 or 1-channel kernels by several times for these small images and kernels."""
    rad = (len(k1) - 1) // 2
    h, w = img.shape[-2:]
    p = F.pad(img, (rad, rad, 0, 0), mode="replicate")
    out = sum(float(k1[j]) * p[..., :, j : j + w] for j in range(len(k1)))
    p = F.pad(out, (0, 0, rad, rad), mode="replicate")  # type: ignore[arg-type]
    return sum(float(k1[j]) * p[..., j : j + h, :] for j in range(len(k1)))  # type: ignore[return-value]


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
    for b in range(nb):
        _, _, ca, cb, kind, fr = BACKGROUNDS[b]
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


def _tensors(f: Factors) -> dict[str, torch.Tensor]:
    out = {
        k: torch.from_numpy(np.ascontiguousarray(getattr(f, k))).long()
        for k in ("label", "background", "domain", "colour", "pattern")
    }
    for k in ("rotation", "scale", "position", "deform", "texture", "bg_texture", "light", "corrupt_params"):
        out[k] = torch.from_numpy(np.ascontiguousarray(getattr(f, k), dtype=np.float32))
    return out
