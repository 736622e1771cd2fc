"""One unit: one config on one partition, a training sub-epoch or a validation pass."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cerebro_udfs.chunks import env_limits
from cerebro_udfs.models import training_config

from ..schedule import ConfigView

# States above CEREBRO_STATE_INLINE_MAX bytes are stored as chunks of
# CEREBRO_STATE_CHUNK_BYTES: the daemon's own environment decides (read once, by
# cerebro_udfs.chunks), so that a test can force small states through the chunked path.
_STATE_LIMITS = env_limits()


class StateLost(Exception):
    """The sub-epoch state this unit needs is gone (unlogged table truncated by a crash)."""


class CheckpointMissing(Exception):
    """The checkpoint an epoch continues from is gone: training it from a fresh model would
    silently throw the config's past epochs away, so the config fails instead."""


@dataclass
class Unit:
    view: ConfigView
    kind: str  # 'train' or 'valid'
    partition: int
    worker: int

    @property
    def epoch(self) -> int:
        """The epoch this unit runs in (the config has completed ``view.epoch``)."""
        return self.view.epoch + 1

    @property
    def completes_epoch(self) -> bool:
        """Whether this unit is the config's last of the epoch (then it commits the epoch)."""
        v = self.view
        if self.kind == "train":
            return v.n_valid == 0 and len(set(v.partitions_done) | {self.partition}) >= v.n_train
        return len(set(v.valid_done) | {self.partition}) >= v.n_valid

    def args(self) -> dict[str, Any]:
        """The parameters every unit statement shares."""
        v = self.view
        return {
            "config_id": v.config_id,
            "epoch": self.epoch,
            "partition": self.partition,
            "kind": self.kind,
            "worker": self.worker,
            "done": v.partitions_done,
        }

    def config(self, dataset: dict[str, Any]) -> str:
        """The aggregate's config (JSON) for this unit on ``dataset``."""
        v = self.view
        cfg = training_config(
            dataset, v.extra["params"], v.extra["seed"], self.partition, self.epoch, v.config_id
        )
        cfg.update(_STATE_LIMITS)
        return json.dumps(cfg)
