"""Evaluation studies' runs resume after an interruption without evaluating their finished sets again (and
give an uninterrupted run's rows, bit for bit), and take a `device` that keeps CPU runs' ids."""

from __future__ import annotations

import json

import pytest
import torch
from test_eval_study import (
    ARCH,
    SETS,
    WORLD,
    N,
    _clip_state,
    _isolated,  # noqa: F401  (its autouse fixture: a private cache, threads restored)
    rows_of,
    write,
)

from clipshift.cli.main import main
from clipshift.study import load_study, plan, run_study


class Killed(BaseException):
    """What a kill looks like to the run: no failure record, no `done` (not an Exception)."""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One CLIP checkpoint on three world sets, with a linear probe (built once, before the first set
    still to evaluate), `device: cpu` written out."""
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
        "base": {"world": WORLD, "eval": ev, "threads": 1, "device": "cpu"},
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


# the id of this CPU run before evaluation runs had a `device` (computed at 0b48c55)
PINNED = "9deb8b572fd2"


def test_device_is_part_of_an_evaluation_runs_id_except_the_cpu_whose_ids_are_unchanged(study, tmp_path):
    from clipshift.study.evaluation import eval_run_id
    from clipshift.study.spec import EvalRunConfig

    identity = {"kind": "clip", "format": "state_dict", "arch": ARCH, "files": {"weights": "0" * 64}}
    ev, world = {"sets": ["iid", "counter"], "n_per_set": 25}, {"concepts": {"n_classes": 5}}
    base = {"model": "x", "eval": ev, "world": world, "threads": 1}

    def rid(**kw) -> str:
        return eval_run_id(EvalRunConfig.model_validate({**base, **kw}), identity)

    assert rid() == rid(device="cpu") == PINNED
    assert len({rid(), rid(device="cuda"), rid(device="auto")}) == 3

    path, spec = study
    (cpu_run,) = plan(load_study(path))
    without = {**spec, "base": {k: v for k, v in spec["base"].items() if k != "device"}}
    (default_run,) = plan(load_study(write(tmp_path / "default.yaml", without)))
    assert cpu_run.run_id == default_run.run_id
    both = plan(load_study(write(tmp_path / "grid.yaml", {**without, "grid": {"device": ["cpu", "cuda"]}})))
    assert [r.factors["device"] for r in both] == ["cpu", "cuda"]
    assert both[0].run_id == cpu_run.run_id != both[1].run_id


def test_a_bad_device_is_one_line_at_study_plan(study, tmp_path, capsys):
    _, spec = study
    bad = write(tmp_path / "bad.yaml", {**spec, "base": {**spec["base"], "device": "gpu"}})
    assert main(["study", "plan", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad}: base.device = 'gpu'" in err[0] and "'cuda'" in err[0], err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without a GPU")
def test_a_cuda_run_on_a_machine_without_a_gpu_fails_in_one_line(study, tmp_path):
    _, spec = study
    path = write(tmp_path / "cuda.yaml", {**spec, "base": {**spec["base"], "device": "cuda"}})
    summary = run_study(path, tmp_path / "study", progress=False)
    assert (summary.ran, summary.failed) == (0, 1)
    assert summary.failures[0]["reason"] == "device 'cuda': torch sees no CUDA device on this machine"
