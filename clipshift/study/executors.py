"""Where a study's runs execute: in this process (`local`), in a pool of processes on this machine
(`process`), or as Ray tasks on a local or remote Ray cluster (`ray`).

Every executor runs the same `execute_run`, which writes the run's files and result rows itself; the
driver only submits tasks, keeps at most `slots` in flight (so a run's start line is printed when it
really starts) and records statuses.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from clipshift.errors import UserError
from clipshift.study.execute import RunOutcome, RunTask, execute_run

EXECUTORS = ("local", "process", "ray")


class Executor:
    """Submit tasks, then `wait` for at least one to finish. `can_start` says whether one more run fits
    beside those in flight, from each run's own resources (`run_resources` of its config)."""

    slots: int = 1
    in_process: bool = False  # runs execute in the driver's process (their progress bars can show)

    def can_start(self, task: RunTask, in_flight: list[RunTask]) -> bool:
        return len(in_flight) < self.slots

    def submit(self, task: RunTask) -> None:
        raise NotImplementedError

    def wait(self) -> list[RunOutcome]:
        raise NotImplementedError

    def close(self, cancel: bool = False) -> None:
        pass


class LocalExecutor(Executor):
    """One run at a time, in this process."""

    in_process = True

    def __init__(self) -> None:
        self._queue: collections.deque[RunTask] = collections.deque()

    def submit(self, task: RunTask) -> None:
        self._queue.append(task)

    def wait(self) -> list[RunOutcome]:
        return [execute_run(self._queue.popleft())]


