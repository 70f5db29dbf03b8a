"""Latent-feature simulator of contrastive vs supervised learning under distribution shift.

Setting: Xue, Joshi, Nguyen & Mirzasoleiman, "Understanding the Robustness of Multi-modal Contrastive Learning
to Distribution Shift", ICLR 2024, arXiv 2310.04971 ([X]); the linear contrastive loss of Nakada et al.,
"Understanding Multimodal Contrastive Learning and Incorporating Unpaired Data", AISTATS 2023, arXiv
2302.06232 ([N]), which [X] analyses.

What could be checked, and against what. The body of [X] (its definitions, equations and theorem statements)
could not be read where this module was written: the stored copies of the arXiv HTML page, the arXiv
abstract page and the OpenReview forum (id rtl4XnJYBh) give the abstract only. Confirmed are: the abstract
of [X]; the public ICLR 2024 reviews of [X] on OpenReview, which quote its Assumption 4.2 (spurious
features have small variance, "sigma_spu = O(1/sqrt(log n))") and say Section 4.2.1 has parameters named
alpha, beta, c and a "coordinate k"; and a later paper restating the loss of [N] as used by [X] (TRACER,
arXiv 2605.29380, Eq. 1, citing both). Section and equation numbers of [X] other than these are NOT given
below because they could not be confirmed; each piece says how sure it is.

1. Data (latent model). z = [core; spurious; details; noise], image x_I = D_I z + xi_I, caption
   x_T = D_T z_T + xi_T, where z_T keeps the parts of z that the caption names and D_I, D_T have orthonormal
   columns. [Linear latent model with two views: the framework of [N] and, as we recall it, of [X]'s problem
   formulation; the exact form in [X] is NOT confirmed.]
   - core = mu_y + core_std * eps: class mean plus intra-class variation. [X]'s abstract: intra-class
     contrasting "allows the model to learn features with a high variance"; the reviews summarise its
     theorem as core features of high variance vs spurious features of small variance.
   - spurious = s_a + spurious_std * eps, with a = y with probability p_spurious, otherwise one of the other
     classes; spurious_std small: [X] Assumption 4.2 (quoted in the reviews). At test time a is redrawn
     (`shift`). [Multi-class generalisation chosen here; the number of classes and the law of a in [X] are
     NOT confirmed.]
   - details: features shared across classes (categorical, class-dependent laws): [X]'s abstract,
     "inter-class feature sharing, where annotated details in one class help learning other classes".
     [Their law in [X] (Section 4.2.1: alpha, beta, c) is NOT confirmed; the law here is our choice.]
   - noise: image-only variation that captions never name.
2. Caption richness ("rich captions", "annotating different types of details", [X] abstract). Every
   caption names the class (mu_y); each detail of the image is then named with probability
   caption_richness: the object's own intra-class variation (one detail per core coordinate: the deviation
   from mu_y) and the shared details, as selected by `named_details`; the spurious part is named with
   probability annotate_spurious. [Our reading of the abstract; that [X] defines richness by the details of
   the object's own variation is NOT confirmed. It is the reading under which richness can act through the
   covariance between the image and the prompt's text directions, which is what the learner below uses.]
3. Contrastive loss (`contrastive-linear`): L(W_I, W_T) = [sum_{i!=j} s_ij - (n-1) sum_i s_ii] / (n(n-1))
   + rho/2 ||W_I^T W_T||_F^2 with s_ij = (W_I x_I,i)^T (W_T x_T,j) ([N]; TRACER Eq. 1 restates it citing [N]
   and [X]; the regulariser rho/2 ||W_I^T W_T||_F^2 is [N]'s and is confirmed for [X] only by that
   restatement). The loss equals -<W_I^T W_T, S> + rho/2 ||W_I^T W_T||_F^2 with S the (unbiased) centred
   image-caption cross-covariance, so its minimiser over embeddings of dimension p is W_I^T W_T =
   SVD_p(S) / rho (Eckart-Young; [N]'s SVD connection). It is trained here by full-batch gradient descent
   and checked against that closed form (tests, `explain`).
   Other learners, each named for what it is: `contrastive-spectral`, the spectral contrastive loss of
   HaoChen et al. (NeurIPS 2021), -2 E[f(x)^T g(t)] + E_indep[(f(x)^T g(t'))^2], whose optimum whitens both
   views (not the loss of [X]); `contrastive-infonce`, CLIP's symmetric InfoNCE on normalised embeddings.
4. Zero-shot classifier: predict argmax_k <W_I x, W_T p_k> with p_k a class caption ([X] compares MMCL's
   zero-shot accuracy with supervised learning's; the exact prompt of [X] is NOT confirmed). `prompt=core`
   (default): p_k = D_T [mu_k; 0; 0; 0], the caption that names the class only; `prompt=class-details`:
   p_k = E[x_T | y = k], an average training caption.
5. Supervised learner: a linear softmax classifier trained with cross-entropy by Adam. [X]'s supervised
   learner is NOT confirmed; Assumption 4.2's form (spurious noise small enough to stay below the margin
   over n samples) suggests a margin-based analysis of gradient descent on a classification loss.

Defaults are this project's (constants of [X], if it states any, could not be read), chosen before the
results were seen and kept from the earlier version of this module where they existed; spurious_std is small
as Assumption 4.2 requires. At the defaults p = d_embed = 16 is below the number of annotated latent
dimensions (8 core + 16 detail), so the top-p cut is active. Nothing here is tuned towards a verdict.

Variance reduction: the shifted test set is the ID test set with only the spurious part re-drawn (same
labels, core, details, noise and pixel noise), so `drop` measures the shift itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from clipshift.configio import validate
from clipshift.errors import UserError

Learner = Literal["contrastive-linear", "contrastive-spectral", "contrastive-infonce", "supervised"]
ALL_LEARNERS: tuple[Learner, ...] = get_args(Learner)
Detail = Literal["core", "shared"]
ALL_DETAILS: tuple[Detail, ...] = get_args(Detail)
BLOCKS = ("core", "spurious", "details", "noise")


class TheorySpec(BaseModel):
    """Every constant of the simulated world, the two views and the learners."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0

    # --- latent world ---------------------------------------------------------------------------------
    n_classes: int = Field(default=5, ge=2, le=1000, description="number of classes K")
    d_core: int = Field(default=8, ge=1, le=1024, description="dimension of the core block")
    d_spur: int = Field(default=8, ge=1, le=1024, description="dimension of the spurious block")
    d_detail: int = Field(default=16, ge=1, le=1024, description="dimension of the shared-detail block")
    d_noise: int = Field(default=16, ge=1, le=1024, description="dimension of the pure-noise block")
    core_strength: float = Field(default=2.0, ge=0, le=1000, description="norm of each class mean μ_k")
    core_std: float = Field(
        default=1.0, ge=0, le=1000, description="per-coordinate std of the intra-class core variation"
    )
    spurious_strength: float = Field(
        default=2.0, ge=0, le=1000, description="norm of each spurious vector s_k"
    )
    spurious_std: float = Field(
        default=0.1,
        ge=0,
        le=1000,
        description="per-instance std of the spurious part (small: Assumption 4.2)",
    )
    p_spurious: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="P(spurious class = label) in training, exactly; otherwise one of the other K-1 classes "
        "(1/K: independent of the label)",
    )
    n_details: int = Field(default=4, ge=0, le=256, description="number of categorical shared details")
    detail_values: int = Field(default=6, ge=2, le=1000, description="values per detail")
    detail_strength: float = Field(default=1.0, ge=0, le=1000, description="norm of each detail-value vector")
    detail_concentration: float = Field(
        default=1.0, gt=0, le=1e6, description="Dirichlet concentration of the class-dependent detail laws"
    )
    noise_std: float = Field(default=1.0, ge=0, le=1000, description="std of the latent noise block")

    # --- views ----------------------------------------------------------------------------------------
    d_image: int = Field(default=64, ge=1, le=8192, description="image dimension (>= latent dimension)")
    d_text: int = Field(default=64, ge=1, le=8192, description="caption dimension (>= latent dimension)")
    image_noise: float = Field(default=0.1, ge=0, le=1000, description="std of isotropic pixel noise ξ_I")
    text_noise: float = Field(default=0.1, ge=0, le=1000, description="std of isotropic caption noise ξ_T")
    caption_richness: float = Field(
        default=0.5, ge=0, le=1, description="P(a caption names a given detail of its image)"
    )
    named_details: list[Detail] = Field(
        default_factory=lambda: list(ALL_DETAILS),
        description="which details captions may name: 'core' (the object's own intra-class variation, one "
        "detail per core coordinate) and/or 'shared' (the details shared across classes)",
    )
    annotate_spurious: float = Field(
        default=0.0, ge=0, le=1, description="P(a caption names the spurious part)"
    )

    # --- test-time shift ------------------------------------------------------------------------------
    shift: Literal["decorrelated", "flipped"] = "decorrelated"

    # --- zero-shot prompts ----------------------------------------------------------------------------
    prompt: Literal["core", "class-details"] = Field(
        default="core",
        description="'core': p_k = D_T [μ_k; 0; 0; 0], the caption naming the class only; 'class-details': "
        "p_k = E[caption | class k], an average training caption",
    )

    # --- learning -------------------------------------------------------------------------------------
    learners: list[Learner] = Field(default_factory=lambda: list(ALL_LEARNERS), min_length=1)
    d_embed: int = Field(
        default=16, ge=1, le=4096, description="embedding dimension p of the contrastive encoders"
    )
    n_train: int = Field(default=4000, ge=2, le=10_000_000)
    n_test: int = Field(default=2000, ge=1, le=10_000_000)
    rho: float = Field(
        default=1.0, gt=0, le=1e6, description="ρ of contrastive-linear's regulariser ρ/2 ||W_Iᵀ W_T||_F²"
    )
    linear_steps: int = Field(
        default=1000, ge=1, le=1_000_000, description="full-batch gradient steps of contrastive-linear"
    )
    linear_lr: float = Field(
        default=0.5, gt=0, le=1.5, description="contrastive-linear's step size × the top singular value of S"
    )
    steps: int = Field(
        default=300, ge=1, le=1_000_000, description="Adam steps of the other learners (minibatches)"
    )
    batch_size: int = Field(default=256, ge=2, le=1_000_000)
    lr: float = Field(default=0.01, gt=0, le=10, description="Adam learning rate of the other learners")
    temperature: float = Field(default=0.1, gt=0, le=100, description="InfoNCE temperature")
    init_scale: float = Field(
        default=0.1, gt=0, le=100, description="std of the initial weights × sqrt(fan-in)"
    )
    sl_weight_decay: float = Field(default=0.0, ge=0, le=1e6, description="L2 penalty of the supervised head")

    @field_validator("learners", "named_details")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("values must not repeat")
        return v

    @field_validator("d_image", "d_text")
    @classmethod
    def _view_fits_latent(cls, v: int, info: ValidationInfo) -> int:
        # D_I and D_T have orthonormal columns, which needs at least as many rows as latent dimensions.
        names = ("d_core", "d_spur", "d_detail", "d_noise")
        if all(k in info.data for k in names):  # otherwise that field's own error is reported
            d_z = sum(int(info.data[k]) for k in names)
            if v < d_z:
                raise ValueError(f"must be >= the latent dimension d_core+d_spur+d_detail+d_noise = {d_z}")
        return v

    @property
    def d_z(self) -> int:
        return self.d_core + self.d_spur + self.d_detail + self.d_noise

    def block(self, name: str) -> slice:
        """The latent coordinates of one block of z."""
        sizes = dict(zip(BLOCKS, (self.d_core, self.d_spur, self.d_detail, self.d_noise), strict=True))
        lo = sum(sizes[b] for b in BLOCKS[: BLOCKS.index(name)])
        return slice(lo, lo + sizes[name])


