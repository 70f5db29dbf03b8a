"""The decoded-image cache: CLIP's preprocessing, reuse without decoding, skipped files, strict mode,
the process-pool path and the cache location."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipshift.data import cache
from clipshift.data.cache import decode_bytes_to_cache, decode_image, decode_to_cache, default_cache_dir
from clipshift.errors import UserError


def _write_pngs(folder: Path, n: int, size: tuple[int, int] = (20, 12), seed: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        p = folder / f"{i:03d}.png"
        Image.fromarray(arr).save(p)
        paths.append(str(p))
    return paths


def test_decode_image_is_clip_preprocessing(tmp_path: Path) -> None:
    # a 40 x 20 (w x h) image: shorter side to 10 gives 20 x 10, then the centre 10 x 10
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, 10:30] = 255  # the centre half is white, the sides black
    p = tmp_path / "wide.png"
    Image.fromarray(arr).save(p)
    out = decode_image(str(p), 10)
    assert out.shape == (3, 10, 10) and out.dtype == np.uint8
    assert out[:, :, 1:-1].min() >= 250  # the crop is the white centre (the edges may blend in bicubic)
    # same size: no resampling, exact pixels; bytes and paths agree; grey and RGBA become RGB
    sq = np.random.default_rng(1).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    Image.fromarray(sq).save(tmp_path / "sq.png")
    assert np.array_equal(decode_image(str(tmp_path / "sq.png"), 8), sq.transpose(2, 0, 1))
    assert np.array_equal(decode_image((tmp_path / "sq.png").read_bytes(), 8), sq.transpose(2, 0, 1))
    Image.fromarray(sq[:, :, 0]).save(tmp_path / "grey.png")
    assert decode_image(str(tmp_path / "grey.png"), 8).shape == (3, 8, 8)
    # torchvision's Resize + CenterCrop (CLIP's transform) on the PIL image gives the same pixels
    from torchvision import transforms as T

    tall = np.random.default_rng(2).integers(0, 256, size=(30, 17, 3), dtype=np.uint8)
    Image.fromarray(tall).save(tmp_path / "tall.png")
    tf = T.Compose([T.Resize(12, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(12)])
    ref = np.asarray(tf(Image.open(tmp_path / "tall.png").convert("RGB"))).transpose(2, 0, 1)
    assert np.array_equal(decode_image(str(tmp_path / "tall.png"), 12), ref)


def test_resize_is_torchvision_and_timm_eval_preprocessing(tmp_path: Path) -> None:
    """An ImageNet classifier's resize-then-crop (`Resize`) gives the pixels of torchvision's
    Resize(t) + CenterCrop(S) with its interpolation, squash too; its cache entries are kept apart
    and CLIP's keep their old keys."""
    from torchvision import transforms as T

    from clipshift.data.cache import Resize, _cache_key

    rng = np.random.default_rng(3)
    for i, (w, h) in enumerate([(37, 23), (16, 16), (20, 41)]):
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        img = Image.open(tmp_path / f"{i}.png").convert("RGB")
        for rs, resize in [
            (Resize(19, "bilinear"), T.Resize(19)),
            (Resize(18, "bicubic"), T.Resize(18, interpolation=T.InterpolationMode.BICUBIC)),
            (Resize(20, "bilinear", squash=True), T.Resize((20, 20))),
        ]:
            ref = np.asarray(T.CenterCrop(16)(resize(img))).transpose(2, 0, 1)
            assert np.array_equal(decode_image(str(tmp_path / f"{i}.png"), 16, rs), ref), (i, rs)
    assert Resize().key(16) == Resize(16).key(16) == [] and Resize(19, "bilinear").key(16)
    assert _cache_key("files", [], 16) == _cache_key("files", [], 16, Resize())
    assert _cache_key("files", [], 16) != _cache_key("files", [], 16, Resize(19, "bilinear"))
    paths = [str(tmp_path / f"{i}.png") for i in range(3)]
    clip, _, _ = decode_to_cache(paths, 16, tmp_path / "c", progress=False)
    tv, _, _ = decode_to_cache(paths, 16, tmp_path / "c", progress=False, resize=Resize(19, "bilinear"))
    assert not np.array_equal(np.asarray(clip), np.asarray(tv))
    with pytest.raises(UserError, match="interpolation 'cubic'"):
        Resize(19, "cubic")


