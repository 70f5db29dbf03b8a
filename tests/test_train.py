"""One training run: run directory contents, determinism, resume, failure records, DDP."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from clipshift.cli.main import main
from clipshift.errors import UserError
from clipshift.train import RunFailed, TrainConfig, train
from clipshift.train import loop as loop_mod
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


def log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_crash_between_checkpoints_leaves_each_step_logged_once(tmp_path, monkeypatch):
    """Checkpoints every 3 steps, a log line every 2: killed after logging step 8 (last checkpoint: step 6),
    the resumed run drops the lines after its checkpoint and logs 8 again, once, with the same loss."""
    c = cfg(epochs=2, checkpoint_every=3)
    train(c, tmp_path / "full", progress=False)
    real = loop_mod.step_loss
    calls = {"n": 0}

    def dies_at_step_9(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt  # as a kill would, with no checkpoint written
        return real(*args, **kw)

    monkeypatch.setattr(loop_mod, "step_loss", dies_at_step_9)
    with pytest.raises(KeyboardInterrupt):
        train(c, tmp_path / "r", progress=False)
    assert [x["step"] for x in log(tmp_path / "r")] == [2, 4, 6, 8]
    monkeypatch.setattr(loop_mod, "step_loss", real)
    train(c, tmp_path / "r", progress=False)
    resumed, full = log(tmp_path / "r"), log(tmp_path / "full")
    assert [x["step"] for x in resumed] == [2, 4, 6, 8, 10, 12]
    assert [x["loss"] for x in resumed] == [x["loss"] for x in full]
    assert same_weights(weights(tmp_path / "full"), weights(tmp_path / "r"))


def test_resume_refuses_another_config_but_not_another_logging_interval(tmp_path, capsys):
    c = cfg(epochs=2, checkpoint_every=2)
    assert train(c, tmp_path / "r", progress=False, stop_after=3)["status"] == "interrupted"
    changed = c.model_copy(update={"optim": c.optim.model_copy(update={"lr": 1e-3})})
    with pytest.raises(UserError) as err:
        train(changed, tmp_path / "r", progress=False)
    msg = str(err.value)
    assert "holds an interrupted run with another config (optim.lr: 0.002 there, 0.001 now)" in msg
    assert "--no-resume" in msg and "\n" not in msg
    assert (tmp_path / "r" / "checkpoints" / "latest.pt").exists()  # nothing was lost
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["optim"]["lr"] == 0.002
    # logging and checkpoint intervals cannot change the numbers: the run resumes
    relogged = c.model_copy(update={"log_every": 3, "checkpoint_every": 5})
    rec = train(relogged, tmp_path / "r", progress=False)
    assert rec["status"] == "done" and "resuming" in capsys.readouterr().err
    train(c, tmp_path / "full", progress=False)
    assert same_weights(weights(tmp_path / "full"), weights(tmp_path / "r"))
    assert rec["threads"] == 2  # the thread count the run trained with


@pytest.mark.parametrize("objective", ["clip", "supervised-cosine"])
def test_logit_scale_is_clamped_on_the_parameter_after_each_step(tmp_path, monkeypatch, objective):
    """Started above ln 100, the learnable scale is brought back to ln 100 by the in-place clamp after the
    first step (as open_clip_train does) and keeps a gradient, so it can move below the cap again; the
    logged scale never exceeds 100. (A clamp in the forward pass left it above ln 100 forever.)"""
    real = run_mod.build_setup

    def build_hot(*args, **kw):
        setup = real(*args, **kw)
        for name, p in setup.model.named_parameters():
            if name.endswith("logit_scale"):
                with torch.no_grad():
                    p.fill_(math.log(100) + 1.0)
        return setup

    monkeypatch.setattr(run_mod, "build_setup", build_hot)
    train(cfg(objective={"name": objective}, log_every=1), tmp_path / "r", progress=False)
    scales = [x["logit_scale"] for x in log(tmp_path / "r")]
    assert len(scales) == 6 and max(scales) <= 100.0 + 1e-3
    final = [v for k, v in weights(tmp_path / "r").items() if k.endswith("logit_scale")]
    assert len(final) == 1 and float(final[0]) <= math.log(100) + 1e-6


def test_weight_decay_groups_follow_open_clip_train():
    """open_clip_train (main.py) exempts p.ndim < 2 and names with bn/ln/bias/logit_scale from weight
    decay; embeddings (token, positional) decay like any matrix."""
    from clipshift.models import ModelConfig, build_clip
    from clipshift.models.text import build_tokenizer
    from clipshift.train.schedule import param_groups

    model = build_clip(ModelConfig(), build_tokenizer("openclip", None))
    groups = param_groups(model, 0.1)
    no_decay = {id(p) for p in groups[0]["params"]}

    def open_clip_exempts(n: str, p: torch.Tensor) -> bool:
        return p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n

    for name, p in model.named_parameters():
        assert (id(p) in no_decay) == open_clip_exempts(name, p), name
    names = {n for n, p in model.named_parameters() if id(p) not in no_decay}
    assert {"token_embedding.weight", "positional_embedding"} <= names


def test_non_finite_loss_stops_with_a_record(tmp_path, monkeypatch):
    real = loop_mod.step_loss
    calls = {"n": 0}

    def flaky(*args, **kw):
        calls["n"] += 1
        loss = real(*args, **kw)
        return loss * float("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr(loop_mod, "step_loss", flaky)
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
    # another config in the same directory is refused in one line naming the first difference (the old
    # run is neither reported for it nor silently replaced); --no-resume trains it
    assert main([*argv, "--set", "seed=1"]) == 2 and final.stat().st_mtime_ns == mtime
    err = capsys.readouterr().err.strip()
    assert "holds a finished run with another config (seed: 0 there, 1 now)" in err and "\n" not in err
    assert "--no-resume" in err
    assert main([*argv, "--set", "seed=1", "--no-resume"]) == 0 and final.stat().st_mtime_ns != mtime
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--set", "optim.lr=-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "optim.lr = -1" in err and "\n" not in err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("data", ["world", "csv"])
def test_ddp_two_cpu_processes_gloo(tmp_path, data):
    """Two gloo ranks train one run. On the world (a ViT: no batch norm, whose statistics are per rank)
    the logged loss is the global batch's, step for step the same as one process on the same batch;
    files on disk are decoded by rank 0 only; one rank reports; every rank waits for the others before
    leaving (a rank that left while rank 0 wrote the record made the run abort under load)."""
    run_cfg = {**TINY, "threads": 1, "log_every": 1}
    if data == "world":
        run_cfg["model"] = {"name": "clipshift-vit-tiny"}
    else:  # files on disk: rank 0 decodes them, rank 1 reads its cache
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
        str(_free_port()),
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
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("final.pt") == 1 and proc.stderr.count("done: ") == 1
    rec = json.loads((tmp_path / "ddp" / "final.json").read_text())
    assert rec["status"] == "done" and rec["world_size"] == 2 and rec["steps"] == 6
    if data == "csv":
        assert rec["data"]["cache_by_rank"] == ["miss", "hit"]
        return
    logged = [json.loads(x)["loss"] for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    train(TrainConfig.model_validate(run_cfg), tmp_path / "one", progress=False)
    alone = [json.loads(x)["loss"] for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert len(logged) == 6 and logged == pytest.approx(alone, abs=1e-4)
    assert rec["final_loss"] == pytest.approx(alone[-1], abs=1e-4)


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


def test_resume_compares_what_the_run_reads(tmp_path):
    """An interrupted run's saved config is compared on what the run reads (train.identity): a config
    saved with every objective's fields (as before options were per objective), or with other captions
    for an objective that reads none, continues; a setting the run reads does not."""
    from clipshift.train.resume import check_resume

    run = tmp_path / "r"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest.pt").write_bytes(b"")
    sup = cfg(objective={"name": "supervised"}, model={"tokenizer": "vocab"})
    saved = sup.model_dump(mode="json")
    saved["objective"].update(dynamic_k=50, dynamic_weighting="uniform", templates=None, texthead_from=None)
    saved["data"]["world"]["captions"]["level"] = "template"
    saved["model"]["tokenizer"] = "openclip"
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert check_resume(run, sup.model_dump(mode="json")) is None  # nothing finished: it continues
    clip = cfg(objective={"name": "clip"})
    saved = clip.model_dump(mode="json")
    saved["data"]["world"]["captions"]["level"] = "template"
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(UserError, match=r"another config \(data\.world\.captions\.level: 'template' there"):
        check_resume(run, clip.model_dump(mode="json"))