# ------------------------------------------------------------------------------------------------------
# The world
# ------------------------------------------------------------------------------------------------------


@dataclass
class _World:
    mu: np.ndarray  # (K, d_core) class means
    s: np.ndarray  # (K, d_spur) spurious vectors
    detail_vecs: np.ndarray  # (n_details, V, d_detail)
    detail_probs: np.ndarray  # (K, n_details, V)
    D_I: np.ndarray  # (d_image, d_z)
    D_T: np.ndarray  # (d_text, d_z)


@dataclass
class _Sample:
    y: np.ndarray
    core_dev: np.ndarray  # (n, d_core) intra-class variation: core = mu[y] + core_dev
    spur_idx: np.ndarray
    spur_noise: np.ndarray
    det_each: np.ndarray  # (n, n_details, d_detail)
    noise: np.ndarray
    pix_noise: np.ndarray


def _rows_with_norm(rng: np.random.Generator, shape: tuple[int, ...], norm: float) -> np.ndarray:
    v = rng.standard_normal(shape)
    return v * (norm / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12))


def _orthonormal_columns(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))  # sign fix makes the map a deterministic function of the draw


def _make_world(spec: TheorySpec, rng: np.random.Generator) -> _World:
    K, V = spec.n_classes, spec.detail_values
    return _World(
        mu=_rows_with_norm(rng, (K, spec.d_core), spec.core_strength),
        s=_rows_with_norm(rng, (K, spec.d_spur), spec.spurious_strength),
        detail_vecs=_rows_with_norm(rng, (spec.n_details, V, spec.d_detail), spec.detail_strength),
        detail_probs=rng.dirichlet(np.full(V, spec.detail_concentration), size=(K, spec.n_details)),
        D_I=_orthonormal_columns(rng, spec.d_image, spec.d_z),
        D_T=_orthonormal_columns(rng, spec.d_text, spec.d_z),
    )


