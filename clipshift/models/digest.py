"""What a model spec *is*, by content: the sha256 of every file its loader reads, and what the spec tells
the loader besides (an architecture given as ARCH:PATH, the checkpoint's kind).

`checkpoint_identity` is what an evaluation study hashes into a run's id: the same bytes at another path
are the same model (same id), other bytes at the same path are another (new id). Paths never enter it,
nor does a name that only labels output (the file stem of an OpenAI archive, a snapshot folder's name);
a file name that changes what is loaded does (`tv:ARCH:PATH`: torchvision picks its preprocessing by it).
torchvision / timm classifiers (`models.imagenet`) are located by their own spec parser.

Hashing is streamed (1 MiB blocks). Files of at least `CACHE_MIN_BYTES` have their digest remembered in
`$CLIPSHIFT_CACHE/checkpoint-sha256.json` (else `~/.cache/clipshift/`), keyed by the resolved path with
its size and modification time (ns): re-planning a study of large checkpoints reads none of them again,
and touching or replacing a file makes it hashed anew. Within a process digests are also kept in memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipshift.models.checkpoints import ResolvedCheckpoint, loader_files, resolve_checkpoint

BLOCK = 1 << 20
CACHE_MIN_BYTES = 16 << 20  # smaller files hash in milliseconds: not worth a cache entry
CACHE_FILE = "checkpoint-sha256.json"
_MEMO: dict[tuple[str, int, int], str] = {}

# ResolvedCheckpoint fields `checkpoint_identity` handles itself; any other field a resolver adds (a
# new format's flag or tag) enters the identity as it is (Path values: as the digest of the file)
_HANDLED = frozenset({"path", "kind", "arch", "arch_given", "run_dir", "snapshot", "torchscript"})


def cache_file() -> Path:
    """Where large files' digests are remembered (looked up at call time)."""
    root = os.environ.get("CLIPSHIFT_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "clipshift") / CACHE_FILE


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex), streamed; remembered by (path, size, mtime) for large files."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    hit = _MEMO.get(key)
    if hit is not None:
        return hit
    cached = st.st_size >= CACHE_MIN_BYTES
    if cached:
        entry = _read_cache().get(key[0])
        if isinstance(entry, list) and len(entry) == 3 and tuple(entry[:2]) == key[1:]:
            _MEMO[key] = str(entry[2])
            return _MEMO[key]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    digest = h.hexdigest()
    _MEMO[key] = digest
    if cached:
        _remember(key, digest)
    return digest


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(key: tuple[str, int, int], digest: str) -> None:
    """Add one digest to the cache file (read, merge, atomic replace; a lost race only costs a rehash)."""
    from clipshift.fsio import write_json

    path = cache_file()
    data = _read_cache()
    data[key[0]] = [key[1], key[2], digest]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, data, indent=None, fsync=False)
    except OSError:
        pass  # a read-only home still plans; only the cache is lost


@dataclass(frozen=True)
class ImageNetWeights:
    """A torchvision / timm ImageNet classifier spec located (`clipshift.models.imagenet`)."""

    library: str  # tv | timm
    arch: str
    path: Path  # the state dict file, absolute


Located = ResolvedCheckpoint | ImageNetWeights


def locate(spec: str | Path, pretrained: str | Path | None = None) -> Located:
    """What `spec` names, found without reading any weights: a resolved clipshift / open_clip checkpoint,
    or a torchvision / timm classifier's weights file. Problems (a missing file, an unknown architecture)
    are the resolvers' one-line UserErrors."""
    from clipshift.models.imagenet import is_imagenet_spec, parse_spec

    if is_imagenet_spec(spec):
        prefix, arch, path = parse_spec(str(spec), pretrained)
        return ImageNetWeights(prefix.rstrip(":"), arch, path)
    return resolve_checkpoint(spec, pretrained)


def checkpoint_identity(spec: str | Path, pretrained: str | Path | None = None) -> dict[str, Any]:
    """The content identity of a model spec (see the module doc), as plain JSON: the checkpoint's kind,
    the architecture when the spec gives it (or the checkpoint records it), whether a run directory or
    a snapshot folder is read, and `files`: role -> sha256 of each file the loader reads (`weights`,
    and e.g. `config.yaml`, `tokenizer.json`, `open_clip_config/<arch>.json` of a run). A clipshift run
    directory also contributes its recorded label space (`class_names` of final.json). Problems are the
    resolvers' one-line UserErrors."""
    return identity_of(locate(spec, pretrained))


def identity_of(loc: Located) -> dict[str, Any]:
    """`checkpoint_identity` of a located spec."""
    if isinstance(loc, ImageNetWeights):
        return _imagenet_identity(loc)
    ck = loc
    out: dict[str, Any] = {"kind": ck.kind}
    # the loader builds ARCH:PATH's architecture and a checkpoint's recorded one; an OpenAI archive's and
    # a snapshot's architecture come from their own content, and their `arch` is only a label
    if not ck.torchscript and ck.snapshot is None:
        out["arch"] = ck.arch
    out["arch_given"] = ck.arch_given
    fmt = "run" if ck.run_dir is not None else "file"
    out["format"] = "torchscript" if ck.torchscript else "snapshot" if ck.snapshot is not None else fmt
    out["files"] = {role: file_sha256(p) for role, p in sorted(loader_files(ck).items())}
    for f in dataclasses.fields(ck):
        if f.name in _HANDLED:
            continue
        v = getattr(ck, f.name)
        if isinstance(v, Path):
            out[f.name] = file_sha256(v) if v.is_file() else None
        elif v is not None:
            out[f.name] = json.loads(json.dumps(v, default=str))  # plain JSON, whatever its type
    if ck.run_dir is not None:
        names = _class_names(ck.run_dir / "final.json")
        if names is not None:
            out["class_names"] = names
    return out


def _imagenet_identity(w: ImageNetWeights) -> dict[str, Any]:
    """A torchvision / timm classifier: library, architecture and the weights' digest. torchvision picks
    the weights' preprocessing preset by the file's name when ARCH names no weights (`resnet50-0676ba61.pth`
    is IMAGENET1K_V1, another name the DEFAULT weights), so that file name is part of its identity."""
    out: dict[str, Any] = {"kind": "classifier", "library": w.library, "arch": w.arch}
    if w.library == "tv" and "_Weights." not in w.arch:
        out["file_name"] = w.path.name
    out["files"] = {"weights": file_sha256(w.path)}
    return out


def default_family(identity: dict[str, Any]) -> str:
    """The family label of a model whose study entry gives none: what `EvalModel.family` calls it (clip,
    classifier for clipshift's supervised runs, imagenet_classifier for torchvision / timm)."""
    return "imagenet_classifier" if identity.get("library") else str(identity.get("kind"))


def identity_digest(identity: dict[str, Any]) -> str:
    """A short digest of an identity (for file names and messages)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _class_names(path: Path) -> list[str] | None:
    """The label space a run recorded (what the evaluation wrapper reads of final.json)."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    names = rec.get("class_names") if isinstance(rec, dict) else None
    return [str(n) for n in names] if isinstance(names, list) and names else None


__all__ = [
    "ImageNetWeights",
    "checkpoint_identity",
    "default_family",
    "file_sha256",
    "identity_digest",
    "identity_of",
    "locate",
]
