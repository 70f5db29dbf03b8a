"""`csv:FILE`: an open_clip CSV of image-text pairs, for retrieval."""

from __future__ import annotations

from clipshift.errors import UserError
from clipshift.evaluate.datasets.base import EvalData, LoadRequest, register_dataset


@register_dataset(
    "csv",
    "open_clip CSV (tab-separated filepath, title; or a folder holding one): image-text retrieval, "
    "recall@1/5/10 both ways",
    check_path=False,
)
def load(req: LoadRequest) -> EvalData:
    """Identical captions are one text, so an image finds its caption and a caption finds any of its
    images."""
    import numpy as np

    from clipshift.data.loaders import load_csv

    path = req.path
    if path.is_dir():
        found = sorted(path.glob("*.csv"))
        if len(found) != 1:
            raise UserError(f"csv:{path}: a directory with {len(found)} .csv files; name the file")
        path = found[0]
    table = load_csv(path, req.image_size, cache_dir=req.cache_dir, progress=req.progress)
    texts: list[str] = []
    row_of: dict[str, int] = {}
    owner = np.empty(len(table), dtype=np.int64)
    for i, c in enumerate(table.captions):
        j = row_of.setdefault(c, len(texts))
        if j == len(texts):
            texts.append(c)
        owner[i] = j
    return EvalData(
        name=f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem,
        images=table.images,
        labels=np.full(len(table), -1, dtype=np.int64),
        class_names=[],
        texts=texts,
        image_text=owner,
        source=f"csv:{path}",
        info={"n": len(table), "n_texts": len(texts)},
    )