def _spurious_index(
    spec: TheorySpec,
    rng: np.random.Generator,
    y: np.ndarray,
    mode: Literal["train", "decorrelated", "flipped"],
) -> np.ndarray:
    K, n = spec.n_classes, len(y)
    other = (y + rng.integers(1, K, size=n)) % K  # uniform over the K-1 classes that are not the label
    if mode == "train":
        # The other classes exclude the label, so P(index = label) is p_spurious exactly (a uniform draw
        # over all K would add (1-p)/K to it).
        return np.where(rng.random(n) < spec.p_spurious, y, other)
    if mode == "decorrelated":
        return rng.integers(K, size=n)
    return other


def _sample(spec: TheorySpec, world: _World, rng: np.random.Generator, n: int) -> _Sample:
    y = rng.integers(spec.n_classes, size=n)
    if spec.n_details:
        # Categorical draw per (sample, detail) from the class-dependent law, by inverse CDF.
        cdf = np.cumsum(world.detail_probs[y], axis=-1)
        vals = np.minimum((rng.random((n, spec.n_details, 1)) > cdf).sum(-1), spec.detail_values - 1)
        det_each = world.detail_vecs[np.arange(spec.n_details), vals]
    else:
        det_each = np.zeros((n, 0, spec.d_detail))
    return _Sample(
        y=y,
        core_dev=spec.core_std * rng.standard_normal((n, spec.d_core)),
        spur_idx=_spurious_index(spec, rng, y, "train"),
        spur_noise=spec.spurious_std * rng.standard_normal((n, spec.d_spur)),
        det_each=det_each,
        noise=spec.noise_std * rng.standard_normal((n, spec.d_noise)),
        pix_noise=spec.image_noise * rng.standard_normal((n, spec.d_image)),
    )


