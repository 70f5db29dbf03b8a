"""`clipshift demo`: the default world at a glance, a small exported dataset, and a calibration-free
latent-simulator run. (The study runner will turn this into a full study with a report.)"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from clipshift.cli.common import add_command, info


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "demo",
        "render the default world, export a small dataset, run the latent simulator",
        "The quickest look at clipshift: a preview grid of the default world, a small training split "
        "exported in open_clip's CSV format and as webdataset shards, the evaluation sets as "
        "ImageFolders, and the latent simulator's contrastive-vs-supervised comparison.",
        "  clipshift demo\n  clipshift demo --out /tmp/demo --n 500\n",
        _demo,
    )
    p.add_argument("--out", default="demo-out", help="output directory (default: %(default)s)")
    p.add_argument("--n", type=int, default=2000, help="training samples to export (default: %(default)s)")


def _demo(args: argparse.Namespace) -> int:
    from clipshift.theory import TheorySpec, simulate
    from clipshift.world import World
    from clipshift.world.export import export_split
    from clipshift.world.preview import render_preview

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    world = World()
    preview = render_preview(world, out / "world-preview.png")
    info(f"preview: {preview}")
    export_split(world, "train", args.n, "csv", out / "train-csv", overwrite=True)
    export_split(world, "train", args.n, "wds", out / "train-wds", overwrite=True)
    for split in ("iid", "counter", "sketch"):
        export_split(world, split, 500, "imagefolder", out / f"eval-{split}", overwrite=True)
    res = simulate(TheorySpec())["results"]
    print(f"world preview:       {preview}")
    print(f"training data (CSV): {out / 'train-csv'}   webdataset: {out / 'train-wds'}")
    print(f"evaluation sets:     {out}/eval-{{iid,counter,sketch}}")
    print("latent simulator (Xue et al. setting, default constants): accuracy in-distribution -> under shift")
    for learner, r in res.items():
        print(f"  {learner:22s} {r['id_acc']:5.1f} % -> {r['shift_acc']:5.1f} %  (drop {r['drop']:+.1f} pts)")
    return 0
