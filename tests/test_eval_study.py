"""Evaluation studies: a zoo of existing checkpoints (tiny random-tower models saved as an ARCH:PATH state
dict, .safetensors, and clipshift classifier checkpoints) evaluated on world sets with the study machinery.
Rows equal `clipshift eval`'s numbers, reruns skip finished runs, run ids follow the checkpoint's content
(not its path), family analyses work, image features are computed once, and a bad path is one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from test_study_run import table as rows_of  # the store's rows
from test_study_run import write_spec as write

from clipshift.cli.main import main
from clipshift.errors import UserError
from clipshift.study import ResultsStore, load_study, plan, run_study

WORLD = {"concepts": {"n_classes": 5}, "backgrounds": {"n_backgrounds": 6}}
N = 25  # per world set: 5 per class
ARCH = "clipshift-rn-tiny"
SETS = ["iid", "common", "counter"]
# effective robustness above the line through the imagenet family's models
ER = {"kind": "effective_robustness", "x": "iid", "y": ["counter"], "baseline": {"family": "imagenet"}}
ZOO = Path(__file__).resolve().parent.parent / "studies" / "zoo.yaml"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """The digest cache in a temporary folder, never the user's; torch threads restored after each test."""
    monkeypatch.setenv("CLIPSHIFT_CACHE", str(tmp_path / "cache"))
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _classifier(seed: int, world) -> dict:
    """A classifier checkpoint whose head is its random tower's centred class means on world images
    apart from the evaluation sets' (so its accuracy is above chance and differs between seeds)."""
    from clipshift.evaluate.datasets import world_set
    from clipshift.evaluate.model import DEFAULT_MEAN, DEFAULT_STD
    from clipshift.models import ModelConfig, build_classifier

    torch.manual_seed(seed)
    clf = build_classifier(ModelConfig(), 5, "linear").eval()
    data = world_set(world, "iid", 100, start=50_000, image_size=32)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (DEFAULT_MEAN, DEFAULT_STD))
    with torch.no_grad():
        f = torch.nn.functional.normalize(clf.visual((data.images.float() / 255 - mean) / std), dim=-1)
        means = torch.stack([f[torch.as_tensor(data.labels == c)].mean(0) for c in range(5)])
        clf.head.fc.weight.copy_(means - means.mean(0))
        clf.head.fc.bias.zero_()
    return {"state_dict": clf.state_dict(), "name": ARCH, "kind": "classifier"}


