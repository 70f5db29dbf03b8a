"""Latent-feature simulator of contrastive vs supervised learning under distribution shift.

Follows the setting of Xue et al. (ICLR 2024), "Understanding the Robustness of Multi-modal Contrastive
Learning to Distribution Shift": linear encoders over a latent z = [core; spurious; details; noise], an
image view x = D_I z + ξ and a caption view t = D_T (annotated part of z) + ξ'. The paper's exact constants
are not known, so every constant is a field of `TheorySpec`; nothing here is tuned towards a verdict.

Variance reduction: the shifted test set is the ID test set with only the spurious part re-drawn (same
labels, core, details, noise and pixel noise), so `drop` measures the effect of the shift itself rather
than the difference between two independent samples.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from clipshift.configio import validate
from clipshift.errors import UserError

Learner = Literal["contrastive-linear", "contrastive-infonce", "supervised"]
ALL_LEARNERS: tuple[Learner, ...] = get_args(Learner)


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
    core_std: float = Field(default=1.0, ge=0, le=1000, description="per-instance std of core features")
    spurious_strength: float = Field(
        default=2.0, ge=0, le=1000, description="norm of each spurious vector s_k"
    )
    spurious_std: float = Field(
        default=0.1, ge=0, le=1000, description="per-instance std of the spurious part"
    )
    p_spurious: float = Field(default=0.9, ge=0, le=1, description="P(spurious part = s_label) in training")
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
    image_noise: float = Field(default=0.1, ge=0, le=1000, description="std of isotropic pixel noise ξ")
    text_noise: float = Field(default=0.1, ge=0, le=1000, description="std of isotropic caption noise ξ'")
    caption_richness: float = Field(
        default=0.5, ge=0, le=1, description="P(a detail is annotated in the caption)"
    )
    annotate_spurious: float = Field(default=0.0, ge=0, le=1, description="P(spurious part is annotated)")

    # --- test-time shift ------------------------------------------------------------------------------
    shift: Literal["decorrelated", "flipped"] = "decorrelated"

    # --- zero-shot prompts ----------------------------------------------------------------------------
    prompt: Literal["core", "class-details"] = Field(
        default="core",
        description="'core': prompt_k = D_T [μ_k; 0; 0; 0]; 'class-details': also the class's expected "
        "annotated details, caption_richness × E[details | k], so prompts look like training captions",
    )

    # --- learning -------------------------------------------------------------------------------------
    learners: list[Learner] = Field(default_factory=lambda: list(ALL_LEARNERS), min_length=1)
    d_embed: int = Field(
        default=16, ge=1, le=4096, description="embedding dimension of the contrastive encoders"
    )
    n_train: int = Field(default=4000, ge=2, le=10_000_000)
    n_test: int = Field(default=2000, ge=1, le=10_000_000)
    steps: int = Field(default=300, ge=1, le=1_000_000)
    batch_size: int = Field(default=256, ge=2, le=1_000_000)
    lr: float = Field(default=0.01, gt=0, le=10)
    temperature: float = Field(default=0.1, gt=0, le=100, description="InfoNCE temperature")
    reg: float = Field(default=0.0, ge=0, le=1e6, description="weight of the Frobenius regulariser")
    reg_kind: Literal["product", "weights"] = Field(
        default="product", description="regularise ||W_Iᵀ W_T||_F² ('product') or ||W_I||_F² + ||W_T||_F²"
    )
    init_scale: float = Field(
        default=0.1, gt=0, le=100, description="std of the initial weights × sqrt(fan-in)"
    )
    sl_weight_decay: float = Field(default=0.0, ge=0, le=1e6, description="L2 penalty of the supervised head")

    @field_validator("learners")
    @classmethod
    def _unique_learners(cls, v: list[Learner]) -> list[Learner]:
        if len(set(v)) != len(v):
            raise ValueError("learners must not repeat")
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
    core: np.ndarray
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
    if mode == "train":
        aligned = rng.random(n) < spec.p_spurious
        return np.where(aligned, y, rng.integers(K, size=n))
    if mode == "decorrelated":
        return rng.integers(K, size=n)
    return (y + rng.integers(1, K, size=n)) % K  # any class but the label


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
        core=world.mu[y] + spec.core_std * rng.standard_normal((n, spec.d_core)),
        spur_idx=_spurious_index(spec, rng, y, "train"),
        spur_noise=spec.spurious_std * rng.standard_normal((n, spec.d_spur)),
        det_each=det_each,
        noise=spec.noise_std * rng.standard_normal((n, spec.d_noise)),
        pix_noise=spec.image_noise * rng.standard_normal((n, spec.d_image)),
    )


def _image(world: _World, smp: _Sample) -> np.ndarray:
    z = np.concatenate(
        [smp.core, world.s[smp.spur_idx] + smp.spur_noise, smp.det_each.sum(1), smp.noise], axis=1
    )
    return z @ world.D_I.T + smp.pix_noise


def _caption(spec: TheorySpec, world: _World, smp: _Sample, rng: np.random.Generator) -> np.ndarray:
    n = len(smp.y)
    keep_det = rng.random((n, spec.n_details, 1)) < spec.caption_richness
    keep_spur = rng.random((n, 1)) < spec.annotate_spurious
    z = np.concatenate(
        [
            smp.core,  # the instance's own core features, always annotated
            keep_spur * (world.s[smp.spur_idx] + smp.spur_noise),
            (smp.det_each * keep_det).sum(1),
            np.zeros((n, spec.d_noise)),
        ],
        axis=1,
    )
    return z @ world.D_T.T + spec.text_noise * rng.standard_normal((n, spec.d_text))


def _prompts(spec: TheorySpec, world: _World) -> np.ndarray:
    """Class captions for zero-shot prediction: D_T [μ_k; 0; 0; 0], optionally with expected details."""
    z = np.zeros((spec.n_classes, spec.d_z))
    z[:, : spec.d_core] = world.mu
    if spec.prompt == "class-details":
        lo = spec.d_core + spec.d_spur
        expected = np.einsum("kiv,ivd->kd", world.detail_probs, world.detail_vecs)
        z[:, lo : lo + spec.d_detail] = spec.caption_richness * expected
    return z @ world.D_T.T


# ------------------------------------------------------------------------------------------------------
# Learners
# ------------------------------------------------------------------------------------------------------


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


def _train_contrastive(
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
            # Linearised contrastive loss: -2 E[f(x)ᵀg(t)] + E_indep[(f(x)ᵀg(t'))²], in-batch negatives.
            sim = f @ g.T
            pos = sim.diagonal()
            loss = -2 * pos.mean() + (sim.pow(2).sum() - pos.pow(2).sum()) / (B * (B - 1))
        if spec.reg:
            if spec.reg_kind == "product":
                loss = loss + 0.5 * spec.reg * (W_I.T @ W_T).pow(2).sum()
            else:
                loss = loss + 0.5 * spec.reg * (W_I.pow(2).sum() + W_T.pow(2).sum())
        opt.step(loss)
    return W_I.detach(), W_T.detach()


def _zero_shot(
    W_I: torch.Tensor, W_T: torch.Tensor, X: torch.Tensor, P: torch.Tensor, cosine: bool
) -> torch.Tensor:
    f, g = X @ W_I.T, P @ W_T.T
    if cosine:  # InfoNCE was trained on cosine similarity; the linear loss on the raw inner product
        f, g = F.normalize(f, dim=1), F.normalize(g, dim=1)
    return (f @ g.T).argmax(1)


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
# Public API
# ------------------------------------------------------------------------------------------------------


def _acc(pred: torch.Tensor, y: torch.Tensor) -> float:
    return round(100.0 * float((pred == y).double().mean()), 4)


def simulate(spec: TheorySpec) -> dict[str, Any]:
    """Train each learner on the same world and report ID accuracy, shifted accuracy and their drop (%)."""
    # The tensors are tiny (batch × ~64); intra-op threading costs far more than it saves here (measured
    # 5-20× slower with 2 threads on 2 cores), so run single-threaded and restore the caller's setting.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _simulate(spec)
    finally:
        torch.set_num_threads(threads)


def _simulate(spec: TheorySpec) -> dict[str, Any]:
    rng = np.random.default_rng(spec.seed)
    world = _make_world(spec, rng)
    train = _sample(spec, world, rng, spec.n_train)
    X_tr, T_tr = _image(world, train), _caption(spec, world, train, rng)
    test = _sample(spec, world, rng, spec.n_test)
    X_id = _image(world, test)
    test.spur_idx = _spurious_index(spec, rng, test.y, spec.shift)  # only the spurious part changes
    X_sh = _image(world, test)

    def tt(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32)

    Xtr, Ttr, Xid, Xsh, P = tt(X_tr), tt(T_tr), tt(X_id), tt(X_sh), tt(_prompts(spec, world))
    ytr, yte = torch.as_tensor(train.y), torch.as_tensor(test.y)

    results: dict[str, dict[str, float]] = {}
    for learner in spec.learners:
        # One generator per learner, keyed by its fixed position, so a learner's numbers do not depend
        # on which other learners run or in which order.
        gen = torch.Generator().manual_seed(spec.seed * len(ALL_LEARNERS) + ALL_LEARNERS.index(learner))
        if learner == "supervised":
            W, b = _train_supervised(spec, Xtr, ytr, gen)
            pred_id, pred_sh = (Xid @ W.T + b).argmax(1), (Xsh @ W.T + b).argmax(1)
        else:
            cosine = learner == "contrastive-infonce"
            W_I, W_T = _train_contrastive(spec, Xtr, Ttr, gen, infonce=cosine)
            pred_id = _zero_shot(W_I, W_T, Xid, P, cosine)
            pred_sh = _zero_shot(W_I, W_T, Xsh, P, cosine)
        id_acc, shift_acc = _acc(pred_id, yte), _acc(pred_sh, yte)
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
