"""Supervised ImageNet-1k classifiers from torchvision and timm architectures with local weights, scored by
their own 1,000-way head, so CLIPs and ImageNet models are rows of one table (Wang et al., the
imagenet-testbed).

Specs (wherever `clipshift eval --model` takes one):

- `tv:ARCH:PATH` — `torchvision.models.get_model(ARCH)` as torchvision builds it for its ImageNet weights
  (the builder's own settings for them: GoogLeNet's and Inception-v3's `transform_input`, a ViT's image
  size), with the state dict read from PATH instead of downloaded. ARCH may also name the weights,
  `tv:ResNet50_Weights.IMAGENET1K_V1:PATH`; a plain ARCH takes the weights whose file name PATH has (as
  torchvision distributes them, e.g. `resnet50-0676ba61.pth`), else the architecture's DEFAULT weights.
  Preprocessing is those weights' own eval preset (`weights.transforms()`: e.g. resize the shorter side
  to 256 bilinear, center crop 224, ImageNet mean/std; ResNet-50's DEFAULT, IMAGENET1K_V2, resizes to 232).
- `timm:ARCH:PATH` — `timm.create_model(ARCH, pretrained=False, num_classes=1000)` with the state dict
  from PATH; ARCH may carry a pretrained tag (`resnet50.a1_in1k`), whose `pretrained_cfg` sets the
  preprocessing as timm's eval transform does (`resolve_data_config`: input size, interpolation,
  mean/std, resize to floor(size / crop_pct), center crop).

PATH is a state dict: `.safetensors`, or a `.pth`/`.pt` read with `torch.load(weights_only=True)` (also a
training checkpoint's `state_dict` / `model` entry; a `module.` prefix from DistributedDataParallel is
dropped). A pickled module is refused, never unpickled. Nothing is ever downloaded. Every problem (unknown
architecture, missing file, state dict that does not fit: counts of missing, unexpected and reshaped
keys) is one line.

The model is split into the features before its last linear layer (`visual`, what a linear probe and
kNN see) and that layer (`head.fc`), checked once on a random image to give the model's own logits.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clipshift.data.cache import INTERPOLATIONS, Resize
from clipshift.errors import UserError
from clipshift.models.factory import Classifier

TV = "tv:"
TIMM = "timm:"
PREFIXES = (TV, TIMM)
IMAGENET_1K = "imagenet-1k"  # the label space of these models' heads
N_CLASSES = 1000
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def is_imagenet_spec(spec: object) -> bool:
    """Does `spec` name a torchvision or timm ImageNet classifier (`tv:…`, `timm:…`)?"""
    return isinstance(spec, (str, Path)) and str(spec).startswith(PREFIXES)


@dataclass(frozen=True)
class Preprocess:
    """An ImageNet classifier's eval transform: resize (`resize`), center crop `image_size`, normalise."""

    image_size: int
    resize: Resize
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str  # where these settings come from

    def describe(self) -> str:
        how = "both sides" if self.resize.squash else "shorter side"
        return (
            f"{how} to {self.resize.shorter} px ({self.resize.interpolation}), "
            f"center crop {self.image_size}, "
            f"mean {tuple(round(m, 4) for m in self.mean)}, std {tuple(round(s, 4) for s in self.std)} "
            f"({self.source})"
        )


class ImageNetHead(nn.Module):
    """The model's last linear layer as a head (`fc`, as `clipshift.models.LinearHead` keeps it)."""

    def __init__(self, fc: nn.Linear):
        super().__init__()
        self.fc = fc

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)


class ImageNetClassifier(Classifier):
    """A torchvision / timm ImageNet classifier: `visual` gives the features before the last linear
    layer, `head.fc` is that layer (1,000 outputs in ImageNet-1k's class order)."""

    def __init__(self, visual: nn.Module, fc: nn.Linear, library: str, arch: str):
        super().__init__(visual, ImageNetHead(fc), "linear")
        self.library = library
        self.arch = arch


