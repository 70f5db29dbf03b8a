"""The results store (SQLite, WAL) and the tidy export: API, several processes writing at once, CSV and
Parquet. Nothing is trained here."""

import csv
import math
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from clipshift.cli.main import main
from clipshift.errors import UserError
from clipshift.study.export import export_results
from clipshift.study.store import ResultsStore


def fill(store: ResultsStore) -> None:
    store.set_meta(
        "spec", {"name": "s", "grid": {"objective.name": ["clip", "supervised"]}, "zip": [{"data.n": [1, 2]}]}
    )
    store.set_meta("name", "s")
    store.upsert_run(
        "a", study="s", factors={"objective.name": "clip", "data.n": 1}, seed=0, status="done", wall_s=1.5
    )
    store.upsert_run(
        "b", study="s", factors={"objective.name": "supervised", "data.n": 2}, seed=1, status="done"
    )
    store.upsert_run(
        "c",
        study="s",
        factors={"objective.name": "clip", "data.n": 2},
        seed=0,
        status="failed",
        reason="boom",
    )
    zs = "zeroshot_classification"
    store.add_results(
        "a",
        [
            ("iid", zs, "acc1", -1, 0.5),
            ("iid", zs, "class_acc", 0, 0.25),
            ("iid", zs, "class_acc", 1, math.nan),
        ],
    )
    store.add_results("b", [("iid", "classification", "acc1", -1, 0.75)])
    store.add_results("c", [("iid", zs, "acc1", -1, 0.1)])  # a failed run's rows are not results


def test_store_api(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        fill(store)
        assert store.get_meta("name") == "s" and store.get_meta("missing") is None
        assert store.get_meta("spec")["grid"] == {"objective.name": ["clip", "supervised"]}
        runs = {r["run_id"]: r for r in store.runs()}
        assert runs["a"]["factors"] == {"objective.name": "clip", "data.n": 1} and runs["a"]["wall_s"] == 1.5
        assert runs["c"]["status"] == "failed" and runs["c"]["reason"] == "boom" and runs["a"]["updated"]
        rows = store.results()
        assert [(r["run_id"], r["eval_set"], r["task"], r["metric"], r["class_id"]) for r in rows] == [
            ("a", "iid", "zeroshot_classification", "acc1", -1),
            ("a", "iid", "zeroshot_classification", "class_acc", 0),
            ("a", "iid", "zeroshot_classification", "class_acc", 1),
            ("b", "iid", "classification", "acc1", -1),
        ]
        assert rows[0]["factors"] == {"objective.name": "clip", "data.n": 1} and rows[0]["study"] == "s"
        assert rows[0]["seed"] == 0 and math.isnan(rows[2]["value"])
        store.add_results(
            "a", [("iid", "zeroshot_classification", "acc1", -1, 0.9)]
        )  # replaces the run's rows
        assert [r["value"] for r in store.results() if r["run_id"] == "a"] == [0.9]
        # the same set, metric and class from two tasks are two results (a probe's acc1 is not zero-shot's)
        both = [("iid", "zeroshot_classification", "acc1", -1, 0.4), ("iid", "linear_probe", "acc1", -1, 0.8)]
        store.add_results("a", both)
        assert sorted((r["task"], r["value"]) for r in store.results() if r["run_id"] == "a") == [
            ("linear_probe", 0.8),
            ("zeroshot_classification", 0.4),
        ]
        store.set_status("a", "running")
        assert all(r["run_id"] != "a" for r in store.results())  # only done runs have results
        store.remove_runs(["a"])
        assert {r["run_id"] for r in store.runs()} == {"b", "c"}
        with pytest.raises(ValueError, match="status"):
            store.upsert_run("d", study="s", factors={}, seed=0, status="finished")
    db = sqlite3.connect(tmp_path / "r.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


WRITER = textwrap.dedent(
    """
    import sys
    from clipshift.study.store import ResultsStore
    path, w = sys.argv[1], int(sys.argv[2])
    store = ResultsStore(path)
    for i in range(25):
        rid = f"w{w}-{i}"
        store.upsert_run(rid, study="s", factors={"w": w, "i": i}, seed=w, status="running")
        zs = "zeroshot_classification"
        rows = [("iid", zs, "acc1", -1, i / 100), *[("iid", zs, "class_acc", c, c / 10) for c in range(20)]]
        store.add_results(rid, rows)
        store.upsert_run(rid, study="s", factors={"w": w, "i": i}, seed=w, status="done", wall_s=0.1)
        store.set_meta(f"writer{w}", i)
        store.runs()
    store.close()
    """
)


def test_several_processes_write_at_once(tmp_path):
    path = tmp_path / "results.sqlite"  # created concurrently by the writers themselves
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w)], stderr=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with ResultsStore(path) as store:
        runs = store.runs()
        assert len(runs) == 100 and {r["status"] for r in runs} == {"done"}
        assert len(store.results()) == 100 * 21
        assert [store.get_meta(f"writer{w}") for w in range(4)] == [24] * 4


def test_export_csv_and_parquet(tmp_path, capsys):
    with ResultsStore(tmp_path / "results.sqlite") as store:
        fill(store)
    assert main(["study", "export", str(tmp_path), "--format", "csv", "--out", str(tmp_path / "t.csv")]) == 0
    assert "4 rows" in capsys.readouterr().err
    with open(tmp_path / "t.csv") as f:
        rows = list(csv.reader(f))
    cols = ["study", "run_id", "objective.name", "data.n", "seed", "eval_set", "task", "metric", "class_id"]
    cols.append("value")
    assert rows[0] == cols
    zs = "zeroshot_classification"
    assert rows[1] == ["s", "a", "clip", "1", "0", "iid", zs, "acc1", "-1", "0.5"] and rows[3][-1] == "nan"
    assert len(rows) == 5

    pq = pytest.importorskip("pyarrow.parquet")
    assert export_results(tmp_path, "parquet", tmp_path / "t.parquet") == 4
    table = pq.read_table(tmp_path / "t.parquet").to_pylist()
    assert list(table[0]) == cols and table[0]["data.n"] == 1 and table[3]["objective.name"] == "supervised"
    assert [r["value"] for r in table][:2] == [0.5, 0.25]


def test_a_store_from_before_tasks_is_migrated(tmp_path):
    """An old store (results without a task column) opens: its rows are dropped, to be re-imported from the
    run directories by the next `study run`, and new rows with tasks go in."""
    db = sqlite3.connect(tmp_path / "results.sqlite")
    db.execute(
        "CREATE TABLE results (run_id TEXT NOT NULL, eval_set TEXT NOT NULL, metric TEXT NOT NULL, "
        "class_id INTEGER NOT NULL, value REAL, PRIMARY KEY (run_id, eval_set, metric, class_id))"
    )
    db.execute("INSERT INTO results VALUES ('a', 'iid', 'acc1', -1, 0.5)")
    db.commit()
    db.close()
    with ResultsStore(tmp_path / "results.sqlite") as store:
        assert store.result_count("a") == 0
        store.upsert_run("a", study="s", factors={}, seed=0, status="done")
        store.add_results("a", [("iid", "knn", "acc1", -1, 0.5)])
        assert [r["task"] for r in store.results()] == ["knn"]


def test_export_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="not a study directory"):
        export_results(tmp_path, "csv", tmp_path / "t.csv")
    ResultsStore(tmp_path / "results.sqlite").close()
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    with pytest.raises(UserError, match=r"--format parquet needs pyarrow: pip install pyarrow"):
        export_results(tmp_path, "parquet", tmp_path / "t.parquet")