def test_cache_reused_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _write_pngs(tmp_path / "img", 6)
    c = tmp_path / "cache"
    images, kept, stats = decode_to_cache(paths, 8, c, progress=False)
    assert isinstance(images, np.memmap) and images.shape == (6, 3, 8, 8)
    assert kept.tolist() == list(range(6)) and stats["cache"] == "miss"
    first = np.array(images)

    def boom(*_: object) -> np.ndarray:
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(cache, "decode_image", boom)
    again, kept2, stats2 = decode_to_cache(paths, 8, c, progress=False)
    assert stats2["cache"] == "hit" and np.array_equal(np.asarray(again), first)
    assert kept2.tolist() == kept.tolist()
    # one .u8 and its .json, no temporary leftovers
    assert sorted(p.suffix for p in c.iterdir()) == [".json", ".u8"]
    # another size, or a changed file, is another entry (and the boom decoder now runs and fails)
    with pytest.raises(UserError, match="none of the 6 images could be decoded"):
        decode_to_cache(paths, 6, c, progress=False)
    monkeypatch.undo()
    _write_pngs(tmp_path / "img", 1, seed=5)  # rewrites 000.png with other pixels
    os.utime(paths[0], ns=(1, 1))  # and a different mtime, whatever the clock's resolution
    changed, _, stats3 = decode_to_cache(paths, 8, c, progress=False)
    assert stats3["cache"] == "miss" and not np.array_equal(np.asarray(changed[0]), first[0])
    assert np.array_equal(np.asarray(changed[1:]), first[1:])


def test_missing_and_corrupt_skipped_or_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = _write_pngs(tmp_path / "img", 5)
    Path(paths[1]).write_bytes(b"\x89PNG garbage, not an image")
    os.remove(paths[3])
    c = tmp_path / "cache"
    images, kept, stats = decode_to_cache(paths, 8, c, progress=False)
    assert kept.tolist() == [0, 2, 4] and images.shape[0] == 3
    assert stats["skipped_missing"] == 1 and stats["skipped_corrupt"] == 1
    assert paths[1] in stats["skipped_examples"][0] and paths[3] in stats["skipped_examples"][1]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "skipped 1 missing and 1 undecodable of 5" in err[0]
    assert np.array_equal(np.asarray(images[1]), decode_image(paths[2], 8))

    # strict: one line naming the first bad file, on a fresh decode and on a cache hit alike
    for cache_dir in (tmp_path / "fresh", c):
        with pytest.raises(UserError) as e:
            decode_to_cache(paths, 8, cache_dir, strict=True, progress=False)
        msg = str(e.value)
        assert msg.startswith(f"{paths[1]}: cannot decode image (") and "\n" not in msg
    assert not any((tmp_path / "fresh").glob("*.u8*"))  # the failed build left nothing behind
    Path(paths[1]).unlink()
    with pytest.raises(UserError, match=re.escape(f"{paths[1]}: cannot decode image (file not found)")):
        decode_to_cache(paths, 8, tmp_path / "fresh", strict=True, progress=False)


def test_bytes_cache_consumes_items_and_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _write_pngs(tmp_path / "img", 4)
    blobs = [Path(p).read_bytes() for p in paths]
    items = [("a", blobs[0]), ("b", None), ("c", b"junk"), ("d", blobs[3])]
    seen: list[str] = []

    def gen() -> object:
        for name, blob in items:
            seen.append(name)
            yield name, blob

    c = tmp_path / "cache"
    images, kept, stats = decode_bytes_to_cache(gen(), 8, paths, c, progress=False)  # type: ignore[arg-type]
    assert kept.tolist() == [0, 3] and stats["skipped_missing"] == 1 and stats["skipped_corrupt"] == 1
    assert np.array_equal(np.asarray(images[1]), decode_image(blobs[3], 8))
    monkeypatch.setattr(cache, "decode_image", None)  # any decode on the hit would fail
    seen.clear()
    again, kept2, stats2 = decode_bytes_to_cache(gen(), 8, paths, c, progress=False)  # type: ignore[arg-type]
    assert seen == ["a", "b", "c", "d"], "a hit still walks the items (callers collect captions)"
    assert stats2["cache"] == "hit" and kept2.tolist() == [0, 3]
    assert np.array_equal(np.asarray(again), np.asarray(images))


def test_pool_path_matches_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _write_pngs(tmp_path / "img", 24, size=(14, 11))
    Path(paths[5]).write_bytes(b"junk")
    inline, kept_i, _ = decode_to_cache(paths, 8, tmp_path / "c1", workers=1, progress=False)
    monkeypatch.setattr(cache, "POOL_MIN", 4)  # spawn 2 workers for a small list
    monkeypatch.setattr(cache, "BLOCK", 10)  # and hand them several blocks
    pooled, kept_p, stats = decode_to_cache(paths, 8, tmp_path / "c2", workers=2, progress=False)
    assert kept_p.tolist() == kept_i.tolist() and 5 not in kept_p.tolist()
    assert np.array_equal(np.asarray(pooled), np.asarray(inline)) and stats["skipped_corrupt"] == 1


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLIPSHIFT_CACHE", str(tmp_path / "cs"))
    assert default_cache_dir() == tmp_path / "cs" / "images"
    paths = _write_pngs(tmp_path / "img", 2)
    decode_to_cache(paths, 8, None, progress=False)
    assert len(list((tmp_path / "cs" / "images").glob("*.u8"))) == 1
    monkeypatch.delenv("CLIPSHIFT_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "clipshift" / "images"