class _TimmFeatures(nn.Module):
    """A timm model up to its classifier: `forward_head(forward_features(x), pre_logits=True)`."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net: Any = self.net
        return net.forward_head(net.forward_features(x), pre_logits=True)


@dataclass
class LoadedClassifier:
    module: ImageNetClassifier
    preprocess: Preprocess
    path: Path  # the weights file, absolute
    name: str  # `tv:ARCH` / `timm:ARCH`, the result's model name


def parse_spec(spec: str, pretrained: str | Path | None = None) -> tuple[str, str, Path]:
    """(library prefix, ARCH, weights path) of `tv:ARCH:PATH` / `timm:ARCH:PATH` (or `tv:ARCH` with
    `pretrained` = PATH); the file must exist."""
    prefix = TV if spec.startswith(TV) else TIMM
    rest = spec[len(prefix) :]
    arch, sep, weights = rest.partition(":")
    if pretrained is not None:
        if sep:
            raise UserError(
                f"model {spec!r}: give the weights once (either {prefix}ARCH:PATH or --pretrained)"
            )
        weights = str(pretrained)
    if not arch or not weights:
        raise UserError(f"model {spec!r}: expected {prefix}ARCH:PATH (a local state dict file)")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"model {spec!r}: weights {weights!r} not found (a local state dict file)")
    return prefix, arch, path.resolve()


def load_imagenet_classifier(spec: str, pretrained: str | Path | None = None) -> LoadedClassifier:
    """The ImageNet classifier `spec` names (see the module doc), in eval mode, with its preprocessing."""
    prefix, arch, path = parse_spec(str(spec), pretrained)
    sd = read_state_dict(path)
    if prefix == TV:
        net, prep, arch = _torchvision(arch, path, sd)
        visual, fc = _split_torchvision(net, arch, prep.image_size)
        module = ImageNetClassifier(visual, fc, "torchvision", arch)
    else:
        net, prep = _timm(arch, path, sd)
        visual, fc = _split_timm(net, arch, prep.image_size)
        module = ImageNetClassifier(visual, fc, "timm", arch)
    return LoadedClassifier(module.eval(), prep, path, f"{prefix}{arch}")


# ----------------------------------------------------------------------------- reading the weights


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a state dict file (see the module doc); one line for anything else."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            sd: Any = load_file(str(path))
        except Exception as e:
            raise UserError(f"{str(path)!r}: not a readable .safetensors file ({type(e).__name__})") from e
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:  # weights_only refuses arbitrary objects (never unpickled)
            raise UserError(
                f"{str(path)!r}: holds pickled Python objects (a whole model, or a checkpoint with "
                "arguments), not a state dict; save torch.save(model.state_dict(), PATH) or .safetensors"
            ) from e
        except Exception as e:
            raise UserError(f"{str(path)!r}: not a readable state dict ({type(e).__name__})") from e
    if isinstance(sd, dict) and not _all_tensors(sd):
        for key in ("state_dict", "model"):  # timm's train.py / torchvision's reference scripts
            if isinstance(sd.get(key), dict) and _all_tensors(sd[key]):
                sd = sd[key]
                break
    if not (isinstance(sd, dict) and sd and _all_tensors(sd)):
        raise UserError(f"{str(path)!r}: not a state dict (a mapping of parameter names to tensors)")
    if all(k.startswith("module.") for k in sd):  # saved from DistributedDataParallel
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return dict(sd)


def _all_tensors(d: dict[Any, Any]) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def describe_mismatch(want: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> str | None:
    """Counts of missing, unexpected and reshaped keys, each with its first example; None if they fit."""
    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    reshaped = [k for k in want if k in got and tuple(got[k].shape) != tuple(want[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key{'s' * (len(missing) > 1)} (first {missing[0]!r})")
    if unexpected:
        parts.append(
            f"{len(unexpected)} unexpected key{'s' * (len(unexpected) > 1)} (first {unexpected[0]!r})"
        )
    if reshaped:
        k = reshaped[0]
        parts.append(
            f"{len(reshaped)} key{'s' * (len(reshaped) > 1)} of another shape (first {k!r}: "
            f"{tuple(got[k].shape)} in the file, {tuple(want[k].shape)} in the model)"
        )
    return ", ".join(parts) or None


def _mismatch_error(path: Path, what: str, problem: str) -> UserError:
    return UserError(f"{str(path)!r} does not fit {what}: {problem}")


# ----------------------------------------------------------------------------- torchvision

# auxiliary heads only used in training: torchvision's weights files hold them and its builders drop them
# after loading; a state dict saved from a built model lacks them, so they are filled from the model
_TV_AUX = ("aux1.", "aux2.", "AuxLogits.")


def _torchvision(arch: str, path: Path, sd: dict[str, torch.Tensor]) -> tuple[nn.Module, Preprocess, str]:
    """The torchvision model built for its ImageNet weights, the weights read from `sd`."""
    from unittest import mock

    import torchvision.models as tvm
    from torchvision.models._api import WeightsEnum

    weights: Any = None
    if "_Weights." in arch:
        try:
            weights = tvm.get_weight(arch)
        except Exception:
            raise UserError(
                f"tv:{arch}: not a torchvision weights name (e.g. ResNet50_Weights.IMAGENET1K_V1)"
            ) from None
        owners = [a for a in tvm.list_models(module=tvm) if tvm.get_model_weights(a) is type(weights)]
        if not owners:
            raise UserError(f"tv:{arch}: not the weights of a torchvision classification model")
        arch = owners[0]
    elif arch not in tvm.list_models(module=tvm):
        raise UserError(
            f"tv:{arch}: unknown torchvision classification architecture "
            "(torchvision.models.list_models(module=torchvision.models) lists them)"
        )
    else:
        try:
            members = list(tvm.get_model_weights(arch))
        except Exception:
            members = []
        named = [w for w in members if Path(w.url).name == path.name]
        weights = named[0] if named else (tvm.get_model_weights(arch).DEFAULT if members else None)
    if weights is None:  # an architecture without ImageNet weights: torchvision's classification preset
        net = tvm.get_model(arch, weights=None, num_classes=N_CLASSES)
        problem = describe_mismatch(net.state_dict(), sd)
        if problem:
            raise _mismatch_error(path, f"torchvision {arch}", problem)
        net.load_state_dict(sd)
        prep = Preprocess(224, Resize(256, "bilinear"), IMAGENET_MEAN, IMAGENET_STD, "torchvision's preset")
        return net.eval(), prep, arch
    if len(weights.meta.get("categories", ())) != N_CLASSES:
        raise UserError(f"tv:{arch}: {weights} is not an ImageNet-1k classifier")

    def local_state_dict(self: Any, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        # the builder calls `model.load_state_dict(weights.get_state_dict(...))`: hand it the local
        # file, checked against the model it built (found in the calling frame) for a one-line error
        import inspect

        frame = inspect.currentframe()
        caller = frame.f_back.f_locals if frame is not None and frame.f_back is not None else {}
        model = caller.get("model")
        if not isinstance(model, nn.Module):
            model = next((v for v in caller.values() if isinstance(v, nn.Module)), None)
        if model is None:
            return sd
        want = model.state_dict()
        full = {**{k: v for k, v in want.items() if k.startswith(_TV_AUX) and k not in sd}, **sd}
        problem = describe_mismatch(want, full)
        if problem:
            raise _mismatch_error(path, f"torchvision {arch} ({weights})", problem)
        return full

    try:
        with mock.patch.object(WeightsEnum, "get_state_dict", local_state_dict):
            net = tvm.get_model(arch, weights=weights)
    except UserError:
        raise
    except RuntimeError as e:  # torch's strict load, should the frame lookup above ever miss the model
        first = str(e).strip().splitlines()
        raise _mismatch_error(path, f"torchvision {arch}", " ".join(first[:2])[:300]) from e
    t: Any = weights.transforms()
    interp = str(getattr(t.interpolation, "value", t.interpolation))
    prep = Preprocess(
        int(t.crop_size[0]),
        Resize(int(t.resize_size[0]), interp),
        tuple(float(m) for m in t.mean),
        tuple(float(s) for s in t.std),
        f"torchvision {weights}.transforms()",
    )
    return net.eval(), prep, arch


def _split_torchvision(net: nn.Module, arch: str, size: int) -> tuple[nn.Module, nn.Linear]:
    """(the model with its last 1,000-way linear layer replaced by Identity, that layer)."""
    last = None
    for name, m in net.named_modules():
        if isinstance(m, nn.Linear) and m.out_features == N_CLASSES:
            last = name
    if last is None:
        raise UserError(f"tv:{arch}: its 1,000 outputs do not come from a final linear layer; not supported")
    x = _probe_image(size)
    with torch.inference_mode():
        logits = net(x)
    parent_name, _, child = last.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    fc = getattr(parent, child)
    setattr(parent, child, nn.Identity())
    _check_split(net, fc, x, logits, f"tv:{arch}")
    return net, fc


# ----------------------------------------------------------------------------- timm


def _timm(arch: str, path: Path, sd: dict[str, torch.Tensor]) -> tuple[nn.Module, Preprocess]:
    import timm
    from timm.data import resolve_data_config

    if not timm.is_model(arch):
        raise UserError(f"timm:{arch}: unknown timm architecture (timm.list_models() lists them)")
    try:
        net = timm.create_model(arch, pretrained=False, num_classes=N_CLASSES)
    except Exception as e:  # e.g. an unknown pretrained tag
        raise UserError(f"timm:{arch}: timm cannot build it ({str(e).strip().splitlines()[0][:200]})") from e
    problem = describe_mismatch(net.state_dict(), sd)
    if problem:
        raise _mismatch_error(path, f"timm {arch}", problem)
    net.load_state_dict(sd)
    cfg = resolve_data_config({}, model=net)
    h, w = (int(v) for v in cfg["input_size"][-2:])
    if h != w:
        raise UserError(f"timm:{arch}: non-square input size {h}x{w} is not supported")
    mode = str(cfg.get("crop_mode") or "center")
    if mode not in ("center", "squash"):
        raise UserError(f"timm:{arch}: crop_mode {mode!r} is not supported (center and squash are)")
    interp = str(cfg.get("interpolation") or "bilinear")
    if interp not in INTERPOLATIONS:
        raise UserError(f"timm:{arch}: interpolation {interp!r} is not supported")
    crop_pct = float(cfg.get("crop_pct") or 0.875)  # timm's DEFAULT_CROP_PCT
    tag = getattr(net, "pretrained_cfg", {}).get("tag")
    prep = Preprocess(
        h,
        Resize(math.floor(h / crop_pct), interp, squash=mode == "squash"),
        tuple(float(m) for m in cfg["mean"]),
        tuple(float(s) for s in cfg["std"]),
        f"timm's pretrained_cfg of {arch} (tag {tag}): crop_pct {crop_pct}, crop_mode {mode}",
    )
    return net.eval(), prep


def _split_timm(net: nn.Module, arch: str, size: int) -> tuple[nn.Module, nn.Linear]:
    """(pre-logit features, the classifier as a linear layer); a 1x1 convolution becomes its Linear."""
    get: Any = getattr(net, "get_classifier", None)
    head = get() if callable(get) else None
    if isinstance(head, nn.Conv2d) and head.kernel_size == (1, 1) and head.groups == 1:
        fc = nn.Linear(head.in_channels, head.out_channels, bias=head.bias is not None)
        with torch.no_grad():
            fc.weight.copy_(head.weight.flatten(1))
            if head.bias is not None:
                fc.bias.copy_(head.bias)
        head = fc
    if not (isinstance(head, nn.Linear) and head.out_features == N_CLASSES):
        raise UserError(f"timm:{arch}: its classifier is not one 1,000-way linear layer; not supported")
    x = _probe_image(size)
    with torch.inference_mode():
        logits = net(x)
    visual = _TimmFeatures(net)
    _check_split(visual, head, x, logits, f"timm:{arch}")
    return visual, head


# ----------------------------------------------------------------------------- the split's check


def _probe_image(size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn((1, 3, size, size), generator=g)


def _check_split(visual: nn.Module, fc: nn.Linear, x: torch.Tensor, logits: torch.Tensor, name: str) -> None:
    """head(visual(x)) must be the whole model's logits (else the split is wrong: refuse, do not guess)."""
    with torch.inference_mode():
        feats = visual(x)
        ok = feats.dim() == 2 and feats.shape[1] == fc.in_features
        again = fc(feats) if ok else None
    tol = 1e-4 * max(1.0, float(logits.abs().max()))
    if again is None or again.shape != logits.shape or float((again - logits).abs().max()) > tol:
        raise UserError(
            f"{name}: its last linear layer applied to the features before it does not give the model's "
            "logits (a head with more than one layer?); not supported"
        )


__all__ = [
    "IMAGENET_1K",
    "PREFIXES",
    "TIMM",
    "TV",
    "ImageNetClassifier",
    "LoadedClassifier",
    "Preprocess",
    "describe_mismatch",
    "is_imagenet_spec",
    "load_imagenet_classifier",
    "read_state_dict",
]
