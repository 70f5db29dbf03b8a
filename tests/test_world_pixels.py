"""Every existing domain and corruption renders, captions and describes exactly as before the shift
registry: hashes of a small batch per evaluation set, recorded on the code before the refactor.

A failing hash means a rendered pixel (first hash) or a caption / ground-truth field (second hash)
changed for that set; a deliberate change to an existing shift must update the table and say why.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from clipshift.world import World, WorldSpec
from clipshift.world.captions import describe_factors
from clipshift.world.export import export_split

SPECS = {
    "small": {"concepts": {"n_classes": 5}, "backgrounds": {"n_backgrounds": 6}},
    "mixed": {
        "seed": 7,
        "concepts": {"n_classes": 6},
        "backgrounds": {"rho": 0.5},
        "domains": {"photo": 1.0, "sketch": 1.0, "rendition": 1.0, "painting": 1.0},
        "captions": {"level": "full", "synonym_prob": 0.3},
    },
}

# (pixels, captions + ground truth) of samples 0..15, recorded before the registry existed
GOLDEN = {
    "small/train": ("49ec0e6bb70ec7cf", "ce1e80abb895e436"),
    "small/iid": ("5b8f6371e6f464f0", "122c5e7164ff7935"),
    "small/common": ("2136e825e0f65f0b", "4c04872397719934"),
    "small/counter": ("25bb4ebfef52d1bb", "18fc164110ed117e"),
    "small/pose": ("bef52ac64ae03c51", "a575ed7599c6d1be"),
    "small/photo": ("5b8f6371e6f464f0", "bcb474a08bf208c1"),
    "small/sketch": ("9a6a6e8e2f090500", "56da6d9d08fdf12d"),
    "small/rendition": ("3d952478737c6cac", "c2679bde5a65e51f"),
    "small/painting": ("37775f5498a2740b", "005a55871944e674"),
    "small/corrupt-noise-1": ("3f6ceb1c9651d7e4", "fcc2d861cf77e784"),
    "small/corrupt-noise-2": ("ff7792908bc15333", "b2d3d028a49ed647"),
    "small/corrupt-noise-3": ("da6aaaf445e8423e", "59e2f1913e66a50f"),
    "small/corrupt-noise-4": ("8cc713efb6ddb550", "db2b0fdfee66ef91"),
    "small/corrupt-noise-5": ("ccf34d80c7d00bd3", "0e784d31d09e67d9"),
    "small/corrupt-blur-1": ("f5678213b43f4eeb", "91dc3e4956c9ee9d"),
    "small/corrupt-blur-2": ("6b5a24bc14deb8e7", "6e9170259e4e9a29"),
    "small/corrupt-blur-3": ("32b5be7e77e7a673", "74e7b45cec6d1ac2"),
    "small/corrupt-blur-4": ("db0ca31f67bcc670", "482ecc2fe0ffdc4a"),
    "small/corrupt-blur-5": ("5cea81137626a6a8", "d2a81c2b4a25e2d4"),
    "small/corrupt-contrast-1": ("94c9e170b4989b99", "fce7c09dde67e528"),
    "small/corrupt-contrast-2": ("193a69d7370a32a7", "1b7a69fe22ed30b2"),
    "small/corrupt-contrast-3": ("98984b8bda26cc5c", "9b8dad7470ecefab"),
    "small/corrupt-contrast-4": ("4e71c80ab2e22752", "b052cba4f238ab9c"),
    "small/corrupt-contrast-5": ("9339fe7fc66f5742", "444abe95e87e8cdf"),
    "small/corrupt-occlusion-1": ("c55244f7caef6f5f", "b9452a4a575c7620"),
    "small/corrupt-occlusion-2": ("afb642e6f64c08e0", "656010df8a152146"),
    "small/corrupt-occlusion-3": ("27aab0bf593a5c68", "d7e6c8c1563c7f21"),
    "small/corrupt-occlusion-4": ("7cc4be3c26f72eea", "5feed1894b9770b8"),
    "small/corrupt-occlusion-5": ("0848b96261a293c9", "4d393b5797fe01f4"),
    "mixed/train": ("31e81cc7d8c3e239", "c02dc8e257cc40d0"),
    "mixed/iid": ("53b08e086e017bd4", "d01010658d216f4e"),
    "mixed/common": ("5debeb05a085a716", "7c0c4e1664203b3a"),
    "mixed/counter": ("5a7ce90c65fda7d8", "22dc03b676fef44b"),
    "mixed/pose": ("f5c30091e9d07c71", "e88b9e7f3e8d50b4"),
    "mixed/photo": ("6dfbdd105ae9f358", "6af445dda684d560"),
    "mixed/sketch": ("9f384461e487096d", "50d6ca89c41246a8"),
    "mixed/rendition": ("1265f8181dc76115", "4186ce11e21b0ba6"),
    "mixed/painting": ("90692a3e121dcaf7", "9658a89ad1c98a6f"),
    "mixed/corrupt-noise-1": ("a80e191ed250f752", "d743eff6e016cc37"),
    "mixed/corrupt-noise-2": ("c73ec0885b2442f5", "9bbb76d6e5069ee7"),
    "mixed/corrupt-noise-3": ("1ec38146ce43e554", "6d6220b930a04160"),
    "mixed/corrupt-noise-4": ("50c83d92ec8b7ceb", "49edbfe816e18a65"),
    "mixed/corrupt-noise-5": ("0bfca6e78e71dc54", "f6a585898fc26d75"),
    "mixed/corrupt-blur-1": ("a0325ca3c35fa1b2", "885455f03d5808db"),
    "mixed/corrupt-blur-2": ("5fe288a040db1720", "d2e3e6e47068a910"),
    "mixed/corrupt-blur-3": ("c2271594d0fb698b", "1cc88dcba8e51140"),
    "mixed/corrupt-blur-4": ("073494254e563fba", "3804eef5ea013132"),
    "mixed/corrupt-blur-5": ("1ab926e82a049ab6", "cc430c8eed47c438"),
    "mixed/corrupt-contrast-1": ("f984d58ae216bbd9", "d662d08405859472"),
    "mixed/corrupt-contrast-2": ("96a0c0a78b061e78", "a077bc671b78348b"),
    "mixed/corrupt-contrast-3": ("e052c7bebf609f2c", "29f12617777eccc6"),
    "mixed/corrupt-contrast-4": ("2727ec089bc653c0", "27ecb04c89641101"),
    "mixed/corrupt-contrast-5": ("79bdaed564d45aa4", "4e68a4786ae62987"),
    "mixed/corrupt-occlusion-1": ("3de0e514bec51fa5", "85f70d9bacf2f8ca"),
    "mixed/corrupt-occlusion-2": ("6b47b934bb810663", "7d511a5c79fa7234"),
    "mixed/corrupt-occlusion-3": ("2289882050defe95", "4b6ade7ff925df13"),
    "mixed/corrupt-occlusion-4": ("b11bf2c173e38049", "54c7a828bcc1a048"),
    "mixed/corrupt-occlusion-5": ("9abb82e3aa6d2d50", "4c9c89715da718ae"),
}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.fixture(scope="module")
def worlds() -> dict[str, World]:
    return {name: World(WorldSpec.model_validate(d)) for name, d in SPECS.items()}


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_rendered_pixels_and_captions_unchanged(worlds: dict[str, World], key: str) -> None:
    spec_name, split = key.split("/", 1)
    w = worlds[spec_name]
    f = w.factors(split, np.arange(16))
    pixels = _digest(w.render(f).numpy().tobytes())
    text = json.dumps([w.captions(f), [describe_factors(f, i, w.concepts) for i in range(len(f))]])
    assert (pixels, _digest(text.encode())) == GOLDEN[key]


def test_imagenet_captions_tags_unchanged(tmp_path: Path) -> None:
    # sketches carry no colour tag: the only place outside captions where a shift's colour rule shows
    spec = {k: v for k, v in SPECS["mixed"].items() if k != "backgrounds" and k != "captions"}
    w = World(WorldSpec.model_validate(spec))
    export_split(w, "train", 16, "imagenet-captions", tmp_path / "x", progress=False)
    assert _digest((tmp_path / "x" / "imagenet_captions.json").read_bytes()) == "ae4d239e6bfc3659"
