"""One unit: one config on one partition, a training sub-epoch or a validation pass."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from cerebro_udfs import cache
from cerebro_udfs.chunks import env_limits
from cerebro_udfs.models import training_config

from ..schedule import ConfigView

# States above CEREBRO_STATE_INLINE_MAX bytes are stored as chunks of
# CEREBRO_STATE_CHUNK_BYTES: the daemon's own environment decides (read once, by
# cerebro_udfs.chunks), so that a test can force small states through the chunked path.
_STATE_LIMITS = env_limits()
# Sub-epoch states of a single server hop as files in its data directory (state_files.py);
# CEREBRO_STATE_FILES=off keeps them in cerebro.states. CEREBRO_TEST_PAUSE_STATE_WRITE (tests
# only): a path; a backend writing a state file waits half-way while that file exists.
STATE_FILES = os.environ.get("CEREBRO_STATE_FILES", "on").lower() not in ("off", "0", "false")
PAUSE_STATE_WRITE = os.environ.get("CEREBRO_TEST_PAUSE_STATE_WRITE") or None
# training steps per call into TensorFlow: a number, or "auto" (cerebro_udfs.training)
STEPS_PER_EXECUTION = os.environ.get("CEREBRO_STEPS_PER_EXECUTION") or None
if STEPS_PER_EXECUTION is not None and not (
    STEPS_PER_EXECUTION == "auto"
    or (STEPS_PER_EXECUTION.isdigit() and int(STEPS_PER_EXECUTION) >= 1)
):
    raise ValueError(
        "CEREBRO_STEPS_PER_EXECUTION must be 'auto' or a whole number of 1 or more, got "
        f"{STEPS_PER_EXECUTION!r}"
    )


class StateLost(Exception):
    """The sub-epoch state this unit needs is gone (unlogged table truncated by a crash)."""


class UnitFailed(Exception):
    """The config cannot go on as it is (its message becomes configs.error)."""


class CheckpointMissing(UnitFailed):
    """The checkpoint an epoch continues from is gone: training it from a fresh model would
    silently throw the config's past epochs away, so the config fails instead."""


class NodeDown(Exception):
    """A node the unit needs (for its partition, or for the state it continues from) cannot
    be reached: the unit waits for it, and nothing counts against the config."""

    def __init__(self, node: str, error: str) -> None:
        super().__init__(f"node {node} is unreachable: {error}")
        self.node = node
        self.error = error


# A node's units keep their state in one value (bytea's limit is 1 GB): a chunked state is
# rows of one server and cannot hop as it is.
REMOTE_INLINE_MAX = (1 << 30) - (1 << 20)


@dataclass
class Unit:
    view: ConfigView
    kind: str  # 'train' or 'valid'
    partition: int
    worker: int
    node: str | None = None  # the node holding the partition; None: the coordinator
    source: str | None = None  # the node holding the state it continues from; None: here

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

    @property
    def key(self) -> int:
        """The ``__dist_key__`` its partition is stored under: the partition number, except
        on Greenplum/Cloudberry (one key per segment, datasets.dist_keys)."""
        ds = self.view.extra["train" if self.kind == "train" else "valid"]
        keys = ds.get("dist_keys")
        return int(keys[self.partition]) if keys else self.partition

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

    def config(self, dataset: dict[str, Any], files: int | None = None) -> str:
        """The aggregate's config (JSON) for this unit on ``dataset``; ``files``: the
        database's oid when the new state may be written as a file in the data directory
        (one PostgreSQL server)."""
        v = self.view
        cfg = training_config(
            dataset, v.extra["params"], v.extra["seed"], self.partition, self.epoch, v.config_id
        )
        cfg.update(_STATE_LIMITS)
        # CEREBRO_PARTITION_CACHE_MB of the daemon: the worker backends' partition cache
        cfg.update(cache.env_limits())
        if STEPS_PER_EXECUTION is not None:
            cfg["steps_per_execution"] = STEPS_PER_EXECUTION
        if self.node is not None:
            cfg["state_inline_max"] = REMOTE_INLINE_MAX
        elif files is not None and STATE_FILES:
            cfg["state_files"] = files
            if PAUSE_STATE_WRITE:
                cfg["pause_state_write"] = PAUSE_STATE_WRITE
        return json.dumps(cfg)
