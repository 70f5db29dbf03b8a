"""`clipshift theory --explain`: the closed-form pieces behind contrastive-linear's result (which directions
of the image-caption cross-covariance it keeps, how much of each latent block they hold, what carries the
class scores), computed from the same data and learners as `simulator.simulate`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from clipshift.theory.simulator import (
    BLOCKS,
    TheorySpec,
    _acc,
    _Data,
    _data,
    _latent,
    _learner_seed,
    _linear_templates,
    _single_threaded,
    _train_supervised,
    closed_form,
    cross_covariance,
)


def _block_energy(spec: TheorySpec, D: np.ndarray, vecs: np.ndarray) -> dict[str, list[float]]:
    """Per column of `vecs` (unit vectors in a view's space), the share of its energy in each latent block
    (through D's orthonormal columns) and in the rest of the view's space ('other': pure pixel/text noise)."""
    lat = D.T @ vecs
    out = {b: (lat[spec.block(b)] ** 2).sum(0).tolist() for b in BLOCKS}
    out["other"] = (1 - (lat**2).sum(0)).clip(0).tolist()
    return out


def _score_share(spec: TheorySpec, d: _Data, templates: np.ndarray) -> dict[str, float]:
    """How much of the class-score variation on the ID test images each latent block carries: the sum of
    squares of each block's contribution z_B · (D_Iᵀ t_k)_B, centred over classes (a shift common to all
    classes does not change the argmax) and over images, as a share of the total over blocks."""
    t = templates - templates.mean(1, keepdims=True)
    lat_t = d.world.D_I.T @ t  # (d_z, K)
    parts = {b: d.Z_id[:, spec.block(b)] @ lat_t[spec.block(b)] for b in BLOCKS}
    parts["other"] = d.test.pix_noise @ t
    ss = {b: float(((c - c.mean(0)) ** 2).sum()) for b, c in parts.items()}
    total = sum(ss.values()) or 1.0
    return {b: round(v / total, 4) for b, v in ss.items()}


def explain(spec: TheorySpec) -> dict[str, Any]:
    """The closed-form pieces behind contrastive-linear's result for `spec`: the singular values of the
    image-caption cross-covariance S, how much of each latent block the kept top-p subspaces capture, the
    latent cross-covariance of the image with the caption's class-name direction, the share of the class
    scores each block carries (beside the supervised learner's, for comparison), and the closed form's and
    the trained learner's accuracies."""
    return dict(_single_threaded(_explain, spec))


def _explain(spec: TheorySpec) -> dict[str, Any]:
    d = _data(spec)
    S = cross_covariance(d.X_tr, d.T_tr)
    U, sv, Vt = np.linalg.svd(S, full_matrices=False)
    p = min(spec.d_embed, len(sv))
    A = closed_form(S, p, spec.rho)
    cf = A @ d.P.T
    trained = _linear_templates(spec, d)
    img_dirs, txt_dirs = (
        _block_energy(spec, d.world.D_I, U[:, :p]),
        _block_energy(spec, d.world.D_T, Vt[:p].T),
    )

    def capture(D: np.ndarray, basis: np.ndarray) -> dict[str, float]:
        # the share of each block's latent dimensions that lies in the kept subspace
        out = {}
        for b in BLOCKS:
            cols = D[:, spec.block(b)]
            out[b] = round(float(((basis.T @ cols) ** 2).sum()) / cols.shape[1], 4)
        return out

    # Latent cross-covariance of the image blocks with the caption's class-name coordinates (core block of
    # z_T), on the training pairs: with the core-only prompt, class k's image template is
    # D_I Cov(z, core_T) μ_k / ρ when nothing is truncated.
    Zc = _latent(d.world, d.train)
    Zc = Zc - Zc.mean(0)
    coreT = d.T_tr @ d.world.D_T[:, spec.block("core")]
    coreT = coreT - coreT.mean(0)
    C = Zc.T @ coreT / (len(Zc) - 1)
    cov_with_class_name = {b: round(float(np.linalg.norm(C[spec.block(b)])), 4) for b in BLOCKS}

    y, X_id, X_sh = d.test.y, d.X_id, d.X_sh
    out: dict[str, Any] = {
        "spec": spec.model_dump(mode="json"),
        "p": p,
        "rho": spec.rho,
        "singular_values": [round(float(v), 4) for v in sv[: p + 4]],
        "kept_directions": [
            {
                "sigma": round(float(sv[i]), 4),
                "image": {b: round(v[i], 3) for b, v in img_dirs.items()},
                "caption": {b: round(v[i], 3) for b, v in txt_dirs.items()},
            }
            for i in range(p)
        ],
        "capture_image": capture(d.world.D_I, U[:, :p]),
        "capture_caption": capture(d.world.D_T, Vt[:p].T),
        "cov_with_class_name": cov_with_class_name,
        "score_share": {"contrastive-linear": _score_share(spec, d, cf)},
        "closed_form": _accs(cf, X_id, X_sh, y),
        "trained": _accs(trained, X_id, X_sh, y),
        "trained_vs_closed_form": round(
            float(np.linalg.norm(X_id @ (trained - cf)) / np.linalg.norm(X_id @ cf)), 6
        ),
    }
    if "supervised" in spec.learners:
        gen = torch.Generator().manual_seed(_learner_seed(spec, "supervised"))
        W, _ = _train_supervised(
            spec, torch.as_tensor(d.X_tr, dtype=torch.float32), torch.as_tensor(d.train.y), gen
        )
        out["score_share"]["supervised"] = _score_share(spec, d, W.double().numpy().T)
    return out


def _accs(templates: np.ndarray, X_id: np.ndarray, X_sh: np.ndarray, y: np.ndarray) -> dict[str, float]:
    i, s = _acc((X_id @ templates).argmax(1), y), _acc((X_sh @ templates).argmax(1), y)
    return {"id_acc": i, "shift_acc": s, "drop": round(i - s, 4)}
