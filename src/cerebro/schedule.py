"""Pure scheduling decisions of model hopper parallelism (MOP); no I/O here.

Each config visits every partition once per epoch, one at a time. The order is a
Latin-square rotation of a per-epoch permutation drawn from the workload seed: config *c* in
epoch *e* visits ``perm_e[(c + k) mod n]`` for k = 0..n-1. Orders are therefore reproducible
(same seed, same visit order, same weights — even across scheduler restarts), and configs of
one workload start on different partitions, so with as many configs as workers nobody waits
for a partition another config holds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


def partition_order(workload_seed: int, config_id: int, epoch: int, n: int) -> list[int]:
    perm = np.random.default_rng([int(workload_seed) % (2**63), int(epoch)]).permutation(n)
    return [int(perm[(config_id + k) % n]) for k in range(n)]


@dataclass
class ConfigView:
    """What the scheduler needs to know of one runnable config (read from the tables)."""

    config_id: int
    workload_id: int
    epoch: int  # completed epochs; the running epoch is epoch + 1
    partitions_done: list[int]
    valid_done: list[int]
    priority: int
    workload_seed: int
    n_train: int
    n_valid: int  # 0 when the workload has no validation set
    extra: dict = field(default_factory=dict)

    @property
    def in_valid_phase(self) -> bool:
        return len(set(self.partitions_done)) >= self.n_train

    def next_train_partition(self) -> int | None:
        if self.in_valid_phase:
            return None
        done = set(self.partitions_done)
        for p in partition_order(self.workload_seed, self.config_id, self.epoch + 1, self.n_train):
            if p not in done:
                return p
        return None

    def wants(self, worker: int) -> str | None:
        """'train' or 'valid' when this config's next unit can run on ``worker``."""
        if not self.in_valid_phase:
            return "train" if self.next_train_partition() == worker else None
        if worker < self.n_valid and worker not in self.valid_done:
            return "valid"
        return None


def pick(
    configs: list[ConfigView],
    worker: int,
    busy: set[int],
    rng: random.Random,
    usable: Callable[[ConfigView, str], bool] | None = None,
) -> tuple[ConfigView, str] | None:
    """Least progress first, then priority, random among ties (Cerebro, VLDB 2020, Alg. 1).

    ``usable(config, kind)`` can rule a unit out for now (its partition's node is away, or
    the partition is still on its way there): that config waits, the others go on."""
    best = None
    for c in configs:
        if c.config_id in busy:
            continue
        kind = c.wants(worker)
        if kind is None or (usable is not None and not usable(c, kind)):
            continue
        progress = c.epoch + (len(c.partitions_done) + len(c.valid_done)) / max(
            1, c.n_train + c.n_valid
        )
        key = (progress, -c.priority, rng.random())
        if best is None or key < best[0]:
            best = (key, c, kind)
    return None if best is None else (best[1], best[2])
