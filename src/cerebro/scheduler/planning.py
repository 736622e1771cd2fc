"""What can run now: the runnable configs read back from the tables, for ``schedule.pick``.

Reads on the leader connection only (the loop's thread). Dataset rows and model specs are
cached for the daemon's lifetime: both are immutable once a workload uses them. Before each
plan the AutoML procedures that saw new events are stepped, so that the configs they add or
stop are part of the plan.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ..schedule import ConfigView
from . import statements as S
from .connections import error_message, one

log = logging.getLogger("cerebro.scheduler")


class Planner:
    """Reads the runnable configs as ``ConfigView``s (with what a unit needs in ``extra``)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.datasets: dict[int, dict[str, Any]] = {}
        self.specs: dict[str, str] = {}
        self.automl_seen: dict[int, int] = {}  # workload -> last event id stepped on

    def dataset(self, dataset_id: int) -> dict[str, Any]:
        ds = self.datasets.get(dataset_id)
        if ds is None:
            with self.conn.cursor(row_factory=dict_row) as cur:
                ds = cur.execute(S.DATASET, [dataset_id]).fetchone()
            if ds is None:
                raise RuntimeError(f"dataset {dataset_id} vanished")
            self.datasets[dataset_id] = ds
        return ds

    def spec(self, model: str) -> str:
        """The model's spec as JSON text, as the aggregates take it."""
        if model not in self.specs:
            self.specs[model] = json.dumps(one(self.conn, S.MODEL_SPEC, [model])[0])
        return self.specs[model]

    def step_automl(self) -> None:
        """Step the AutoML procedures whose workloads saw new events (suggest, promote).

        A failing step is logged and not retried until the workload sees another event: one
        broken search must not stop the others.
        """
        for wid, last in self.conn.execute(S.AUTOML_WORKLOADS).fetchall():
            if self.automl_seen.get(wid) == last:
                continue
            try:
                self.conn.execute(S.AUTOML_STEP, [wid])
            except psycopg.Error as e:
                log.error("automl step of workload %s failed: %s", wid, error_message(e))
            self.automl_seen[wid] = last

    def runnable(self) -> list[ConfigView]:
        self.step_automl()
        with self.conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(S.RUNNABLE).fetchall()
        return [self._view(r) for r in rows]

    def _view(self, r: dict[str, Any]) -> ConfigView:
        train = self.dataset(r["train_dataset"])
        valid = self.dataset(r["valid_dataset"]) if r["valid_dataset"] else None
        return ConfigView(
            config_id=r["config_id"],
            workload_id=r["workload_id"],
            epoch=r["epoch"],
            partitions_done=list(r["partitions_done"]),
            valid_done=list(r["valid_done"]),
            priority=r["priority"],
            workload_seed=r["workload_seed"],
            n_train=train["num_partitions"],
            n_valid=valid["num_partitions"] if valid else 0,
            extra={
                "params": r["params"],
                "seed": r["seed"],
                "spec": self.spec(r["model"]),
                "search": r["search"],
                "train": train,
                "valid": valid,
            },
        )