def _clip_state(seed: int) -> dict:
    from clipshift.models import ModelConfig, OpenClipTokenizer, build_clip

    torch.manual_seed(seed)
    return build_clip(ModelConfig(), OpenClipTokenizer()).state_dict()


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Four checkpoints in four formats, the world file `clipshift eval --world` reads, and a zoo study."""
    from safetensors.torch import save_file

    from clipshift.world import World, WorldSpec

    root = tmp_path_factory.mktemp("zoo")
    world = World(WorldSpec.model_validate(WORLD))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.save(_clip_state(1), root / "a.pt")
        save_file({k: v.contiguous() for k, v in _clip_state(2).items()}, str(root / "b.safetensors"))
        for seed in (4, 6):
            torch.save(_classifier(seed, world), root / f"c{seed}.pt")
    finally:
        torch.set_num_threads(threads)
    (root / "world.yaml").write_text(yaml.safe_dump(WORLD))
    models = [
        {"name": "a", "model": f"{ARCH}:{root / 'a.pt'}", "family": "clip"},
        {"name": "b", "model": ARCH, "pretrained": str(root / "b.safetensors"), "family": "clip"},
        {"name": "c4", "model": str(root / "c4.pt"), "family": "imagenet"},
        {"name": "c6", "model": str(root / "c6.pt"), "family": "imagenet"},
    ]
    spec = {
        "name": "zoo-test",
        "models": models,
        # one thread: on a busy 2-core machine two-thread small ops mostly wait for each other
        "base": {"world": WORLD, "eval": {"sets": SETS, "n_per_set": N}, "threads": 1},
        "analyses": [ER, {**ER, "compare": "family"}, {"kind": "spurious_drop", "compare": "family"}],
    }
    path = root / "zoo.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return root, path, spec


@pytest.fixture(scope="module")
def ran(zoo, tmp_path_factory):
    root, path, _ = zoo
    out = tmp_path_factory.mktemp("ran") / "study"
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse fixture is per test
        mp.setenv("CLIPSHIFT_CACHE", str(root / "cache"))
        summary = run_study(path, out, progress=False)
    assert summary.ok and summary.ran == 4 and summary.total == 4, summary.line()
    return out


def test_plan_lists_one_run_per_model_with_model_and_family_factors(zoo, capsys):
    _, path, _ = zoo
    runs = plan(load_study(path))
    assert [r.factors for r in runs] == [
        {"model": "a", "family": "clip"},
        {"model": "b", "family": "clip"},
        {"model": "c4", "family": "imagenet"},
        {"model": "c6", "family": "imagenet"},
    ]
    assert len({r.run_id for r in runs}) == 4 and {r.seed for r in runs} == {0}
    assert [r.checkpoint["kind"] for r in runs] == ["clip", "clip", "classifier", "classifier"]
    assert main(["study", "plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.split("\n")[0].split() == ["run_id", "model", "family", "weights_sha256"]
    assert all(r.run_id in out for r in runs)


def test_rows_equal_clipshift_eval_on_the_same_model(zoo, ran, tmp_path):
    root, _, spec = zoo
    rows = rows_of(ran)
    by_model = {}
    for r in rows:
        by_model.setdefault(r["factors"]["model"], []).append(r)
    assert set(by_model) == {"a", "b", "c4", "c6"}
    for entry in spec["models"][1:3]:  # the safetensors CLIP (ARCH + pretrained) and a classifier
        out = tmp_path / f"{entry['name']}.json"
        args = ["eval", "--model", entry["model"], "--world", str(root / "world.yaml"), "--n", str(N),
                "--templates", "world", "--threads", "1", "--out", str(out), "--quiet"]  # fmt: skip
        if entry.get("pretrained"):
            args += ["--pretrained", entry["pretrained"]]
        for s in ("iid", "counter"):
            args += ["--dataset", s]
        assert main(args) == 0
        docs = json.loads(out.read_text())
        assert [d["dataset"] for d in docs] == ["iid", "counter"]
        for d in docs:
            mine = {
                r["metric"]: r["value"]
                for r in by_model[entry["name"]]
                if r["eval_set"] == d["dataset"] and r["class_id"] == -1 and r["task"] == d["task"]
            }
            theirs = {k: v for k, v in d["metrics"].items() if v is not None}
            assert {"acc1", "acc5", "mean_per_class_recall"} <= set(theirs)
            assert {k: mine[k] for k in theirs} == theirs, (entry["name"], d["dataset"])  # identical numbers
    accs = {
        m: [r["value"] for r in rs if r["eval_set"] == "iid" and r["metric"] == "acc1"]
        for m, rs in by_model.items()
    }
    assert accs["c4"] != accs["c6"]  # the baseline line has two distinct points


def test_rerun_skips_finished_runs_and_an_interrupted_run_is_evaluated_again(zoo, ran, tmp_path):
    _, path, _ = zoo
    out = tmp_path / "study"
    shutil.copytree(ran, out)
    runs = plan(load_study(path))
    stamps = {r.run_id: (out / "runs" / r.run_id / "done").stat().st_mtime_ns for r in runs}
    before = sorted(rows_of(out), key=repr)
    again = run_study(path, out, progress=False)
    assert (again.skipped, again.ran, again.done) == (4, 0, 4)
    # a run killed mid-evaluation: its directory has run.json but no `done` (and the store no rows)
    victim = runs[1].run_id
    (out / "runs" / victim / "done").unlink()
    (out / "runs" / victim / "eval.json").unlink()
    with ResultsStore(out / "results.sqlite") as store:
        store.remove_runs([victim])
    resumed = run_study(path, out, progress=False, executor="process", workers=1)  # in a worker process
    assert (resumed.skipped, resumed.ran, resumed.done) == (3, 1, 4)
    assert sorted(rows_of(out), key=repr) == before  # the same numbers as in this process
    for r in runs:
        if r.run_id != victim:
            assert (out / "runs" / r.run_id / "done").stat().st_mtime_ns == stamps[r.run_id]
    done = json.loads((out / "runs" / victim / "done").read_text())
    assert done["factors"] == {"model": "b", "family": "clip"} and done["rows"] > 0
    assert json.loads((out / "runs" / victim / "run.json").read_text())["checkpoint"] == runs[1].checkpoint
    # a new name and family are labels: the finished run is relabelled, not evaluated again
    spec = yaml.safe_load(path.read_text())
    spec["models"][1].update(name="b-renamed", family="other")
    relabelled = run_study(write(tmp_path / "renamed.yaml", spec), out, progress=False)
    assert (relabelled.skipped, relabelled.ran) == (4, 0)
    with ResultsStore(out / "results.sqlite") as store:
        factors = {r["run_id"]: r["factors"] for r in store.runs()}
    assert factors[victim] == {"model": "b-renamed", "family": "other"}

    def values(rows):
        return sorted(repr({k: v for k, v in r.items() if k not in ("factors", "study")}) for r in rows)

    assert values(rows_of(out)) == values(before)


def test_run_id_follows_the_checkpoints_content_not_its_path(zoo, tmp_path):
    root, _, spec = zoo

    def one(model: str, name: str = "m") -> str:
        s = {"name": "id", "models": [{"name": name, "model": model}], "base": spec["base"]}
        (run,) = plan(load_study(write(tmp_path / "id.yaml", s)))
        return run.run_id

    original = one(f"{ARCH}:{root / 'a.pt'}")
    assert original == plan(load_study(zoo[1]))[0].run_id  # names and families are labels, not identity
    elsewhere = tmp_path / "elsewhere" / "copy-of-a.pt"
    elsewhere.parent.mkdir()
    shutil.copy(root / "a.pt", elsewhere)
    assert one(f"{ARCH}:{elsewhere}", name="renamed") == original  # same bytes, another path: same run
    torch.save(_clip_state(5), elsewhere)  # other bytes at that path: another run
    assert one(f"{ARCH}:{elsewhere}") != original
    # the same weights in another format are other bytes: another run (the identity is the file's content)
    assert one(f"{ARCH}:{root / 'b.safetensors'}") != one(f"{ARCH}:{root / 'a.pt'}")
    # the same file twice in one study is refused, naming both entries
    again = elsewhere.parent / "again.pt"
    shutil.copy(root / "a.pt", again)
    models = [{"name": "x", "model": f"{ARCH}:{root / 'a.pt'}"}, {"name": "y", "model": f"{ARCH}:{again}"}]
    twice = {"name": "t", "models": models, "base": spec["base"]}
    with pytest.raises(UserError, match=r"models\[1\] \(y\) is the same checkpoint as models\[0\] \(x\)"):
        plan(load_study(write(tmp_path / "twice.yaml", twice)))


def test_digest_cache_is_keyed_by_path_size_and_mtime(zoo, tmp_path, monkeypatch):
    from clipshift.models import digest

    monkeypatch.setattr(digest, "CACHE_MIN_BYTES", 0)
    monkeypatch.setattr(digest, "_MEMO", {})
    f = tmp_path / "w.pt"
    shutil.copy(zoo[0] / "c4.pt", f)
    real = digest.file_sha256(f)
    import hashlib

    assert real == hashlib.sha256(f.read_bytes()).hexdigest()
    cache = json.loads(digest.cache_file().read_text())
    assert cache[str(f.resolve())][2] == real
    # a remembered digest is trusted while path, size and mtime match: the file is not read again
    cache[str(f.resolve())][2] = "f" * 64
    digest.cache_file().write_text(json.dumps(cache))
    monkeypatch.setattr(digest, "_MEMO", {})
    assert digest.file_sha256(f) == "f" * 64
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched: hashed anew
    monkeypatch.setattr(digest, "_MEMO", {})
    assert digest.file_sha256(f) == real


def test_report_compares_families(ran, tmp_path):
    from clipshift.report import build_report

    summary = build_report(ran, tmp_path / "report.html")
    kinds = [f.kind for f in summary.findings]
    assert kinds == ["effective_robustness", "effective_robustness", "spurious_drop"]
    er_membership, er_family, drop = summary.findings
    # the line is fitted through the two imagenet-family models, and the clip models are compared with it
    for f in (er_membership, er_family):
        assert f.conclusions and any("line through 2 runs" in n for n in f.notes), f.notes
        assert f.numbers and all(n["eval_set"] == "counter" for n in f.numbers)
    assert {(n["level"], n["ref"]) for n in er_family.numbers} == {("clip", "imagenet")}
    drops = [n for n in drop.numbers if n["what"] == "drop"]  # (beside each family's fitted line)
    assert {(n["level"], n["ref"]) for n in drops} == {("imagenet", "clip")}  # the file's first
    # the models are the replicates of their family: 2 runs per level, not one stratum per model
    table = drop.tables[0]
    assert [row[:2] for row in table.rows] == [["clip", "2"], ["imagenet", "2"]]
    html = (tmp_path / "report.html").read_text()
    assert "c6" in html and "family" in html and "4 runs evaluating 4 models" in html
    assert "Manipulation checks" not in html  # nothing was trained or manipulated
    assert main(["study", "export", str(ran), "--format", "csv", "--out", str(tmp_path / "t.csv")]) == 0
    header = (tmp_path / "t.csv").read_text().splitlines()[0].split(",")
    assert {"model", "family"} <= set(header)
    assert all(v.status in ("supported", "not_supported", "withheld") for v in summary.verdicts)


def test_a_grid_over_settings_computes_each_models_features_once(zoo, ran, tmp_path, monkeypatch):
    """Two runs of one checkpoint (prompts `simple`, then `world`) share its image features: every set is
    forwarded once, and the `world` run, from the shared features, equals the zoo study's run."""
    from clipshift.evaluate import model as em

    _, _, spec = zoo
    seen: list[int] = []
    real = em._image_features

    def counting(model, images, n, *args):
        seen.append(n)
        return real(model, images, n, *args)

    monkeypatch.setattr(em, "_image_features", counting)
    s = {"name": "grid", "models": [spec["models"][0]], "base": spec["base"],
         "grid": {"eval.templates": ["simple", "world"]}}  # fmt: skip
    out = tmp_path / "grid"
    summary = run_study(write(tmp_path / "grid.yaml", s), out, progress=False)
    assert summary.ok and summary.ran == 2
    assert seen == [N] * len(SETS)  # three sets, once each, for two runs
    assert len(list((out / "features").glob("*.pt"))) == len(SETS)
    runs = plan(load_study(tmp_path / "grid.yaml"))
    world_run = next(r for r in runs if r.factors["eval.templates"] == "world")
    assert world_run.run_id == plan(load_study(zoo[1]))[0].run_id  # the same evaluation as model a's

    def values(rows, rid):
        return sorted(
            (r["eval_set"], r["task"], r["metric"], r["class_id"], r["value"])
            for r in rows
            if r["run_id"] == rid
        )

    assert values(rows_of(out), world_run.run_id) == values(rows_of(ran), world_run.run_id)