def _latent(world: _World, smp: _Sample) -> np.ndarray:
    """The image's latent z = [core; spurious; details; noise], one row per sample."""
    return np.concatenate(
        [
            world.mu[smp.y] + smp.core_dev,
            world.s[smp.spur_idx] + smp.spur_noise,
            smp.det_each.sum(1),
            smp.noise,
        ],
        axis=1,
    )


def _image(world: _World, smp: _Sample) -> np.ndarray:
    return _latent(world, smp) @ world.D_I.T + smp.pix_noise


def _caption(spec: TheorySpec, world: _World, smp: _Sample, rng: np.random.Generator) -> np.ndarray:
    n = len(smp.y)
    r = spec.caption_richness
    # Always draw both masks so the random stream, and hence the other parts, do not depend on the choice.
    name_core = (rng.random((n, spec.d_core)) < r) & ("core" in spec.named_details)
    name_det = (rng.random((n, spec.n_details, 1)) < r) & ("shared" in spec.named_details)
    name_spur = rng.random((n, 1)) < spec.annotate_spurious
    z = np.concatenate(
        [
            world.mu[smp.y] + name_core * smp.core_dev,  # the class is always named
            name_spur * (world.s[smp.spur_idx] + smp.spur_noise),
            (smp.det_each * name_det).sum(1),
            np.zeros((n, spec.d_noise)),
        ],
        axis=1,
    )
    return z @ world.D_T.T + spec.text_noise * rng.standard_normal((n, spec.d_text))


