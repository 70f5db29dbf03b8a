"""One checkpoint resolver: what a model spec names, and how to load it.

A spec is a clipshift run directory (its `checkpoints/final.pt`), a checkpoint file, `ARCH:PATH`
(equivalently ARCH with `pretrained=PATH`) for any open_clip architecture with local weights, an
open_clip snapshot folder as the Hugging Face hub keeps them (`open_clip_config.json` +
`open_clip_model.safetensors` or `open_clip_pytorch_model.bin`; read by open_clip's own `local-dir:`
loader), `hf-hub:ORG/NAME`, resolved from the local Hugging Face cache only, or an OpenAI TorchScript
archive as OpenAI distributed them (`RN50.pt`, `ViT-B-32.pt`; the architecture is read off its weights).
Files may be clipshift checkpoints (`{'state_dict', 'name', 'kind'}`), plain open_clip state dicts,
open_clip_train checkpoints (`{'epoch', 'state_dict': {'module.…'}}`) or `.safetensors`; open_clip's own
loader reads the last three, so they need the architecture from ARCH:PATH (or a run's saved config).
Weights are local files only: a hub tag or URL is refused in one line, never fetched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from clipshift.errors import UserError
from clipshift.models.factory import (
    Classifier,
    CosineHead,
    LinearHead,
    ModelConfig,
    _base_config,
    _check_pretrained,
    _create,
    _describe_mismatch,
    _image_only,
    _mismatch_message,
    build_clip,
    open_clip_config,
)
from clipshift.models.registry import DEFAULT_MODEL, list_models, register_configs
from clipshift.models.text import OpenClipTokenizer, Tokenizer, tokenizer_from_state

Kind = Literal["clip", "classifier"]


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """A model spec resolved: the weights file, what it holds and the architecture to build."""

    path: Path  # the weights file, absolute
    kind: Kind  # 'clip' (image and text towers) or 'classifier' (image tower + head)
    arch: str  # open_clip architecture name
    arch_given: bool  # ARCH:PATH: built from open_clip's config of `arch`, not from a run's saved files
    run_dir: Path | None  # the run directory the spec named (None when it named a file)
    snapshot: Path | None = None  # an open_clip snapshot folder (its config and weights file)
    torchscript: bool = False  # an OpenAI TorchScript archive

    @property
    def home(self) -> Path:
        """The folder of the run the file belongs to (config.yaml, open_clip_config/, tokenizer.json)."""
        return _home(self.path)


def _home(ckpt: Path) -> Path:
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def resolve_checkpoint(spec: str | Path, pretrained: str | Path | None = None) -> ResolvedCheckpoint:
    """The checkpoint `spec` names (see the module doc); reads only the file's header (memory-mapped).
    Every problem is a one-line UserError."""
    text = str(spec)
    if text.startswith(("tv:", "timm:")):  # clipshift.models.imagenet; evaluation only
        raise UserError(
            f"model {text!r}: a torchvision / timm ImageNet classifier is evaluated (clipshift eval), "
            "not loaded as a CLIP or clipshift checkpoint here"
        )
    if text.startswith(HF_HUB) and pretrained is None:
        folder = hf_cache_snapshot(text[len(HF_HUB) :])
        return ResolvedCheckpoint(_snapshot_weights(folder), "clip", text, False, None, folder)
    p = Path(text).expanduser()
    if pretrained is None and p.is_dir() and (p / SNAPSHOT_CONFIG).is_file():
        folder = p.resolve()
        return ResolvedCheckpoint(_snapshot_weights(folder), "clip", folder.name, False, None, folder)
    arch: str | None = None
    if pretrained is not None:
        arch, weights = text, str(pretrained)
    elif not p.exists() and ":" in text and text.split(":", 1)[0] in list_models():
        arch, weights = text.split(":", 1)
    if arch is not None:
        if arch not in list_models():
            raise UserError(f"unknown model {arch!r} (open_clip.list_models() lists every architecture)")
        folder = Path(weights).expanduser()
        if folder.is_dir() and (folder / SNAPSHOT_CONFIG).is_file():  # ARCH:SNAPSHOT_FOLDER
            weights = str(_snapshot_weights(folder.resolve()))
        path = _check_pretrained(weights)
        assert path is not None
        if is_torchscript(path):  # OpenAI's archive: its weights name the architecture, not ARCH
            return ResolvedCheckpoint(path, "clip", arch, True, None, torchscript=True)
        kind, _ = _header(path)
        return ResolvedCheckpoint(path, kind, arch, True, None)
    if not p.exists():
        raise UserError(f"model {text!r}: no such run directory or checkpoint file (or ARCH:PATH)")
    ckpt = p / "checkpoints" / "final.pt" if p.is_dir() else p
    if not ckpt.is_file():
        raise UserError(f"{text!r}: no checkpoint there (a run directory or a local .pt file)")
    ckpt = ckpt.resolve()
    if is_torchscript(ckpt):
        return ResolvedCheckpoint(ckpt, "clip", ckpt.stem, False, None, torchscript=True)
    kind, name = _header(ckpt)
    run_dir = p.resolve() if p.is_dir() else None
    return ResolvedCheckpoint(ckpt, kind, _arch(ckpt, kind, name), False, run_dir)


def loader_files(ck: ResolvedCheckpoint) -> dict[str, Path]:
    """The files loading `ck` may read, by role (a name relative to the checkpoint's folder, never a
    path): `weights` always; a snapshot's `open_clip_config.json`; and for a clipshift checkpoint
    without ARCH (a run directory or a file in one) the run's files beside it that exist:
    `config.yaml` (a classifier's resolution; a run's world), `tokenizer.json` and
    `open_clip_config/<arch>.json`. What `models.digest` hashes into a checkpoint's identity."""
    files = {"weights": ck.path}
    if ck.snapshot is not None:
        files[SNAPSHOT_CONFIG] = ck.snapshot / SNAPSHOT_CONFIG
        return files
    if ck.torchscript or ck.arch_given:
        return files
    for rel in ("config.yaml", "tokenizer.json", f"open_clip_config/{ck.arch}.json"):
        if (ck.home / rel).is_file():
            files[rel] = ck.home / rel
    return files


