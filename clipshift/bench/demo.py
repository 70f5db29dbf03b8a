"""`clipshift bench demo`: wall time of the whole `clipshift demo` command in a fresh directory."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from clipshift.errors import UserError


def bench_demo(repeats: int = 1) -> dict[str, Any]:
    """Run `python -m clipshift demo` from scratch `repeats` times (a new output directory each time, so
    nothing is reused) and report the median wall time, process start-up included."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="clipshift-bench-demo-") as tmp:
            out = Path(tmp) / "demo"
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "clipshift", "demo", "--out", str(out), "--quiet"],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            times.append(time.perf_counter() - start)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise UserError(f"clipshift demo failed (exit {proc.returncode}): {tail[0]}")
    times.sort()
    return {
        "demo_wall_s": round(times[len(times) // 2], 1),
        "demo_wall_s_min": round(times[0], 1),
        "repeats": repeats,
        "target_s": 300,
        "cpu_threads": os.cpu_count(),
    }
