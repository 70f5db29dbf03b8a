"""One training run: loop, schedule, checkpoints, resume, determinism, progress, DDP."""

from clipshift.train.config import OptimConfig, TrainConfig
from clipshift.train.run import RunFailed, finished_record, train

__all__ = ["OptimConfig", "RunFailed", "TrainConfig", "finished_record", "train"]