HF_HUB = "hf-hub:"
SNAPSHOT_CONFIG = "open_clip_config.json"
SNAPSHOT_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # open_clip's order


def _snapshot_weights(folder: Path) -> Path:
    for name in SNAPSHOT_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"{str(folder)!r}: {SNAPSHOT_CONFIG} but no weights ({' or '.join(SNAPSHOT_WEIGHTS)})")


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache this process would read ($HF_HUB_CACHE, else $HF_HOME/hub, else
    huggingface_hub's default), looked up at call time."""
    import os

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hf_cache_snapshot(repo: str) -> Path:
    """The local snapshot folder of hub repo `ORG/NAME` (its `main` revision), from the cache only:
    never a download. A repo not in the cache is one line naming the cache looked at."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hf_cache_dir()
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise UserError(f"{HF_HUB}{repo}: expected hf-hub:ORG/NAME")
    try:
        folder = Path(snapshot_download(repo, cache_dir=str(cache), local_files_only=True))
    except LocalEntryNotFoundError as e:
        raise UserError(
            f"{HF_HUB}{repo}: not in the local Hugging Face cache {str(cache)!r}; clipshift never "
            f"downloads (fetch it first, e.g. `huggingface-cli download {repo}`, or give a local folder)"
        ) from e
    if not (folder / SNAPSHOT_CONFIG).is_file():
        raise UserError(f"{HF_HUB}{repo}: its cached snapshot {str(folder)!r} has no {SNAPSHOT_CONFIG}")
    return folder


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive (a zip with `constants.pkl`, as OpenAI's `RN50.pt`), not a torch.save file."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") for n in z.namelist())


def _header(path: Path) -> tuple[Kind, str | None]:
    """(kind, the 'name' recorded in it) without copying the weights."""
    if path.suffix == ".safetensors":  # tensors only: an open_clip state dict
        return "clip", None
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        try:  # a legacy (non-zip) file cannot be memory-mapped
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UserError(f"{str(path)!r}: not a readable checkpoint ({type(e).__name__})") from e
    if not isinstance(raw, dict):
        return "clip", None
    name = raw.get("name")
    return ("classifier" if raw.get("kind") == "classifier" else "clip"), (str(name) if name else None)


def _arch(ckpt: Path, kind: Kind, name: str | None) -> str:
    """The architecture of a file without ARCH: its recorded name, else (CLIP) the run's one saved
    open_clip config, else (classifier) the default model."""
    if name is not None:
        return name
    if kind == "classifier":
        return DEFAULT_MODEL
    saved = sorted((_home(ckpt) / "open_clip_config").glob("*.json"))
    if len(saved) != 1:
        raise UserError(f"{str(ckpt)!r}: cannot tell the architecture (no 'name' in it, no saved config)")
    return saved[0].stem


def _resolved(spec: str | Path | ResolvedCheckpoint) -> ResolvedCheckpoint:
    return spec if isinstance(spec, ResolvedCheckpoint) else resolve_checkpoint(spec)


# ----------------------------------------------------------------------------- loading


def load_model(spec: str | Path | ResolvedCheckpoint) -> tuple[nn.Module, Tokenizer | None]:
    """Any checkpoint (a spec or a resolved one): (CLIP model, tokenizer) or (Classifier, None)."""
    ck = _resolved(spec)
    if ck.kind == "classifier":
        return load_classifier(ck), None
    return load_clip(ck)


def load_clip(spec: str | Path | ResolvedCheckpoint) -> tuple[nn.Module, Tokenizer]:
    """A CLIP model and its tokenizer. For a run, its tokenizer.json and open_clip_config/<name>.json are
    used when present; ARCH:PATH builds open_clip's ARCH with its BPE tokenizer."""
    ck = _resolved(spec)
    if ck.kind == "classifier":
        raise UserError(
            f"{str(ck.path)!r} is a classifier checkpoint; a CLIP checkpoint (with a text tower) is needed"
        )
    if ck.snapshot is not None:
        return _load_snapshot(ck.snapshot)
    if ck.torchscript:
        return _load_torchscript(ck.path)
    if ck.arch_given:
        tok = OpenClipTokenizer()
        return build_clip(ModelConfig(name=ck.arch, pretrained=str(ck.path)), tok), tok  # binds the context
    cfg_file = ck.home / "open_clip_config" / f"{ck.arch}.json"
    register_configs()  # create_model looks the name up even when the saved config supplies every field
    model_cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else _base_config(ck.arch)
    tok_file = ck.home / "tokenizer.json"
    if tok_file.is_file():
        tokenizer: Tokenizer = tokenizer_from_state(json.loads(tok_file.read_text()))
    else:
        tokenizer = OpenClipTokenizer(int(model_cfg["text_cfg"].get("context_length", 77)))
    cfg = ModelConfig(name=ck.arch)
    try:
        model = _create(cfg, model_cfg, ck.path)
    except Exception as e:
        raise UserError(_mismatch_message(cfg, model_cfg, ck.path, e)) from e
    return model, tokenizer


def _load_snapshot(folder: Path) -> tuple[nn.Module, Tokenizer]:
    """An open_clip snapshot folder through open_clip's own `local-dir:` loader (its config, its
    preprocessing, its weights), with open_clip's BPE tokenizer at the config's context length."""
    import open_clip

    from clipshift.models.registry import quiet_open_clip
    from clipshift.models.trim import trim_text

    text_cfg = json.loads((folder / SNAPSHOT_CONFIG).read_text()).get("model_cfg", {}).get("text_cfg", {})
    if text_cfg.get("hf_tokenizer_name"):
        raise UserError(
            f"{str(folder)!r}: its text tower uses the Hugging Face tokenizer "
            f"{text_cfg['hf_tokenizer_name']!r}, which clipshift does not load yet (only open_clip's BPE)"
        )
    try:
        with quiet_open_clip():
            model = open_clip.create_model(
                f"local-dir:{folder}", output_dict=True, pretrained_image=False, pretrained_text=False
            )
    except Exception as e:
        raise UserError(f"{str(folder)!r}: open_clip could not load this snapshot ({e})") from e
    return trim_text(model), OpenClipTokenizer(int(text_cfg.get("context_length", 77)))


def _load_torchscript(path: Path) -> tuple[nn.Module, Tokenizer]:
    """An OpenAI TorchScript archive: its state dict rebuilt as a plain open_clip CLIP by open_clip's
    `build_model_from_openai_state_dict` (what `open_clip.load_openai_model` does, without its download
    path), in fp32, with OpenAI's preprocessing and BPE tokenizer."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from open_clip.model import build_model_from_openai_state_dict

    from clipshift.models.trim import trim_text

    try:
        sd = dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        sd.pop("attn_mask", None)  # a derived buffer some exports keep; the builder makes its own
        model = build_model_from_openai_state_dict(sd).float()
    except Exception as e:
        raise UserError(
            f"{str(path)!r}: not an OpenAI CLIP TorchScript archive ({type(e).__name__}: {e})"
        ) from e
    model.visual.preprocess_cfg = {"mean": OPENAI_DATASET_MEAN, "std": OPENAI_DATASET_STD}
    return trim_text(model), OpenClipTokenizer(int(model.context_length))


def _run_model_config(home: Path, name: str) -> ModelConfig:
    """The run's ModelConfig (config.yaml in `home`) without `pretrained`, or the architecture's
    defaults for a bare checkpoint."""
    import yaml

    cfg_file = home / "config.yaml"
    if cfg_file.is_file():
        data = yaml.safe_load(cfg_file.read_text()) or {}
        model = data.get("model") if isinstance(data, dict) else None
        if isinstance(model, dict) and model.get("name", name) == name:
            return ModelConfig.model_validate({**model, "pretrained": None})
    return ModelConfig(name=name)


def load_classifier(spec: str | Path | ResolvedCheckpoint) -> Classifier:
    """A clipshift classifier checkpoint (`kind: classifier`): the image tower of its architecture (the
    run's config.yaml gives the resolution when present) and its head, whose kind and width are read off
    the state dict (cosine and text heads compute the same logits)."""
    ck = _resolved(spec)
    try:
        raw: Any = torch.load(ck.path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{str(ck.path)!r}: not a readable checkpoint ({type(e).__name__})") from e
    if not (isinstance(raw, dict) and raw.get("kind") == "classifier" and "state_dict" in raw):
        raise UserError(f"{str(ck.path)!r} is not a clipshift classifier checkpoint")
    sd: dict[str, torch.Tensor] = raw["state_dict"]
    name = str(raw.get("name") or DEFAULT_MODEL)  # the file's own, also under ARCH:PATH
    cfg = _image_only(_run_model_config(ck.home, name))
    visual: nn.Module = _create(cfg, open_clip_config(cfg, None), None).visual  # type: ignore[assignment]
    head: nn.Module
    if "head.fc.weight" in sd:
        n, dim = sd["head.fc.weight"].shape
        head, kind = LinearHead(int(dim), int(n)), "linear"
    elif "head.weight" in sd:
        n, dim = sd["head.weight"].shape
        head, kind = CosineHead(int(dim), int(n)), "cosine"
    else:
        raise UserError(f"{str(ck.path)!r}: no classifier head (head.fc.weight or head.weight) in it")
    model = Classifier(visual, head, kind)
    problem = _describe_mismatch(model.state_dict(), sd)
    if problem:
        raise UserError(f"{str(ck.path)!r} does not match the architecture: {problem} (model {name!r})")
    model.load_state_dict(sd, strict=True)
    return model


__all__ = [
    "ResolvedCheckpoint",
    "load_classifier",
    "load_clip",
    "load_model",
    "loader_files",
    "resolve_checkpoint",
]
