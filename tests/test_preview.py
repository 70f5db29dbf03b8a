"""Tests of `clipshift.world.preview`: the grid is written, has the expected size and shows something."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipshift.errors import UserError
from clipshift.world import World, WorldSpec
from clipshift.world.preview import COLUMNS, render_preview


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldSpec.model_validate({"concepts": {"n_classes": 4}}))


def test_preview_png(world: World, tmp_path: Path) -> None:
    out = render_preview(world, tmp_path / "sub" / "grid.png", n_classes=3, scale=2)
    assert out == tmp_path / "sub" / "grid.png" and out.is_file()
    with Image.open(out) as im:
        w, h = im.size
        px = np.asarray(im.convert("RGB"), dtype=np.float64)
    n_cols = sum(len(cols) for _, cols in COLUMNS)
    tile = 32 * 2
    assert w >= n_cols * tile and h >= 3 * tile  # every tile fits at full resolution
    assert w < 4000 and h < 2000
    assert px.std() > 20  # not blank: tiles and text on white
    # more rows, taller picture
    taller = render_preview(world, tmp_path / "all.png", scale=2)
    with Image.open(taller) as im:
        assert im.size[0] == w and im.size[1] > h


def test_preview_svg_writes_png_too(world: World, tmp_path: Path) -> None:
    out = render_preview(world, tmp_path / "grid.svg", n_classes=2)
    assert out.read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "grid.png").is_file()


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("grid.jpg", {}, "must be a .png or .svg"),
        ("grid.png", {"n_classes": 9}, "n_classes must be between 1 and 4"),
        ("grid.png", {"n_classes": 0}, "n_classes must be between 1 and 4"),
        ("grid.png", {"scale": 0}, "scale must be ≥ 1"),
    ],
)
def test_preview_bad_arguments(world: World, tmp_path: Path, name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        render_preview(world, tmp_path / name, **kwargs)
    assert not (tmp_path / name).exists()