def _prompts(spec: TheorySpec, world: _World) -> np.ndarray:
    """Class captions for zero-shot prediction: D_T [μ_k; 0; 0; 0], or the expected caption of class k."""
    z = np.zeros((spec.n_classes, spec.d_z))
    z[:, spec.block("core")] = world.mu
    if spec.prompt == "class-details":
        K = spec.n_classes
        # E[s_a | y=k]: s_k with probability p, each other class with probability (1-p)/(K-1).
        mix = np.full((K, K), (1 - spec.p_spurious) / (K - 1))
        np.fill_diagonal(mix, spec.p_spurious)
        z[:, spec.block("spurious")] = spec.annotate_spurious * (mix @ world.s)
        if "shared" in spec.named_details:
            expected = np.einsum("kiv,ivd->kd", world.detail_probs, world.detail_vecs)
            z[:, spec.block("details")] = spec.caption_richness * expected
    return z @ world.D_T.T


# ------------------------------------------------------------------------------------------------------
# Learners
# ------------------------------------------------------------------------------------------------------


def cross_covariance(X: np.ndarray, T: np.ndarray) -> np.ndarray:
    """S = Σ_i (x_i − x̄)(t_i − t̄)ᵀ / (n − 1), the matrix through which the linear loss sees the data:
    [Σ_{i≠j} s_ij − (n−1) Σ_i s_ii] / (n(n−1)) = −⟨W_Iᵀ W_T, S⟩ for s_ij = x_iᵀ W_Iᵀ W_T t_j."""
    return (X - X.mean(0)).T @ (T - T.mean(0)) / (len(X) - 1)


def closed_form(S: np.ndarray, p: int, rho: float) -> np.ndarray:
    """The minimiser of −⟨A, S⟩ + ρ/2 ||A||_F² over A = W_Iᵀ W_T of rank ≤ p: SVD_p(S) / ρ (Eckart-Young)."""
    U, sv, Vt = np.linalg.svd(S, full_matrices=False)
    return (U[:, :p] * sv[:p]) @ Vt[:p] / rho


