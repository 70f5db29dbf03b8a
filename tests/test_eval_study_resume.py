"""Evaluation studies' runs resume after an interruption without evaluating their finished sets again (and
give an uninterrupted run's rows, bit for bit)."""

from __future__ import annotations

import json

import pytest
import torch
from test_eval_study import ARCH, SETS, WORLD, N, _clip_state, rows_of, write

from clipshift.study import load_study, plan, run_study


class Killed(BaseException):
    """What a kill looks like to the run: no failure record, no `done` (not an Exception)."""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("CLIPSHIFT_CACHE", str(tmp_path / "cache"))
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One CLIP checkpoint on three world sets, with a linear probe (built once, before the first set
    still to evaluate)."""
    root = tmp_path_factory.mktemp("resume")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.save(_clip_state(1), root / "a.pt")
    finally:
        torch.set_num_threads(threads)
    ev = {"sets": SETS, "n_per_set": N, "linear_probe": True, "probe_n": 20}
    spec = {
        "name": "resume",
        "models": [{"name": "a", "model": f"{ARCH}:{root / 'a.pt'}"}],
        "base": {"world": WORLD, "eval": ev, "threads": 1},
    }
    return write(root / "study.yaml", spec), spec


def test_an_interrupted_evaluation_run_does_not_evaluate_its_finished_sets_again(
    study, tmp_path, monkeypatch, capsys
):
    from clipshift.evaluate import core
    from clipshift.evaluate import model as em

    path, _ = study
    whole = tmp_path / "whole"
    assert run_study(path, whole, progress=False).ran == 1  # uninterrupted

    forwarded: list[str] = []  # what each pass of images through the image tower was for
    real = em._image_features

    def counting(model, images, n, batch_size, progress, desc):
        forwarded.append(desc)
        return real(model, images, n, batch_size, progress, desc)

    load = core.load_eval_data

    def killed_at_the_second_set(spec, *args, **kw):
        if spec == SETS[1]:
            raise Killed
        return load(spec, *args, **kw)

    monkeypatch.setattr(em, "_image_features", counting)
    monkeypatch.setattr(core, "load_eval_data", killed_at_the_second_set)
    out = tmp_path / "study"
    with pytest.raises(Killed):
        run_study(path, out, progress=False)
    (run,) = plan(load_study(path))
    d = out / "runs" / run.run_id
    assert not (d / "done").exists() and not (d / "failed.json").exists()
    assert sorted(p.name for p in (d / "sets").iterdir()) == ["0.json"]  # the first set, kept
    assert forwarded[0].startswith("probe features") and forwarded[1:] == [f"eval {SETS[0]}"]

    monkeypatch.setattr(core, "load_eval_data", load)
    forwarded.clear()
    again = run_study(path, out, progress=True)
    assert again.ok and (again.ran, again.done) == (1, 1)
    # the first set's images are not passed through the model again; the probe is built for the others
    assert forwarded[0].startswith("probe features") and forwarded[1:] == [f"eval {s}" for s in SETS[1:]]
    assert "1 finished set reused" in capsys.readouterr().err
    assert json.loads((d / "done").read_text())["reused_sets"] == 1
    assert not (d / "sets").exists()  # eval.json holds them now

    # bit for bit an uninterrupted run's rows, in the store and in eval.json
    assert sorted(map(repr, rows_of(out))) == sorted(map(repr, rows_of(whole)))
    assert len(rows_of(out)) > 3 * len(SETS)
    ours, theirs = (json.loads((o / "runs" / run.run_id / "eval.json").read_text()) for o in (out, whole))
    assert ours["rows"] == theirs["rows"]
    assert {r["task"] for r in ours["results"]} == {"zeroshot_classification", "linear_probe"}

    # a kept set that is not this run's set (or is unreadable) is evaluated again, not trusted
    (d / "done").unlink()
    (d / "sets").mkdir()
    (d / "sets" / "0.json").write_text(json.dumps({"set": "painting", "results": []}))
    (d / "sets" / "1.json").write_text("{")
    forwarded.clear()
    assert run_study(path, out, progress=False).ran == 1
    assert forwarded[1:] == [f"eval {s}" for s in SETS]
    assert sorted(map(repr, rows_of(out))) == sorted(map(repr, rows_of(whole)))
