"""Where a workload's wall time goes: a per-worker timeline read from ``cerebro.units``.

Each worker's time from the workload's launch (``workloads.created_at``) to the end (the last
unit's end, or a time the caller measured) is split, exactly, into:

- ``startup``: launch → the worker's first unit (less what is counted as a wait below);
- ``fit``: ``model.fit`` inside the training aggregate (``result->>'seconds'``);
- ``overhead``: the rest of each training unit (statement, state read/restore/capture/write,
  model build and the first ``fit``'s tracing are *not* here: tracing is inside ``fit``;
  building a model is here), i.e. unit time − fit;
- ``eval``: whole validation units;
- ``lost``: units that did not end 'ok';
- ``turnaround``: between one unit's end and the next unit's start on the same worker, the
  part after the next unit's config was free (its previous unit had ended): the scheduler's
  own reaction (collect, epoch commit after ``ended_at``, plan, ``START_UNIT``);
- ``mop_wait``: the part of such a gap while the next unit's config was still training on
  another partition (MOP: a config is on one partition at a time, and visits them in its
  order) — nothing else this worker could run was free;
- ``epoch_wait``: the same, when the next unit is its config's first of a new epoch;
- ``tail``: the worker's last unit end → the end (nothing left for it).

    .venv/bin/python bench/timeline.py DSN WORKLOAD_ID [--end SECONDS_AFTER_LAUNCH]

``load`` + ``attribute`` + ``table`` are importable (the P2/P7 benchmarks print it).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections import defaultdict
from dataclasses import dataclass

CATEGORIES = (
    "startup",
    "fit",
    "overhead",
    "eval",
    "lost",
    "turnaround",
    "mop_wait",
    "epoch_wait",
    "tail",
)


@dataclass(frozen=True)
class UnitRow:
    """One row of cerebro.units, times in seconds after the workload's launch."""

    worker: int
    config: int
    kind: str  # 'train' | 'valid'
    epoch: int
    partition: int
    start: float
    end: float
    fit: float  # result->>'seconds' (0 when unknown)
    ok: bool = True


def _waits(units: list[UnitRow], launch: float) -> dict[UnitRow, tuple[float, bool]]:
    """For each unit: when its config became free (its previous unit's end, or the launch)
    and whether it is the config's first unit of a new epoch."""
    by_config: dict[int, list[UnitRow]] = defaultdict(list)
    for u in units:
        by_config[u.config].append(u)
    ready: dict[UnitRow, tuple[float, bool]] = {}
    for rows in by_config.values():
        rows.sort(key=lambda u: u.start)
        prev = None
        for u in rows:
            if prev is None:
                ready[u] = (launch, u.epoch > 1)
            else:
                ready[u] = (prev.end, prev.epoch < u.epoch)
            prev = u
    return ready


def attribute(
    units: list[UnitRow], launch: float = 0.0, end: float | None = None
) -> dict[int | str, dict[str, float]]:
    """Per worker (and ``"all"``, the sum), seconds in each of CATEGORIES plus ``wall``
    (end − launch) and ``units``; each worker's categories add up to its wall."""
    if end is None:
        end = max((u.end for u in units), default=launch)
    ready = _waits(units, launch)
    out: dict[int | str, dict[str, float]] = {}
    by_worker: dict[int, list[UnitRow]] = defaultdict(list)
    for u in units:
        by_worker[u.worker].append(u)
    for w in sorted(by_worker):
        rows = sorted(by_worker[w], key=lambda u: u.start)
        t = dict.fromkeys(CATEGORIES, 0.0)
        free = launch  # when this worker became free
        for u in rows:
            gap = max(0.0, u.start - free)
            at, new_epoch = ready[u]
            waited = min(gap, max(0.0, at - free))
            if u is rows[0]:
                t["startup"] += gap - waited
            else:
                t["turnaround"] += gap - waited
            t["epoch_wait" if new_epoch else "mop_wait"] += waited
            dur = u.end - u.start
            if not u.ok:
                t["lost"] += dur
            elif u.kind == "valid":
                t["eval"] += dur
            else:
                t["fit"] += u.fit
                t["overhead"] += dur - u.fit
            free = max(free, u.end)
        t["tail"] = max(0.0, end - free)
        t["wall"] = end - launch
        t["units"] = float(len(rows))
        out[w] = t
    out["all"] = {k: sum(v[k] for v in out.values()) for k in (*CATEGORIES, "wall", "units")}
    return out


def gaps_ms(units: list[UnitRow]) -> list[float]:
    """Every gap between consecutive units on one worker, in ms."""
    by_worker: dict[int, list[UnitRow]] = defaultdict(list)
    for u in units:
        by_worker[u.worker].append(u)
    out = []
    for rows in by_worker.values():
        rows.sort(key=lambda u: u.start)
        out += [(b.start - a.end) * 1000 for a, b in itertools.pairwise(rows)]
    return out


def table(units: list[UnitRow], launch: float = 0.0, end: float | None = None) -> str:
    """The attribution as a compact text table (seconds, and % of the workers' time)."""
    att = attribute(units, launch, end)
    cols = [c for c in CATEGORIES if att["all"][c] > 0.0005 or c in ("fit", "overhead")]
    lines = [f"{'worker':>6} {'units':>5} {'wall s':>7} " + " ".join(f"{c:>10}" for c in cols)]
    for w, t in att.items():
        cells = " ".join(f"{t[c]:10.2f}" for c in cols)
        lines.append(f"{w!s:>6} {int(t['units']):5d} {t['wall']:7.2f} {cells}")
    total = att["all"]["wall"] or 1.0
    pct = " ".join(f"{100 * att['all'][c] / total:9.1f}%" for c in cols)
    lines.append(f"{'share':>6} {'':5} {'':7} {pct}")
    train = [u for u in units if u.ok and u.kind == "train"]
    over = [(u.end - u.start - u.fit) * 1000 for u in train]
    gaps = gaps_ms(units)
    if over:
        lines.append(
            f"per train unit: fit median {statistics.median(u.fit for u in train) * 1000:.0f} ms"
            f", overhead median {statistics.median(over):.1f} ms (max {max(over):.0f} ms); "
            + (
                f"gap on a worker median {statistics.median(gaps):.1f} ms (max {max(gaps):.0f})"
                if gaps
                else "no gaps"
            )
        )
    return "\n".join(lines)


LOAD = """
select u.worker, u.config_id, u.kind, u.epoch, u.partition,
       extract(epoch from u.started_at - w.created_at)::float8,
       extract(epoch from coalesce(u.ended_at, u.started_at) - w.created_at)::float8,
       coalesce((u.result->>'seconds')::float8, 0), u.outcome = 'ok'
  from cerebro.units u join cerebro.configs c using (config_id)
  join cerebro.workloads w using (workload_id)
 where c.workload_id = %s and u.worker is not null
 order by u.started_at
"""


def load(dsn: str, workload_id: int) -> list[UnitRow]:
    """The workload's units, times in seconds after its launch."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as c:
        return [UnitRow(*r) for r in c.execute(LOAD, [workload_id]).fetchall()]


def report(dsn: str, workload_id: int, end: float | None = None) -> str:
    return table(load(dsn, workload_id), 0.0, end)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dsn")
    ap.add_argument("workload_id", type=int)
    ap.add_argument("--end", type=float, default=None, help="seconds after launch")
    a = ap.parse_args()
    print(report(a.dsn, a.workload_id, a.end))