def test_zero_shot_probes_and_subsets_read_one_pass_of_features(zoo, monkeypatch):
    """Within one evaluation, zero-shot, linear probe, kNN, group and subset metrics share the set's one
    pass of image features; the probe's own training images are one more pass."""
    from clipshift.evaluate import EvalConfig, core, evaluate_sets, open_model
    from clipshift.world import World, WorldSpec

    root, _, _ = zoo
    torch.set_num_threads(1)  # restored after the test
    model = open_model(f"{ARCH}:{root / 'a.pt'}")
    from clipshift.evaluate import model as model_mod

    forwarded: list[int] = []
    encoder = model_mod.image_encoder

    def counting(m):
        encode = encoder(m)

        def forward(x):
            forwarded.append(len(x))
            return encode(x)

        return forward

    monkeypatch.setattr(model_mod, "image_encoder", counting)
    load = core.load_eval_data

    def with_subset(spec, size, **kw):
        data = load(spec, size, **kw)
        data.subsets = {"first3": [[0], [1], [2]]}
        return data

    monkeypatch.setattr(core, "load_eval_data", with_subset)
    cfg = EvalConfig(sets=["iid"], n_per_set=20, linear_probe=True, knn=True, probe_n=20)
    results = evaluate_sets(model, cfg, world=World(WorldSpec.model_validate(WORLD)))
    assert [r.task for r in results] == ["zeroshot_classification", "linear_probe", "knn"]
    assert all("subset/first3/acc1" in r.metrics for r in results)
    assert sum(forwarded) == 20 + 20  # the set once, the probe's training samples once


