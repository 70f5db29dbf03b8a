"""The model under evaluation: a CLIP model (zero-shot) or a classifier (its head), loaded from a run
directory, an open_clip architecture + local checkpoint, or a torchvision / timm ImageNet classifier
(`tv:ARCH:PATH`, `timm:ARCH:PATH`); batched image features and cached zero-shot classifier weights."""

from __future__ import annotations

import hashlib
import json
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from clipshift.errors import UserError

if TYPE_CHECKING:
    from clipshift.data.cache import Resize

DEFAULT_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's, the open_clip default
DEFAULT_STD = (0.26862954, 0.26130258, 0.27577711)
# zero-shot weights by (weights, class names, templates); bounded: a long session evaluating many models
# must not keep every classifier it ever built
_ZS_CACHE: OrderedDict[str, torch.Tensor] = OrderedDict()
ZS_CACHE_SIZE = 64


@dataclass
class EvalModel:
    """`kind` 'clip' (zero-shot through `tokenizer`) or 'classifier' (`module.head`); `class_names` is
    a classifier's training label space when known (final.json); `key` identifies the weights (path,
    size, mtime) for caches; `cache_dir` holds zero-shot weights on disk (a run's eval_cache/);
    `feature_cache` (None: off) keeps image features on disk for reuse (an evaluation study's).

    `family` groups models in reports: 'clip', 'classifier' (clipshift's supervised runs) or
    'imagenet_classifier' (torchvision / timm, `clipshift.models.imagenet`). `label_space` 'imagenet-1k'
    says the head's outputs are ImageNet-1k's classes in index order (a set is then scored through its
    mapping to them); `resize` is how files are resized before the center crop (None: CLIP's)."""

    module: nn.Module
    kind: str
    tokenizer: Any
    name: str
    pretrained: str
    image_size: int
    mean: tuple[float, ...] = DEFAULT_MEAN
    std: tuple[float, ...] = DEFAULT_STD
    class_names: list[str] | None = None
    key: str = ""
    cache_dir: Path | None = None
    channels_last: bool = True
    info: dict[str, Any] = field(default_factory=dict)
    family: str = ""  # default: `kind`
    label_space: str | None = None
    resize: Resize | None = None
    feature_cache: Any = None  # an `evaluate.features.FeatureCache`: image features reused across calls

    def __post_init__(self) -> None:
        if not self.family:
            self.family = self.kind

    @property
    def device(self) -> torch.device:
        """Where the towers run (the CPU unless an evaluation study's run moved them: `device`)."""
        p = next(self.module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def n_outputs(self) -> int:
        return int(self.head_weights().shape[0])

    def head_weights(self) -> torch.Tensor:
        """A classifier's class prototypes / weight rows (C, D)."""
        head: Any = getattr(self.module, "head", None)
        if head is None:
            raise UserError("a CLIP model has no classifier head")
        if hasattr(head, "fc"):
            return head.fc.weight.detach().cpu()
        return head.prototypes().detach().cpu()


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _image_size(model: nn.Module) -> int:
    size = getattr(model.visual, "image_size", None) if hasattr(model, "visual") else None
    if isinstance(size, (tuple, list)):
        size = size[0]
    if not isinstance(size, int):
        raise UserError("cannot tell the model's input resolution")
    return size


def _norm(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    pp = getattr(getattr(model, "visual", None), "preprocess_cfg", None) or {}
    return tuple(pp.get("mean", DEFAULT_MEAN)), tuple(pp.get("std", DEFAULT_STD))


def open_model(spec: str | Path, pretrained: str | None = None) -> EvalModel:
    """A run directory or checkpoint file (`spec`), `ARCH:PATH`, or `ARCH` with `pretrained` = PATH
    (resolved by `clipshift.models.checkpoints.resolve_checkpoint`), or an ImageNet classifier
    `tv:ARCH:PATH` / `timm:ARCH:PATH` (`clipshift.models.imagenet`; `tv:ARCH` with `pretrained`).

    Weights are local files only: a hub tag or URL is refused by the resolver in one line."""
    from clipshift.models.checkpoints import load_model, resolve_checkpoint
    from clipshift.models.imagenet import is_imagenet_spec

    if is_imagenet_spec(spec):
        return open_imagenet_classifier(str(spec), pretrained)
    ck = resolve_checkpoint(spec, pretrained)
    module, tok = load_model(ck)
    return _wrap(module, tok, ck.arch, ck.path, ck.run_dir)


def _wrap(module: nn.Module, tokenizer: Any, name: str, ckpt: Path, run_dir: Path | None) -> EvalModel:
    from clipshift.models.factory import Classifier

    kind = "classifier" if isinstance(module, Classifier) else "clip"
    module.eval()
    mean, std = _norm(module)
    class_names = None
    if run_dir is not None and (run_dir / "final.json").is_file():
        try:
            rec = json.loads((run_dir / "final.json").read_text())
        except ValueError:
            rec = {}
        names = rec.get("class_names") if isinstance(rec, dict) else None
        if isinstance(names, list) and names:
            class_names = [str(n) for n in names]
    cache_dir = run_dir / "eval_cache" if run_dir is not None else None
    module = module.to(memory_format=torch.channels_last)  # NHWC convolutions are faster on CPU
    return EvalModel(
        module=module,
        kind=kind,
        tokenizer=tokenizer,
        name=name,
        pretrained=str(ckpt),
        image_size=_image_size(module),
        mean=mean,
        std=std,
        class_names=class_names,
        key=_file_key(ckpt),
        cache_dir=cache_dir,
    )


def open_imagenet_classifier(spec: str, pretrained: str | None = None) -> EvalModel:
    """A torchvision / timm ImageNet classifier with its own preprocessing (`clipshift.models.imagenet`)."""
    from clipshift.models.imagenet import IMAGENET_1K, load_imagenet_classifier

    loaded = load_imagenet_classifier(spec, pretrained)
    prep = loaded.preprocess
    module = loaded.module.to(memory_format=torch.channels_last)
    return EvalModel(
        module=module,
        kind="classifier",
        tokenizer=None,
        name=loaded.name,
        pretrained=str(loaded.path),
        image_size=prep.image_size,
        mean=prep.mean,
        std=prep.std,
        key=_file_key(loaded.path),
        info={"library": loaded.module.library, "preprocess": prep.describe()},
        family="imagenet_classifier",
        label_space=IMAGENET_1K,
        resize=prep.resize,
    )


def from_module(
    module: nn.Module, tokenizer: Any = None, name: str = "model", class_names: list[str] | None = None
) -> EvalModel:
    """Wrap an in-memory model (tests, benchmarks); zero-shot weights are cached in memory only, keyed by
    the content of its weights (`weights_key`), so a model trained further, or another model at the same
    address, never gets stale weights."""
    from clipshift.models.factory import Classifier

    module.eval()
    mean, std = _norm(module)
    return EvalModel(
        module=module,
        kind="classifier" if isinstance(module, Classifier) else "clip",
        tokenizer=tokenizer,
        name=name,
        pretrained="",
        image_size=_image_size(module),
        mean=mean,
        std=std,
        class_names=class_names,
        key="",  # in memory: zeroshot_weights keys on the weights' content
    )


def weights_key(module: nn.Module) -> str:
    """A digest of a module's parameters and buffers (names, shapes, dtypes and values)."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# features


@torch.inference_mode()
def image_features(
    model: EvalModel, images: Any, batch_size: int = 512, progress: bool = False, desc: str = "eval"
) -> torch.Tensor:
    """(N, D) float32 features of uint8 images (N, 3, S, S): L2-normalised image embeddings for CLIP,
    the image tower's output for a classifier. Pixels are normalised exactly as torchvision's ToTensor +
    Normalize do (x / 255, − mean, / std), so CLIP_benchmark on PNGs of the same images sees the same
    input tensors."""
    n = int(images.shape[0])
    s = int(images.shape[-1])
    if s != model.image_size:
        raise UserError(f"images are {s} px but the model takes {model.image_size} px")
    cache = model.feature_cache
    key = cache.key(model, images, batch_size) if cache is not None else None
    if key is not None:
        hit = cache.load(key)
        if hit is not None and hit.shape[0] == n:
            return hit
    out = _image_features(model, images, n, batch_size, progress, desc)
    if key is not None:
        cache.save(key, out)
    return out


def _image_features(
    model: EvalModel, images: Any, n: int, batch_size: int, progress: bool, desc: str
) -> torch.Tensor:
    from tqdm import tqdm

    device = model.device
    mean = torch.tensor(model.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(model.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    encode = image_encoder(model)
    out: torch.Tensor | None = None
    bar = tqdm(total=n, desc=desc, unit="img", disable=not progress, file=sys.stderr, leave=False)
    for lo in range(0, n, batch_size):
        chunk = images[lo : lo + batch_size]
        x = chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.array(chunk))  # memmap: copy
        x = x.to(device).float().div_(255).sub_(mean).div_(std)  # uint8 crosses to a GPU: 4x fewer bytes
        if model.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        f = encode(x)
        if out is None:
            out = torch.empty((n, f.shape[1]), dtype=torch.float32)
        out[lo : lo + len(f)] = f.float().cpu()
        bar.update(len(f))
    bar.close()
    return out if out is not None else torch.zeros((0, 1))


def _rewritable(model: EvalModel) -> bool:
    """Whether `image_encoder` runs `clipshift.models.inference`'s rewrite of the image tower: a tower
    it applies to, behind open_clip's own encode_image (L2-normalised visual output) or a clipshift
    classifier's tower."""
    from open_clip.model import CLIP, CustomTextCLIP

    from clipshift.models.factory import Classifier
    from clipshift.models.inference import can_rewrite

    module = model.module
    visual = getattr(module, "visual", None)
    if visual is None or not can_rewrite(visual):
        return False
    if model.kind == "clip":
        return getattr(type(module), "encode_image", None) in (CLIP.encode_image, CustomTextCLIP.encode_image)
    return isinstance(module, Classifier)


def inference_tag(model: EvalModel) -> str | None:
    """The rewrite `image_encoder` applies to `model` (None: the model's own forward), for cache keys."""
    from clipshift.models.inference import REWRITE

    return REWRITE if _rewritable(model) else None


def image_encoder(model: EvalModel) -> Any:
    """x (normalised pixels) -> features, as `image_features` defines them. Built per call, so a model
    whose weights changed since (a training run's snapshots) is never scored with stale ones."""
    from clipshift.models.inference import for_inference

    module: Any = model.module
    if _rewritable(model):
        fast = for_inference(module.visual, channels_last=model.channels_last)
        if model.kind == "clip":
            return lambda x: torch.nn.functional.normalize(fast(x), dim=-1)
        return fast
    if model.kind == "clip":
        return lambda x: module.encode_image(x, normalize=True)
    return module.visual


@torch.inference_mode()
def text_features(model: EvalModel, texts: list[str], batch_size: int = 1024) -> torch.Tensor:
    """(T, D) L2-normalised text embeddings."""
    module: Any = model.module
    dev = model.device
    chunks = [
        module.encode_text(model.tokenizer(texts[i : i + batch_size]).to(dev), normalize=True).float().cpu()
        for i in range(0, len(texts), batch_size)
    ]
    return torch.cat(chunks) if chunks else torch.zeros((0, 1))


def zeroshot_weights(model: EvalModel, class_names: list[str], templates: list[str]) -> torch.Tensor:
    """(C, D) zero-shot classifier: per class, the renormalised mean of its normalised template
    embeddings (CLIP's prompt ensemble). Cached in memory (bounded) and, for run directories, on disk
    under `<run>/eval_cache/`, keyed by the weights (a checkpoint's path, size and mtime; an in-memory
    model's content), class names and templates."""
    from clipshift.models.factory import class_text_embeddings

    if model.kind != "clip":
        raise UserError("zero-shot classification needs a CLIP model (this is a classifier)")
    key = model.key or f"weights:{weights_key(model.module)}"
    # another device computes other weights (other kernels); the CPU's entries keep their names
    at = [] if model.device.type == "cpu" else [str(model.device)]
    digest = hashlib.sha256(
        json.dumps([key, class_names, templates, *at], ensure_ascii=False).encode()
    ).hexdigest()[:24]
    hit = _ZS_CACHE.get(digest)
    if hit is not None:
        _ZS_CACHE.move_to_end(digest)
        return hit
    path = model.cache_dir / f"zeroshot-{digest}.pt" if model.cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            w = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(w, torch.Tensor) and w.shape[0] == len(class_names):
                _remember(digest, w)
                return w
        except Exception:
            pass  # a damaged cache file is recomputed
    with torch.inference_mode():
        w = class_text_embeddings(model.module, model.tokenizer, class_names, templates).cpu().clone()
    _remember(digest, w)
    if path is not None:
        from clipshift.train.checkpoint import atomic_save

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_save(w, path)
        except OSError:
            pass  # a read-only run directory still evaluates; only the cache is lost
    return w


def _remember(digest: str, w: torch.Tensor) -> None:
    _ZS_CACHE[digest] = w
    while len(_ZS_CACHE) > ZS_CACHE_SIZE:
        _ZS_CACHE.popitem(last=False)
