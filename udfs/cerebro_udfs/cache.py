"""A bounded LRU cache kept in PL/Python's per-backend ``GD`` dictionary.

Worker backends are long-lived, so keeping decoded partitions and compiled models (with
their traced train functions) saves work on every sub-epoch. It is only an optimisation:
on Greenplum segment processes may be reaped at any time and everything still works.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class LRU:
    def __init__(
        self,
        max_items: int,
        max_bytes: int | None = None,
        size_of: Callable[[Any], int] = lambda v: 0,
    ) -> None:
        self.items: OrderedDict[Any, Any] = OrderedDict()
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.size_of = size_of
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Any) -> Any:
        if key in self.items:
            self.items.move_to_end(key)
            self.hits += 1
            return self.items[key]
        self.misses += 1
        return None

    def put(self, key: Any, value: Any) -> None:
        if key in self.items:
            self.bytes -= self.size_of(self.items.pop(key))
        size = self.size_of(value)
        if self.max_bytes is not None and size > self.max_bytes:
            return  # too large to keep: correctness does not need it
        self.items[key] = value
        self.bytes += size
        while len(self.items) > self.max_items or (
            self.max_bytes is not None and self.bytes > self.max_bytes
        ):
            _, old = self.items.popitem(last=False)
            self.bytes -= self.size_of(old)

    def limit_bytes(self, max_bytes: int) -> None:
        """A new byte limit, evicting the least recently used items above it."""
        self.max_bytes = max_bytes
        while self.items and self.bytes > max_bytes:
            _, old = self.items.popitem(last=False)
            self.bytes -= self.size_of(old)

    def clear(self) -> None:
        self.items.clear()
        self.bytes = 0


PARTITION_CACHE_ENV = "CEREBRO_PARTITION_CACHE_MB"


def env_limits() -> dict[str, int]:
    """The partition cache size set in this process's environment, by config key (empty
    when unset). The server's backends take it as their default; the scheduler daemon passes
    its own in every unit's config (``partition_cache_mb``), so that a daemon can train with
    a smaller cache than the server's without restarting it."""
    mb = os.environ.get(PARTITION_CACHE_ENV)
    return {"partition_cache_mb": int(mb)} if mb else {}


def partitions(GD: dict, mb: int | None = None) -> LRU:
    """This backend's decoded partitions; ``mb`` (a unit's ``partition_cache_mb``) sets its
    limit from now on, else the server environment's (default 2048 MB) stays."""
    if "cerebro.partitions" not in GD:
        default = env_limits().get("partition_cache_mb", 2048)
        GD["cerebro.partitions"] = LRU(64, default << 20, lambda v: v[0].nbytes + v[1].nbytes)
    lru: LRU = GD["cerebro.partitions"]
    if mb is not None:
        lru.limit_bytes(max(0, int(mb)) << 20)
    return lru


def batches(GD: dict) -> LRU:
    """Small partitions' batched ``tf.data`` pipelines, by (partition key, batch size): a
    ``model.fit`` on arrays builds (and traces) one at every call, which costs more than
    training a small partition. Each holds a copy of its arrays: at most 8, 256 MB in all."""
    if "cerebro.batches" not in GD:
        GD["cerebro.batches"] = LRU(8, 256 << 20, lambda v: v[0].nbytes + v[1].nbytes)
    return GD["cerebro.batches"]


def models(GD: dict) -> LRU:
    if "cerebro.models" not in GD:
        GD["cerebro.models"] = LRU(int(os.environ.get("CEREBRO_MODEL_CACHE", "8")))
    return GD["cerebro.models"]


def info(GD: dict) -> dict[str, Any]:
    out = {}
    for name, lru in (("partitions", partitions(GD)), ("models", models(GD))):
        out[name] = {
            "items": len(lru.items),
            "bytes": lru.bytes,
            "hits": lru.hits,
            "misses": lru.misses,
            "max_items": lru.max_items,
            "max_bytes": lru.max_bytes,
        }
    return out
