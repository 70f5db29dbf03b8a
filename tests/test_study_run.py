"""Running studies end to end with tiny runs: skip/resume, the SIGKILL test, failures and --retry-failed,
`study status`, the process-pool and Ray executors giving the same results table as a local run."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from clipshift.cli.main import main
from clipshift.study import ResultsStore, load_study, plan, run_study, study_status
from clipshift.study.execute import LOCK

# Two tiny CLIP-family runs with a linear probe beside zero-shot. The threads are left to the planner,
# which fixes them in each run's config (2): every executor must then give the same table.
TINY = {
    "name": "tiny",
    "base": {
        "data": {"kind": "world", "n": 512, "world": {"concepts": {"n_classes": 6}}},
        "model": {"tokenizer": "vocab"},
        "optim": {"batch_size": 64},
        "checkpoint_every": 2,
        "log_every": 2,
        "eval": {"sets": ["iid", "counter"], "n_per_set": 120, "linear_probe": True, "probe_n": 120},
    },
    "grid": {"objective.name": ["clip", "siglip"]},
    "seeds": [0],
}


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    n = torch.get_num_threads()  # runs set their own threads in this process; later tests expect the default
    yield
    torch.set_num_threads(n)


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def table(study_dir: Path) -> list[dict]:
    with ResultsStore(study_dir / "results.sqlite") as store:
        return store.results()


def export_csv(study_dir: Path) -> str:
    out = study_dir.parent / f"{study_dir.name}.csv"
    assert main(["study", "export", str(study_dir), "--format", "csv", "--out", str(out)]) == 0
    return out.read_text()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The study run uninterrupted, in this process."""
    root = tmp_path_factory.mktemp("ref")
    spec = write_spec(root / "study.yaml", TINY)
    summary = run_study(spec, root / "study", progress=False)
    assert summary.ok and summary.ran == 2 and summary.total == 2
    return root / "study"


def test_reference_study_layout_store_and_rerun_skips(reference, capsys):
    runs = plan(load_study(reference / "study.yaml"))
    for r in runs:
        d = reference / "runs" / r.run_id
        for name in ("config.yaml", "metrics.jsonl", "final.json", "run.json", "eval.json", "done"):
            assert (d / name).is_file(), name
        assert (d / "checkpoints" / "final.pt").is_file() and not (d / "checkpoints" / "latest.pt").exists()
        done = json.loads((d / "done").read_text())
        assert done["run_id"] == r.run_id and done["factors"] == r.factors and done["rows"] > 0
    with ResultsStore(reference / "results.sqlite") as store:
        assert store.get_meta("name") == "tiny" and store.get_meta("spec")["grid"] == TINY["grid"]
        assert store.get_meta("warnings") == []  # both objectives read every setting the grid varies
        meta = {r["run_id"]: r for r in store.runs()}
    assert {m["status"] for m in meta.values()} == {"done"}
    first = meta[runs[0].run_id]
    assert first["factors"] == {"objective.name": "clip"} and first["seed"] == 0
    assert first["run_dir"] == f"runs/{runs[0].run_id}" and first["wall_s"] > 0 and first["samples_per_s"] > 0
    rows = table(reference)
    metrics = {(r["eval_set"], r["task"], r["metric"]) for r in rows if r["class_id"] == -1}
    zs, lp = "zeroshot_classification", "linear_probe"
    assert {
        ("iid", zs, "acc1"),
        ("counter", zs, "acc1"),
        ("iid", lp, "acc1"),
        ("counter", lp, "acc1"),
    } <= metrics
    # every run's checks (from final.json) and its convergence check (snapshots at 0.5 and 0.75 of training)
    assert {
        ("train", "checks", "data/classes_per_batch_mean"),
        ("train", "checks", "objective/classes_scored_mean"),
        ("train", "checks", "loss/slope_last_fifth"),
        ("iid", "convergence", "acc1@0.50"),
        ("iid", "convergence", "acc1@0.75"),
        ("iid", "convergence", "acc1@1.00"),
    } <= metrics
    for r in runs:  # the run trained and evaluated with the thread count its config fixes
        final = json.loads((reference / "runs" / r.run_id / "final.json").read_text())
        assert r.config.threads == final["threads"] == 2
        assert set(final["snapshots"]) == {"0.50", "0.75"}
        mine = {
            x["metric"]: x["value"]
            for x in rows
            if x["run_id"] == r.run_id and x["task"] == "checks" and not math.isnan(x["value"])
        }
        assert mine == pytest.approx({k: v for k, v in final["checks"].items() if v is not None})
        acc = [x["value"] for x in rows if x["run_id"] == r.run_id and x["task"] == "convergence"]
        assert len(acc) == 3 and all(0 <= a <= 1 for a in acc)
    assert all(r["study"] == "tiny" for r in rows) and {r["run_id"] for r in rows} == set(meta)

    stamp = {r.run_id: (reference / "runs" / r.run_id / "done").stat().st_mtime_ns for r in runs}
    assert main(["study", "run", str(reference / "study.yaml"), "--out", str(reference)]) == 0
    err = capsys.readouterr().err
    assert "2/2 runs done (2 already, 0 now)" in err and "start" not in err
    assert stamp == {r.run_id: (reference / "runs" / r.run_id / "done").stat().st_mtime_ns for r in runs}
    assert table(reference) == rows


