"""Resuming a run: what counts as finished, which saved config may be continued, and the metrics log
cut back to the checkpoint it resumes from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from clipshift.errors import UserError
from clipshift.train.config import NUMERICS_FREE, first_difference
from clipshift.train.identity import run_reads


def finished_record(out_dir: Path) -> dict[str, Any] | None:
    """final.json of a run in `out_dir` that ran to the end (its final checkpoint written), else None."""
    try:
        record = json.loads((out_dir / "final.json").read_text())
    except (OSError, ValueError):
        return None
    done = isinstance(record, dict) and record.get("status") == "done"
    if not done or not (out_dir / "checkpoints" / "final.pt").is_file():
        return None
    return record


# a resumed run may differ from its saved config only in these (threads: see TrainConfig.threads; a
# change is printed and recorded in final.json)
RESUME_MAY_DIFFER = (*NUMERICS_FREE, "threads")


def check_resume(out_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """Before resuming into `out_dir`: the finished record when it holds this run finished (None when
    there is nothing to continue). A finished or interrupted run of *another* config is never continued:
    that would train other weights and optimiser state under this config's name. Settings the run cannot
    read (`train.identity`) may differ, as in a study's run id."""
    done = finished_record(out_dir)
    interrupted = (out_dir / "checkpoints" / "latest.pt").is_file()
    if done is None and not interrupted:
        return None
    try:
        saved = yaml.safe_load((out_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        saved = None
    diff = (
        first_difference(run_reads(saved), run_reads(config), RESUME_MAY_DIFFER)
        if isinstance(saved, dict)
        else ("config", "?", "")
    )
    if diff is not None:
        what = "a finished run" if done is not None else "an interrupted run"
        path, old, new = diff
        raise UserError(
            f"{out_dir} holds {what} with another config ({path}: {_show(old)} there, {_show(new)} now); "
            "--no-resume trains this config from scratch there, or give another --out"
        )
    return done


def _show(v: Any) -> str:
    return "unset" if v is None else json.dumps(v) if not isinstance(v, str) else repr(v)


def truncate_log(path: Path, step: int) -> None:
    """Keep the metrics.jsonl lines of steps up to `step` (and drop a line cut short by a kill)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int) and rec["step"] <= step:
            keep.append(line + "\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(keep))
    os.replace(tmp, path)
