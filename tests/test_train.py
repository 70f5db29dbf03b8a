"""One training run: run directory contents, determinism, resume, failure records, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clipshift.cli.main import main
from clipshift.errors import UserError
from clipshift.train import RunFailed, TrainConfig, train
from clipshift.train import run as run_mod

TINY = {
    "data": {"kind": "world", "n": 384, "world": {"concepts": {"n_classes": 5}}},
    "optim": {"batch_size": 64, "lr": 2e-3},
    "log_every": 2,
    "threads": 2,
}


def cfg(**over) -> TrainConfig:
    data = json.loads(json.dumps(TINY))
    for k, v in over.items():
        data[k] = v if not isinstance(v, dict) else {**data.get(k, {}), **v}
    return TrainConfig.model_validate(data)


def weights(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "final.pt", weights_only=True)["state_dict"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_clip_run_directory_and_open_clip_checkpoint(tmp_path):
    import open_clip

    from clipshift.models import register_configs

    rec = train(cfg(), tmp_path / "r", progress=False)
    run = tmp_path / "r"
    assert rec["status"] == "done" and json.loads((run / "final.json").read_text())["status"] == "done"
    assert (
        TrainConfig.model_validate(__import__("yaml").safe_load((run / "config.yaml").read_text())) == cfg()
    )
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines and {"step", "loss", "lr", "samples_per_s", "logit_scale"} <= lines[0].keys()
    assert lines[-1]["step"] == rec["steps"] == 6
    register_configs()
    model = open_clip.create_model("clipshift-rn-tiny", pretrained=str(run / "checkpoints" / "final.pt"))
    assert same_weights(model.state_dict(), weights(run))


def test_same_seed_same_numbers_other_seed_differs(tmp_path):
    a = train(cfg(), tmp_path / "a", progress=False)
    b = train(cfg(), tmp_path / "b", progress=False)
    train(cfg(seed=1), tmp_path / "c", progress=False)
    assert a["final_loss"] == b["final_loss"] and same_weights(
        weights(tmp_path / "a"), weights(tmp_path / "b")
    )
    assert not same_weights(weights(tmp_path / "a"), weights(tmp_path / "c"))


@pytest.mark.parametrize("objective", ["clip", "dynamic"])
def test_resume_after_interruption_gives_identical_weights(tmp_path, objective):
    c = cfg(objective={"name": objective, "dynamic_k": 3}, epochs=2, checkpoint_every=2)
    train(c, tmp_path / "full", progress=False)
    part = train(c, tmp_path / "resumed", progress=False, stop_after=5)
    assert part["status"] == "interrupted" and (tmp_path / "resumed" / "checkpoints" / "latest.pt").exists()
    train(c, tmp_path / "resumed", progress=False)
    assert same_weights(weights(tmp_path / "full"), weights(tmp_path / "resumed"))
    steps = [json.loads(x)["step"] for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 12  # one continuous log across the interruption
    assert not (tmp_path / "resumed" / "checkpoints" / "latest.pt").exists()


def test_non_finite_loss_stops_with_a_record(tmp_path, monkeypatch):
    real = run_mod._step
    calls = {"n": 0}

    def flaky(*args, **kw):
        calls["n"] += 1
        loss = real(*args, **kw)
        return loss * float("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr(run_mod, "_step", flaky)
    with pytest.raises(RunFailed, match="at step 3"):
        train(cfg(), tmp_path / "r", progress=False)
    rec = json.loads((tmp_path / "r" / "final.json").read_text())
    assert rec["status"] == "failed" and "step 3" in rec["reason"]
    assert (tmp_path / "r" / "config.yaml").exists() and (tmp_path / "r" / "metrics.jsonl").read_text()


@pytest.mark.parametrize("objective", ["supervised", "supervised-cosine", "siglip", "clip-classname"])
def test_objectives_train_end_to_end(tmp_path, objective):
    rec = train(cfg(objective={"name": objective}, epochs=2), tmp_path / objective, progress=False)
    lines = [json.loads(x) for x in (tmp_path / objective / "metrics.jsonl").read_text().splitlines()]
    assert rec["status"] == "done" and lines[-1]["loss"] < lines[0]["loss"]


def test_a_classifier_ignores_the_vocab_tokenizer_setting(tmp_path):
    # a study grid crosses `model.tokenizer: vocab` with supervised objectives, which have no text tower
    rec = train(cfg(objective={"name": "supervised"}, model={"tokenizer": "vocab"}), tmp_path, progress=False)
    assert rec["status"] == "done"
    from clipshift.models.factory import load_model

    model, tokenizer = load_model(tmp_path)
    assert tokenizer is None and model(torch.zeros(2, 3, 32, 32))["logits"].shape == (2, 5)


def test_a_fresh_start_does_not_append_to_old_metrics(tmp_path):
    train(cfg(), tmp_path / "r", progress=False)
    train(cfg(), tmp_path / "r", progress=False, resume=False)
    steps = [json.loads(x)["step"] for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]


def test_too_little_data_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="fewer than one batch"):
        train(cfg(data={"n": 32}), tmp_path / "r", progress=False)


def test_cli_train_and_bad_flag(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [
        "train",
        "--out",
        str(out),
        "--set",
        "data.n=128",
        "--set",
        "data.world.concepts.n_classes=4",
        "--batch-size",
        "64",
        "--objective",
        "supervised",
        "--quiet",
        "--json",
    ]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "done"
    # the same command again: the finished run is reported, not retrained
    final = out / "checkpoints" / "final.pt"
    mtime = final.stat().st_mtime_ns
    assert main(argv) == 0
    again = capsys.readouterr()
    assert json.loads(again.out)["status"] == "done" and "already holds this finished run" in again.err
    assert final.stat().st_mtime_ns == mtime
    # another config in the same directory trains (the old record does not stand in for it)
    assert main([*argv, "--set", "seed=1"]) == 0 and final.stat().st_mtime_ns != mtime
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--set", "optim.lr=-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "optim.lr = -1" in err and "\n" not in err


@pytest.mark.parametrize("data", ["world", "csv"])
def test_ddp_two_cpu_processes_gloo(tmp_path, data):
    run_cfg = {**TINY, "threads": 1}
    if data == "csv":  # files on disk: rank 0 decodes them, rank 1 reads its cache
        from clipshift.world import World, WorldSpec
        from clipshift.world.export import export_split

        world = World(WorldSpec.model_validate(TINY["data"]["world"]))  # type: ignore[index]
        export_split(world, "train", 384, "csv", tmp_path / "csv", progress=False)
        run_cfg["data"] = {
            "kind": "csv",
            "path": str(tmp_path / "csv" / "train.csv"),
            "cache_dir": str(tmp_path / "cache"),
        }
    cfg_path = tmp_path / "run.yaml"
    cfg_path.write_text(json.dumps(run_cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29531",
        "-m",
        "clipshift",
        "train",
        "--config",
        str(cfg_path),
        "--out",
        str(tmp_path / "ddp"),
        "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads((tmp_path / "ddp" / "final.json").read_text())
    assert rec["status"] == "done" and rec["world_size"] == 2 and rec["steps"] == 6
    if data == "csv":
        assert rec["data"]["cache_by_rank"] == ["miss", "hit"]


def test_bench_train_smoke_against_open_clip_train(capsys):
    """Both trainers run (open_clip's as its own program) and the figures are consistent."""
    argv = ["bench", "train", "--batch-size", "32", "--steps", "2", "--warmup", "1",
            "--workers", "0", "--no-torchcompile", "--json"]  # fmt: skip
    assert main(argv) == 0
    f = json.loads(capsys.readouterr().out)
    assert f["train_samples_per_s"] > 0 and f["openclip_samples_per_s"] > 0
    assert f["openclip_by_setting"].keys() == {"workers=0"}
    assert f["speedup_vs_openclip"] == round(f["train_samples_per_s"] / f["openclip_samples_per_s"], 2)
    # the padding-trimmed text tower executes fewer FLOPs than the same model over the whole context
    assert 0 < f["model_gflops_per_sample"] < f["model_gflops_per_sample_full_context"]
    assert f["achieved_gflops_per_s"] == pytest.approx(
        f["model_gflops_per_sample"] * f["train_samples_per_s"], abs=0.1
    )