def test_sigkill_mid_run_then_rerun_gives_the_same_table_and_retrains_nothing_finished(
    reference, tmp_path, capsys
):
    spec = write_spec(tmp_path / "study.yaml", TINY)
    out = tmp_path / "killed"
    first, second = (r.run_id for r in plan(load_study(spec)))
    cmd = [sys.executable, "-m", "clipshift", "study", "run", str(spec), "--out", str(out), "--quiet"]
    log = open(tmp_path / "killed.log", "w")  # noqa: SIM115 (a file, not a pipe: a full pipe would block it)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "runs" / first / "done").exists() and (
                out / "runs" / second / "checkpoints" / "latest.pt"
            ).exists():
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == -signal.SIGKILL, (
        f"the study ended before the second run was mid-training: {(tmp_path / 'killed.log').read_text()}"
    )
    assert not (out / "runs" / second / "done").exists()

    st = study_status(out)
    assert st["counts"] == {"done": 1, "running": 0, "failed": 0, "pending": 1}
    assert st["runs"][1]["resumable"] is True  # killed mid-training, its checkpoint is there

    finished = out / "runs" / first
    before = {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()}
    summary = run_study(spec, out)
    assert summary.ok and summary.skipped == 1 and summary.ran == 1
    err = capsys.readouterr().err
    assert (
        f"start  {second}" in err and "resuming from its checkpoint" in err and f"start  {first}" not in err
    )
    assert before == {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()}  # untouched
    steps = [
        json.loads(x)["step"] for x in (out / "runs" / second / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == sorted(set(steps)) and steps[-1] == 8  # one continuous log across the kill
    assert export_csv(out) == export_csv(reference)


def test_process_pool_gives_the_same_table_as_local(reference, tmp_path):
    spec = write_spec(tmp_path / "study.yaml", TINY)
    summary = run_study(spec, tmp_path / "pool", executor="process", workers=2, progress=False)
    assert summary.ok and summary.ran == 2
    assert export_csv(tmp_path / "pool") == export_csv(reference)


def test_ray_cluster_on_loopback_runs_the_study_with_the_same_table(reference, tmp_path):
    pytest.importorskip("ray")
    from clipshift.study.executors import RayExecutor

    spec = write_spec(tmp_path / "study.yaml", TINY)
    out = tmp_path / "ray"
    cluster = RayExecutor(None, 2)  # starts a local instance
    try:
        import ray

        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}  # loopback only
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:")
        # a second driver joins that cluster by address and runs the study through it
        cmd = [sys.executable, "-m", "clipshift", "study", "run", str(spec), "--out", str(out)]
        cmd += ["--executor", "ray", "--address", address, "--quiet", "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    finally:
        cluster.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert (summary["ran"], summary["failed"]) == (2, 0)
    assert export_csv(out) == export_csv(reference)


def test_failed_runs_are_recorded_and_retried(tmp_path, capsys, monkeypatch):
    from clipshift.train import run as train_run

    spec = {**TINY, "name": "failing", "grid": {"optim.lr": [2e-3, 1e9]}}
    spec["base"] = {
        **TINY["base"],
        "objective": {"name": "supervised"},
        "model": {},
        "optim": {"batch_size": 64, "warmup": 0},
    }
    path = write_spec(tmp_path / "study.yaml", spec)
    out = tmp_path / "study"
    good, bad = plan(load_study(path))
    real, calls = train_run.train, []

    def transient(cfg, out_dir, **kw):  # the good run's first attempt meets a transient fault
        calls.append(Path(out_dir).name)
        if Path(out_dir).name == good.run_id and calls.count(good.run_id) == 1:
            raise OSError("disk full")
        return real(cfg, out_dir, **kw)

    monkeypatch.setattr(train_run, "train", transient)
    assert main(["study", "run", str(path), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"failed {bad.run_id} (optim.lr=1000000000.0 seed=0): non-finite loss" in err
    assert f"failed {good.run_id} (optim.lr=0.002 seed=0): OSError: disk full" in err
    assert "study failing: 0/2 runs done (0 already, 0 now), 2 failed" in err
    with ResultsStore(out / "results.sqlite") as store:
        reasons = {r["run_id"]: (r["status"], r["reason"]) for r in store.runs()}
    assert reasons[bad.run_id][0] == "failed" and "non-finite loss" in reasons[bad.run_id][1]
    assert (out / "runs" / bad.run_id / "error.log").read_text().strip()

    assert main(["study", "status", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["run_id", "status", "optim.lr", "seed"]
    assert any(line.startswith(f"{bad.run_id}  failed") and "non-finite loss" in line for line in lines)
    assert lines[-1] == "study failing: 2 runs: 0 done, 0 running, 2 failed, 0 pending"

    assert main(["study", "run", str(path), "--out", str(out), "--quiet"]) == 1  # failed runs stay failed
    assert len(calls) == 2
    capsys.readouterr()
    assert main(["study", "run", str(path), "--out", str(out), "--retry-failed", "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert (summary["done"], summary["ran"], summary["failed"]) == (1, 1, 1) and len(calls) == 4
    assert summary["failures"][0]["run_id"] == bad.run_id
    assert main(["study", "status", str(out), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["counts"] == {"done": 1, "running": 0, "failed": 1, "pending": 0}
    assert {r["run_id"] for r in table(out)} == {good.run_id}


def test_status_sees_a_run_held_by_a_process_as_running(reference, tmp_path):
    import fcntl

    spec = write_spec(tmp_path / "study.yaml", TINY)
    out = tmp_path / "s"
    (out / "runs").mkdir(parents=True)
    (out / "study.yaml").write_text(spec.read_text())
    first = plan(load_study(spec))[0].run_id
    (out / "runs" / first).mkdir()
    with open(out / "runs" / first / LOCK, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        assert study_status(out)["counts"] == {"done": 0, "running": 1, "failed": 0, "pending": 1}
    assert study_status(out)["counts"]["pending"] == 2
    assert main(["study", "status", str(tmp_path / "nowhere")]) == 2


def test_changed_spec_reuses_shared_runs_and_prunes_the_rest(reference, tmp_path):
    # a copy of the reference study, then a spec with one of its two runs and one new point not run
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    spec = {**TINY, "grid": {"objective.name": ["clip"]}}
    summary = run_study(write_spec(tmp_path / "study.yaml", spec), out, progress=False)
    assert summary.ok and summary.skipped == 1 and summary.ran == 0
    rows = table(out)
    assert {r["factors"]["objective.name"] for r in rows} == {"clip"}
    assert rows == [r for r in table(reference) if r["factors"]["objective.name"] == "clip"]
    assert os.path.isdir(out / "runs" / plan(load_study(reference / "study.yaml"))[1].run_id)  # kept on disk