def test_bad_input_is_one_line_naming_file_field_and_value(zoo, tmp_path, capsys):
    root, _, spec = zoo
    missing = str(root / "nowhere.pt")
    bad = {**spec, "models": [*spec["models"][:1], {"name": "ghost", "model": missing}]}
    path = write(tmp_path / "bad.yaml", bad)
    with pytest.raises(UserError) as e:
        plan(load_study(path))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}: models[1] (ghost): ") and missing in msg
    assert main(["study", "plan", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "models[1] (ghost)" in err and "Traceback" not in err
    cases = [
        ({**spec, "base": {**spec["base"], "eval": {"sets": ["imagefolder:/no/such/dir"]}}},
         "eval.sets[0] = 'imagefolder:/no/such/dir': /no/such/dir not found"),
        ({**spec, "base": {"eval": {"sets": ["iid"]}}}, "a world set needs a world"),
        ({**spec, "seeds": [0, 1]}, "seeds = [0, 1]: an evaluation study trains nothing"),
        ({**spec, "models": [spec["models"][0], {**spec["models"][1], "name": "a"}]},
         "models[1].name = 'a': models[0] has that name too"),
        ({**spec, "grid": {"model": ["x"]}}, "varies its models through `models:`"),
        ({**spec, "base": {**spec["base"], "epochs": 2}}, "base.epochs: unknown field"),
        ({**spec, "models": [{"model": "x", "colour": 1}]}, r"models\.0\.colour|models\[0\]\.colour"),
        ({**spec, "analyses": [{"kind": "spurious_drop", "compare": "objective.name"}]},
         "compare = 'objective.name': not a factor of the study"),
        ({**spec, "analyses": [{"kind": "effective_robustness", "x": "imagenet"}]},
         "analyses[0].x = 'imagenet' (effective_robustness): names no evaluated set (the runs evaluate iid, "
         "common, counter)"),
    ]  # fmt: skip
    for i, (s, needle) in enumerate(cases):
        with pytest.raises(UserError, match=needle if "|" in needle else None) as e:
            plan(load_study(write(tmp_path / f"bad{i}.yaml", s)))
        assert "\n" not in str(e.value)
        if "|" not in needle:
            assert needle in str(e.value), str(e.value)


def test_shipped_zoo_validates_and_names_its_first_missing_path(capsys):
    spec = load_study(ZOO)
    assert spec.evaluates and len(spec.models or []) >= 3
    assert {m.family for m in spec.models or []} >= {"clip", "imagenet"}
    assert main(["study", "plan", str(ZOO)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "models[0]" in err[0] and "/models/" in err[0], err


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_identity_of_each_format_covers_the_files_its_loader_reads_and_no_path(tmp_path):
    """Snapshot folders, OpenAI archives and clipshift run directories: a copy under another name is the
    same model; a change to any file the loader reads (a snapshot's config, a run's tokenizer) is not."""
    from test_snapshots import openai_archive, write_snapshot

    from clipshift.models import ModelConfig, OpenClipTokenizer, build_clip, open_clip_config
    from clipshift.models.digest import checkpoint_identity

    torch.set_num_threads(1)  # restored after the test
    tok = OpenClipTokenizer()
    model = build_clip(ModelConfig(), tok)
    snap = write_snapshot(tmp_path / "snap", model, open_clip_config(ModelConfig(), tok))
    ident = checkpoint_identity(snap)
    assert set(ident["files"]) == {"weights", "open_clip_config.json"} and "arch" not in ident
    assert checkpoint_identity(shutil.copytree(snap, tmp_path / "other-name")) == ident
    cfg = json.loads((snap / "open_clip_config.json").read_text())
    cfg["preprocess_cfg"]["mean"] = [0.5, 0.5, 0.5]
    (tmp_path / "other-name" / "open_clip_config.json").write_text(json.dumps(cfg))
    assert checkpoint_identity(tmp_path / "other-name") != ident

    openai_archive(tmp_path / "ViT-B-32.pt")
    shutil.copy(tmp_path / "ViT-B-32.pt", tmp_path / "renamed.pt")
    ts = checkpoint_identity(tmp_path / "ViT-B-32.pt")
    assert ts["format"] == "torchscript" and ts == checkpoint_identity(tmp_path / "renamed.pt")

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "open_clip_config").mkdir()
    torch.save(
        {"state_dict": model.state_dict(), "name": ARCH, "kind": "clip"}, run / "checkpoints" / "final.pt"
    )
    (run / "open_clip_config" / f"{ARCH}.json").write_text(json.dumps(open_clip_config(ModelConfig(), tok)))
    (run / "tokenizer.json").write_text(json.dumps(tok.state()))
    (run / "final.json").write_text(json.dumps({"class_names": ["zorp", "dub"], "wall_s": 3.0}))
    ident = checkpoint_identity(run)
    assert ident["format"] == "run" and ident["class_names"] == ["zorp", "dub"]
    assert set(ident["files"]) == {"weights", "tokenizer.json", f"open_clip_config/{ARCH}.json"}
    copy = shutil.copytree(run, tmp_path / "run-copy")
    (copy / "final.json").write_text(json.dumps({"class_names": ["zorp", "dub"], "wall_s": 9.0}))
    assert checkpoint_identity(copy) == ident  # a run's timing is no part of the model
    (copy / "tokenizer.json").write_text(json.dumps({**tok.state(), "context_length": 16}))
    assert checkpoint_identity(copy) != ident


def test_torchvision_and_timm_specs_are_identified_by_content_and_default_to_their_family(zoo, tmp_path):
    """tv:/timm: entries are located and hashed without loading them (any bytes do here); torchvision's
    file name picks its preprocessing, so it is part of a tv: identity, while the folder is not."""
    from clipshift.models.digest import checkpoint_identity

    spec = zoo[2]
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "resnet50-0676ba61.pth").write_bytes(b"weights")
    (tmp_path / "x" / "renamed.pth").write_bytes(b"weights")
    tv = checkpoint_identity(f"tv:resnet50:{tmp_path / 'x' / 'resnet50-0676ba61.pth'}")
    assert tv["library"] == "tv" and tv["file_name"] == "resnet50-0676ba61.pth"
    assert checkpoint_identity(f"tv:resnet50:{tmp_path / 'y' / 'resnet50-0676ba61.pth'}") == tv
    assert checkpoint_identity("tv:resnet50", tmp_path / "x" / "renamed.pth") != tv
    timm = checkpoint_identity(f"timm:test_resnet:{tmp_path / 'x' / 'renamed.pth'}")
    assert "file_name" not in timm
    assert checkpoint_identity(f"timm:test_resnet:{tmp_path / 'y' / 'resnet50-0676ba61.pth'}") == timm
    s = {"name": "tv", "models": [spec["models"][0], f"timm:test_resnet:{tmp_path / 'x' / 'renamed.pth'}"],
         "base": spec["base"]}  # fmt: skip
    runs = plan(load_study(write(tmp_path / "tv.yaml", s)))
    assert [r.factors["family"] for r in runs] == ["clip", "imagenet_classifier"]
    s["models"].append(f"tv:resnet50:{tmp_path / 'nowhere.pth'}")
    with pytest.raises(UserError, match=r"models\[2\] \(tv:resnet50:.*nowhere.pth\): .*not found"):
        plan(load_study(write(tmp_path / "tv.yaml", s)))


def test_a_torchvision_classifier_runs_in_an_evaluation_study_as_in_clipshift_eval(tmp_path):
    """A tv: model (random-initialised, its own preprocessing and 1000-way head) on an ImageNet-R layout:
    the study's numbers are `clipshift eval`'s."""
    import torchvision
    from test_classifiers import TV_ARCH, _images

    from clipshift.evaluate.datasets import imagenet_tables

    torch.set_num_threads(1)  # restored after the test
    torch.manual_seed(0)
    net = torchvision.models.get_model(TV_ARCH, weights=None, num_classes=1000)
    torch.save(net.state_dict(), tmp_path / "tv.pth")
    subset, images = imagenet_tables()["imagenet-r"], iter(_images(6, 0))
    for wnid in (subset[0], subset[5], subset[199]):
        for k in range(2):
            (tmp_path / "inr" / wnid).mkdir(parents=True, exist_ok=True)
            next(images).save(tmp_path / "inr" / wnid / f"{k}.png")
    model, dataset = f"tv:{TV_ARCH}:{tmp_path / 'tv.pth'}", f"imagenet-r:{tmp_path / 'inr'}"
    s = {"name": "tv", "models": [{"name": "regnet", "model": model}],
         "base": {"eval": {"sets": [dataset], "templates": "openai"}, "threads": 1}}  # fmt: skip
    summary = run_study(write(tmp_path / "tv.yaml", s), tmp_path / "study", progress=False)
    assert summary.ok and summary.ran == 1, summary.line()
    rows = [r for r in rows_of(tmp_path / "study") if r["class_id"] == -1 and r["task"] == "classification"]
    assert {r["factors"]["family"] for r in rows} == {"imagenet_classifier"}
    out = tmp_path / "eval.json"
    args = ["eval", "--model", model, "--dataset", dataset, "--threads", "1", "--out", str(out), "--quiet"]
    assert main(args) == 0
    theirs = {k: v for k, v in json.loads(out.read_text())["metrics"].items() if v is not None}
    mine = {r["metric"]: r["value"] for r in rows}
    assert "acc1" in theirs and {k: mine[k] for k in theirs} == theirs