class ProcessExecutor(Executor):
    """A pool of `workers` processes (spawned, so no state such as torch's thread pool is inherited); each
    run sets the torch threads its config names (`threads`), whichever worker executes it."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise UserError(f"--workers = {workers}: give at least 1")
        self.slots = workers
        self._pool = self._new_pool()
        self._futures: dict[cf.Future[RunOutcome], RunTask] = {}

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=self.slots, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, task: RunTask) -> None:
        try:
            fut = self._pool.submit(execute_run, task)
        except cf.process.BrokenProcessPool:
            self._pool = self._new_pool()  # a worker died (e.g. out of memory): later runs get a fresh pool
            fut = self._pool.submit(execute_run, task)
        self._futures[fut] = task

    def wait(self) -> list[RunOutcome]:
        finished, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        out = []
        for fut in finished:
            task = self._futures.pop(fut)
            try:
                out.append(fut.result())
            except Exception as e:  # the worker process died under the run
                out.append(RunOutcome(task.run_id, "failed", f"worker process died: {type(e).__name__}: {e}"))
        return out

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


def run_resources(config: dict[str, Any]) -> dict[str, float]:
    """What one run asks a Ray cluster for: the CPU threads its config fixes (`threads`; a study sets it
    in every run) and a GPU when it trains on CUDA (`device: cuda`; `auto` asks for none and so trains on
    CPU under Ray)."""
    return {
        "num_cpus": float(config.get("threads") or 1),
        "num_gpus": 1.0 if config.get("device") == "cuda" else 0.0,
    }


class RayExecutor(Executor):
    """Each run is a Ray task with its own resource request. Without an address a local Ray instance
    (loopback only, no dashboard) is started and stopped with the study."""

    def __init__(self, address: str | None, workers: int | None) -> None:
        loopback = address is None or address.rsplit(":", 1)[0] in ("127.0.0.1", "localhost", "[::1]")
        with _ray_on_loopback(loopback):
            try:
                import ray
            except ImportError:
                raise UserError("--executor ray needs Ray: pip install 'clipshift[ray]'") from None
            self._ray = ray
            self._started = False
            if not ray.is_initialized():
                if address:
                    try:
                        ray.init(address=address, log_to_driver=False)
                    except (ConnectionError, RuntimeError, ValueError) as e:
                        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                        raise UserError(f"--address {address}: cannot join a Ray cluster ({first})") from None
                else:
                    ray.init(
                        address="local",
                        _node_ip_address="127.0.0.1",
                        include_dashboard=False,
                        num_cpus=workers or os.cpu_count() or 1,
                        num_gpus=_local_gpus(),
                        log_to_driver=False,
                    )
                self._started = True
        self.slots = workers or 1_000_000  # at most this many runs at once; resources decide the rest
        self._total = {k: float(v) for k, v in ray.cluster_resources().items()}
        self._remote = ray.remote(max_retries=0)(execute_run)  # a failed run is recorded, not retried
        self._refs: dict[Any, RunTask] = {}
        self._refused: list[RunOutcome] = []

    def _unfit(self, need: dict[str, float]) -> str | None:
        """Why a run can never be scheduled on this cluster (None when it fits when the cluster is idle)."""
        for key, res in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            have = self._total.get(res, 0.0)
            if need[key] > have:
                return (
                    f"it needs {need[key]:g} {res} (its config's threads / device), the cluster has {have:g}"
                )
        return None

    def can_start(self, task: RunTask, in_flight: list[RunTask]) -> bool:
        """Start a run when it fits beside the runs in flight, from each run's own request; a run that
        never fits starts (and is refused at once) rather than waiting forever."""
        if not in_flight:
            return True
        if len(in_flight) >= self.slots:
            return False
        need = run_resources(task.config)
        for r in in_flight:
            for k, v in run_resources(r.config).items():
                need[k] += v
        return self._unfit(need) is None

    def submit(self, task: RunTask) -> None:
        need = run_resources(task.config)
        why = self._unfit(need)
        if why is not None:
            self._refused.append(RunOutcome(task.run_id, "failed", f"cannot run on this cluster: {why}"))
            return
        ref = self._remote.options(**need).remote(task)
        self._refs[ref] = task

    def wait(self) -> list[RunOutcome]:
        if self._refused:
            out, self._refused = self._refused, []
            return out
        ready, _ = self._ray.wait(list(self._refs), num_returns=1)
        out = []
        for ref in ready:
            task = self._refs.pop(ref)
            try:
                out.append(self._ray.get(ref))
            except Exception as e:  # the worker died, or the task could not be scheduled
                out.append(RunOutcome(task.run_id, "failed", f"ray task failed: {type(e).__name__}: {e}"))
        return out

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for ref in self._refs:
                self._ray.cancel(ref, force=True)
        if self._started:
            self._ray.shutdown()


@contextmanager
def _ray_on_loopback(on: bool) -> Iterator[None]:
    """Make Ray advertise 127.0.0.1 instead of the machine's network address, for a cluster that lives
    on this machine: Ray's switch for single-machine mode (named for macOS and Windows, where it is the
    default) is read from the environment when ray is imported and by the processes a new instance
    starts, so it is set around the import and ray.init and then restored."""
    if not on:
        yield
        return
    var = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    old = os.environ.get(var)
    os.environ[var] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    old_flag = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if constants is not None:  # ray was imported before: its flag was read already
        constants.ENABLE_RAY_CLUSTER = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = old
        constants = sys.modules.get("ray._private.ray_constants")
        if constants is not None:
            natural = sys.platform not in ("darwin", "win32") if old is None else old.lower() in ("1", "true")
            constants.ENABLE_RAY_CLUSTER = natural if old_flag is None else old_flag  # type: ignore[attr-defined]


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # pragma: no cover
        return 0


def make_executor(
    kind: str,
    *,
    workers: int | None = None,
    address: str | None = None,
    threads: int = 1,
) -> Executor:
    """The executor `kind`; `threads` (the most any run asks for) sizes the default process pool."""
    if kind == "local":
        if workers not in (None, 1):
            raise UserError(
                f"--workers {workers}: the local executor runs one run at a time; use --executor process"
            )
        return LocalExecutor()
    if kind == "process":
        return ProcessExecutor(workers or max(1, (os.cpu_count() or 1) // max(1, threads)))
    if kind == "ray":
        return RayExecutor(address, workers)
    raise UserError(f"--executor {kind!r}: choose from {', '.join(EXECUTORS)}")