def _train_linear(spec: TheorySpec, S: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch gradient descent on L = −⟨W_Iᵀ W_T, S⟩ + ρ/2 ||W_Iᵀ W_T||_F², the linear loss of Nakada
    et al. in its exact cross-covariance form (the sum over sample pairs collapses to S; see
    `cross_covariance`). The step is linear_lr / σ₁(S): the loss's curvature at its optimum scales with
    σ₁(S), so one setting of linear_lr converges for any data scale and ρ."""
    p = spec.d_embed
    W_I = rng.standard_normal((p, S.shape[0])) * (spec.init_scale / S.shape[0] ** 0.5)
    W_T = rng.standard_normal((p, S.shape[1])) * (spec.init_scale / S.shape[1] ** 0.5)
    eta = spec.linear_lr / max(float(np.linalg.norm(S, 2)), 1e-12)
    for _ in range(spec.linear_steps):
        G = spec.rho * (W_I.T @ W_T) - S  # ∂L/∂(W_Iᵀ W_T)
        W_I, W_T = W_I - eta * (W_T @ G.T), W_T - eta * (W_I @ G)
    return W_I, W_T


class _Adam:
    """Plain Adam (Kingma & Ba; torch's defaults). torch.optim is avoided on purpose: its first use imports
    torch._dynamo, which costs ~2 s, longer than a whole simulation."""

    def __init__(
        self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999)
    ) -> None:
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, 1e-8, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, loss: torch.Tensor) -> None:
        grads = torch.autograd.grad(loss, self.params)
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, (v / c2).sqrt_().add_(self.eps), value=-self.lr / c1)


def _init(gen: torch.Generator, rows: int, cols: int, scale: float) -> torch.Tensor:
    w = torch.randn(rows, cols, generator=gen) * (scale / cols**0.5)
    return w.requires_grad_(True)


def _train_minibatch_contrastive(
    spec: TheorySpec, X: torch.Tensor, T: torch.Tensor, gen: torch.Generator, infonce: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    W_I = _init(gen, spec.d_embed, X.shape[1], spec.init_scale)
    W_T = _init(gen, spec.d_embed, T.shape[1], spec.init_scale)
    opt = _Adam([W_I, W_T], lr=spec.lr)
    B = min(spec.batch_size, X.shape[0])
    labels = torch.arange(B)
    for _ in range(spec.steps):
        idx = torch.randint(X.shape[0], (B,), generator=gen)
        f, g = X[idx] @ W_I.T, T[idx] @ W_T.T
        if infonce:
            f, g = F.normalize(f, dim=1), F.normalize(g, dim=1)
            logits = f @ g.T / spec.temperature
            loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
        else:
            # Spectral contrastive loss (HaoChen et al. 2021): -2 E[f(x)ᵀg(t)] + E_indep[(f(x)ᵀg(t'))²].
            sim = f @ g.T
            pos = sim.diagonal()
            loss = -2 * pos.mean() + (sim.pow(2).sum() - pos.pow(2).sum()) / (B * (B - 1))
        opt.step(loss)
    return W_I.detach(), W_T.detach()


def _train_supervised(
    spec: TheorySpec, X: torch.Tensor, y: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    W = _init(gen, spec.n_classes, X.shape[1], spec.init_scale)
    b = torch.zeros(spec.n_classes, requires_grad=True)
    opt = _Adam([W, b], lr=spec.lr)
    B = min(spec.batch_size, X.shape[0])
    for _ in range(spec.steps):
        idx = torch.randint(X.shape[0], (B,), generator=gen)
        loss = F.cross_entropy(X[idx] @ W.T + b, y[idx])
        if spec.sl_weight_decay:
            loss = loss + 0.5 * spec.sl_weight_decay * W.pow(2).sum()
        opt.step(loss)
    return W.detach(), b.detach()


# ------------------------------------------------------------------------------------------------------
# One simulated experiment
# ------------------------------------------------------------------------------------------------------


@dataclass
class _Data:
    world: _World
    train: _Sample
    test: _Sample  # spur_idx is the shifted one
    X_tr: np.ndarray
    T_tr: np.ndarray
    X_id: np.ndarray
    X_sh: np.ndarray
    Z_id: np.ndarray  # latent of the ID test images
    P: np.ndarray  # (K, d_text) prompts


def _data(spec: TheorySpec) -> _Data:
    rng = np.random.default_rng(spec.seed)
    world = _make_world(spec, rng)
    train = _sample(spec, world, rng, spec.n_train)
    X_tr, T_tr = _image(world, train), _caption(spec, world, train, rng)
    test = _sample(spec, world, rng, spec.n_test)
    X_id, Z_id = _image(world, test), _latent(world, test)
    test.spur_idx = _spurious_index(spec, rng, test.y, spec.shift)  # only the spurious part changes
    X_sh = _image(world, test)
    return _Data(world, train, test, X_tr, T_tr, X_id, X_sh, Z_id, _prompts(spec, world))


def _learner_seed(spec: TheorySpec, learner: Learner) -> int:
    # Keyed by the learner's fixed position, so its numbers do not depend on which others run, or in which
    # order.
    return spec.seed * len(ALL_LEARNERS) + ALL_LEARNERS.index(learner)


def _acc(pred: np.ndarray, y: np.ndarray) -> float:
    return round(100.0 * float(np.mean(pred == y)), 4)


def _linear_templates(spec: TheorySpec, d: _Data) -> np.ndarray:
    """Image-space class templates W_Iᵀ W_T p_k of the trained contrastive-linear learner, (d_image, K)."""
    S = cross_covariance(d.X_tr, d.T_tr)
    W_I, W_T = _train_linear(spec, S, np.random.default_rng(_learner_seed(spec, "contrastive-linear")))
    return W_I.T @ (W_T @ d.P.T)


Scorer = Callable[[np.ndarray], np.ndarray]


def _scorer(spec: TheorySpec, d: _Data, learner: Learner) -> Scorer:
    """A function image matrix -> class scores, for one trained learner."""
    if learner == "contrastive-linear":
        templ = _linear_templates(spec, d)
        return lambda X: X @ templ

    def tt(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32)

    gen = torch.Generator().manual_seed(_learner_seed(spec, learner))
    if learner == "supervised":
        W, b = _train_supervised(spec, tt(d.X_tr), torch.as_tensor(d.train.y), gen)
        Wn, bn = W.double().numpy(), b.double().numpy()
        return lambda X: X @ Wn.T + bn
    infonce = learner == "contrastive-infonce"
    W_I, W_T = _train_minibatch_contrastive(spec, tt(d.X_tr), tt(d.T_tr), gen, infonce=infonce)
    WIn, WTn = W_I.double().numpy(), W_T.double().numpy()
    g = d.P @ WTn.T
    if infonce:  # InfoNCE was trained on cosine similarity; the other losses on the raw inner product
        g = g / np.linalg.norm(g, axis=1, keepdims=True)

        def cosine(X: np.ndarray) -> np.ndarray:
            f = X @ WIn.T
            return (f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)) @ g.T

        return cosine
    return lambda X: X @ WIn.T @ g.T


def _single_threaded(fn: Any, spec: TheorySpec) -> Any:
    # The tensors are tiny (batch × ~64); intra-op threading costs far more than it saves here (measured
    # 5-20× slower with 2 threads on 2 cores), so run single-threaded and restore the caller's setting.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(spec)
    finally:
        torch.set_num_threads(threads)


def simulate(spec: TheorySpec) -> dict[str, Any]:
    """Train each learner on the same world and report ID accuracy, shifted accuracy and their drop (%)."""
    return dict(_single_threaded(_simulate, spec))


def _simulate(spec: TheorySpec) -> dict[str, Any]:
    d = _data(spec)
    results: dict[str, dict[str, float]] = {}
    for learner in spec.learners:
        score = _scorer(spec, d, learner)
        id_acc = _acc(score(d.X_id).argmax(1), d.test.y)
        shift_acc = _acc(score(d.X_sh).argmax(1), d.test.y)
        results[learner] = {"id_acc": id_acc, "shift_acc": shift_acc, "drop": round(id_acc - shift_acc, 4)}
    return {"spec": spec.model_dump(mode="json"), "results": results}


def sweep(base: TheorySpec, axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Run `simulate` over the cartesian product of `axes` (field name -> values); one row per setting."""
    valid = list(TheorySpec.model_fields)
    for name, values in axes.items():
        if name not in TheorySpec.model_fields:
            raise UserError(f"sweep: unknown field {name!r}; valid fields: {', '.join(valid)}")
        if not values:
            raise UserError(f"sweep: field {name!r} needs at least one value")
    names = list(axes)
    base_data = base.model_dump()
    # Validate every setting before running any, so a bad value fails fast.
    settings = [
        dict(zip(names, combo, strict=True)) for combo in itertools.product(*(axes[n] for n in names))
    ]
    specs = [validate(TheorySpec, {**base_data, **varied}, source="sweep") for varied in settings]
    return [
        {**varied, "results": simulate(spec)["results"]} for varied, spec in zip(settings, specs, strict=True)
    ]
