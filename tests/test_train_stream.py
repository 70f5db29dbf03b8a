"""Streamed world training data (`data.stream`): the table renders each batch's rows when the loop takes
them, holds a few bytes a row, gives the in-memory table's rows, run checks and weights bit for bit, and is
no part of a run's identity."""

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from clipshift.data.config import STREAM_AUTO_BYTES, WorldData, load_table
from clipshift.data.streamed import StreamedTable
from clipshift.train import TrainConfig, train
from clipshift.world.hierarchy import scale_overrides

WORLD = {
    "concepts": {"n_classes": 6},
    "domains": {"photo": 1.0, "sketch": 1.0},
    "captions": {"level": "full", "detail_prob": 0.5, "missing_name_prob": 0.2},
}


def data(stream: bool | str, n: int = 300, **over) -> WorldData:
    return WorldData.model_validate({"n": n, "world": WORLD, "stream": stream, **over})


def test_a_streamed_table_has_the_in_memory_tables_rows():
    held, streamed = load_table(data(False), 32, progress=False), load_table(data(True), 32, progress=False)
    assert isinstance(streamed, StreamedTable) and not isinstance(held, StreamedTable)
    assert len(streamed) == len(held) == 300 and streamed.image_size == 32
    assert np.array_equal(streamed.labels, held.labels) and streamed.labels.dtype == np.int64
    assert np.array_equal(streamed.class_counts(), held.class_counts())
    assert streamed.class_names == held.class_names and streamed.eval_classes == held.eval_classes
    assert streamed.stats == {"streamed": True}
    rows = np.random.default_rng(0).permutation(300)[:70]
    a, b = held.batch(rows), streamed.batch(rows)
    assert torch.equal(a.images, b.images) and a.texts == b.texts
    assert torch.equal(a.labels, b.labels) and torch.equal(a.index, b.index)
    assert streamed.captions[5:9] == held.captions[5:9] and streamed.captions[-1] == held.captions[-1]
    assert list(streamed.captions) == held.captions
    assert torch.equal(streamed.images[rows[:3]], held.images[torch.as_tensor(rows[:3])])
    assert torch.equal(streamed.images[-1], held.images[-1]) and torch.equal(
        streamed.images[4:9], held.images[4:9]
    )
    with pytest.raises(IndexError):
        streamed.images[[300]]
    assert held.facts is not None and streamed.facts is not None
    for k, v in held.facts.codes.items():
        assert np.array_equal(streamed.facts.codes[k], v), k
    # a subsample stays streamed and keeps the same rows
    sub = {"size": 120, "seed": 3}
    held_sub = load_table(data(False, subsample=sub), 32, progress=False)
    streamed_sub = load_table(data(True, subsample=sub), 32, progress=False)
    assert isinstance(streamed_sub, StreamedTable) and streamed_sub.stats["rows_after"] == 120
    assert np.array_equal(streamed_sub.labels, held_sub.labels)
    part = streamed_sub.subset(np.arange(10, 30))
    assert part.batch(np.arange(5)).texts == held_sub.captions[10:15]
    assert torch.equal(part.batch(np.arange(5)).images, held_sub.images[10:15])


def test_auto_streams_above_2_gib_of_images():
    assert STREAM_AUTO_BYTES == 2 * 2**30
    assert not data("auto", 699_050).streams() and data("auto", 699_051).streams()  # 3 x 32² bytes a row
    assert data("auto", 174_763, world={**WORLD, "image_size": 64}).streams()
    assert data(True, 10).streams() and not data(False, 10**8).streams()
    assert WorldData(n=10).stream == "auto"


def test_a_million_row_table_holds_a_few_bytes_a_row():
    d = WorldData.model_validate({"n": 1_000_000, "world": scale_overrides(1000)})
    assert d.streams()  # 2.9 GiB of images
    tracemalloc.start()
    table = load_table(d, 32, progress=False)
    batch = table.batch(np.arange(999_744, 1_000_000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert batch.images.shape == (256, 3, 32, 32) and len(batch.texts) == 256
    assert table.facts is not None and len(table.facts.codes["background"]) == 1_000_000
    # labels (4 + 8 bytes a row), facts (6) and the per-chunk temporaries; in memory: 3 GB
    assert peak < 40e6, peak


TINY = {
    "data": {"kind": "world", "n": 320, "world": WORLD},
    "model": {"tokenizer": "vocab"},
    "optim": {"batch_size": 64, "lr": 2e-3},
    "epochs": 2,
    "log_every": 1,
    "threads": 1,
}


def config(stream: bool, objective: str = "clip", **data_over) -> TrainConfig:
    run = json.loads(json.dumps(TINY))
    run["data"].update(stream=stream, **data_over)
    run["objective"] = {"name": objective}
    return TrainConfig.model_validate(run)


def weights(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "final.pt", weights_only=True)["state_dict"]


@pytest.mark.parametrize(
    ("objective", "data_over"),
    [("clip", {}), ("supervised", {"subsample": {"zipf_alpha": 1.0}})],
    ids=["clip", "supervised-zipf"],
)
def test_a_streamed_run_has_the_in_memory_runs_weights_and_checks(tmp_path, objective, data_over):
    held = train(config(False, objective, **data_over), tmp_path / "held", progress=False)
    streamed = train(config(True, objective, **data_over), tmp_path / "streamed", progress=False)
    a, b = weights(tmp_path / "held"), weights(tmp_path / "streamed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert held["final_loss"] == streamed["final_loss"]
    assert json.dumps(held["checks"]) == json.dumps(streamed["checks"])  # NaN too
    if objective == "clip":
        assert (
            0 < held["checks"]["data/mention/colour"] < 1 and "data/duplicate_caption_share" in held["checks"]
        )
    assert streamed["data"]["streamed"] is True and "streamed" not in held["data"]


def test_stream_is_no_part_of_a_runs_identity(tmp_path, capsys):
    from clipshift.study.planner import run_id
    from clipshift.study.spec import RunConfig

    ids = {
        run_id(RunConfig.model_validate({**TINY, "data": {**TINY["data"], "stream": s}}))
        for s in (True, False, "auto")
    }
    assert len(ids) == 1
    # a run may be resumed with the other setting: the same rows, the same numbers
    cfg = config(False)
    assert train(cfg, tmp_path / "r", progress=False, stop_after=3)["status"] == "interrupted"
    rec = train(config(True), tmp_path / "r", progress=False)
    train(cfg, tmp_path / "whole", progress=False)
    assert rec["status"] == "done"
    a, b = weights(tmp_path / "r"), weights(tmp_path / "whole")
    assert all(torch.equal(a[k], b[k]) for k in a)
