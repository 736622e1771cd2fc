"""Pure scheduling decisions of model hopper parallelism (MOP); no I/O here.

Each config visits every partition once per epoch, one at a time. The order is a
Latin-square rotation of a per-epoch permutation drawn from the workload seed: config *c* in
epoch *e* visits ``perm_e[(c + k) mod n]`` for k = 0..n-1. Orders are therefore reproducible
(same seed, same visit order, same weights — even across scheduler restarts), and configs of
one workload start on different partitions, so with as many configs as workers nobody waits
for a partition another config holds.

``pick`` is MOP as the paper has it: worker *j* holds partition *j*, and a config hops to the
worker of its next partition. ``pick_any`` is for partitions every worker reads (one
server): the config's order is the same, but any free worker may run its next unit, and a
worker prefers the configs whose compiled model it already holds (built and traced there).
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

    def next_unit(self) -> tuple[str, int] | None:
        """(kind, partition) of this config's next unit, on whichever worker runs it:
        training in the epoch's order, then the validation partitions not yet evaluated."""
        p = self.next_train_partition()
        if p is not None:
            return "train", p
        if self.in_valid_phase:
            for v in range(self.n_valid):
                if v not in self.valid_done:
                    return "valid", v
        return None

    def advance(self, kind: str, partition: int) -> bool:
        """Record a committed unit of this config's current epoch, as the tables now have
        it; False (nothing recorded) when that unit ended the epoch: the epoch's commit
        decides what follows (the next epoch, 'completed', an AutoML decision), so the
        config must be read again."""
        if kind == "train":
            done = self.partitions_done
            ends = self.n_valid == 0 and len({*done, partition}) >= self.n_train
        else:
            done = self.valid_done
            ends = len({*done, partition}) >= self.n_valid
        if ends:
            return False
        if partition not in done:  # not read back since it committed
            done.append(partition)
        return True

    @property
    def progress(self) -> float:
        """Completed epochs plus the share of the current epoch's units done."""
        units = len(self.partitions_done) + len(self.valid_done)
        return self.epoch + units / max(1, self.n_train + self.n_valid)

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
        key = (c.progress, -c.priority, rng.random())
        if best is None or key < best[0]:
            best = (key, c, kind)
    return None if best is None else (best[1], best[2])


def pick_any(
    configs: list[ConfigView],
    busy: set[int],
    rng: random.Random,
    cached: set[int] | frozenset[int] = frozenset(),
) -> tuple[ConfigView, str, int] | None:
    """The unit a free worker runs when every worker can read every partition (one server):
    (config, kind, partition). Fewest completed epochs first, then priority (DESIGN §3),
    then a config in ``cached`` (the worker holds its compiled model: no build, no tracing;
    a state file it wrote is not even read again), then the least share of the current
    epoch done, random among ties. So a worker keeps a config for the rest of its epoch
    rather than trading it for another worker's at every unit, and each config is built and
    traced on about one backend (as in one plain process per worker), while no config
    starts an epoch before every other one has finished the last. A config still visits
    its partitions in ``partition_order``, one at a time."""
    best = None
    for c in configs:
        if c.config_id in busy:
            continue
        nxt = c.next_unit()
        if nxt is None:
            continue
        key = (c.epoch, -c.priority, c.config_id not in cached, c.progress, rng.random())
        if best is None or key < best[0]:
            best = (key, c, nxt)
    return None if best is None else (best[1], *best[2])
