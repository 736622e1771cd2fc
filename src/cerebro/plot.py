"""``cerebro plot``: learning curves and parallel coordinates as PNGs a person pastes into a
report.

The person in the loop decides from learning curves, and afterwards has to show why: which
configs ran, which ones they stopped or cloned, and when. So the curves figure has two panels
sharing colours: the metric per epoch (a clone drawn as the continuation of its parent: the
inherited part thin and dashed, a diamond where it was cloned; a square where a config was
stopped, an X where it failed) and the same metric over wall-clock time with the human's
actions (``cerebro.events`` rows whose actor is ``human:<role>``) as numbered vertical lines,
listed beside the plot. The parallel-coordinates figure shows every searched parameter
against the objective.

The figures are built by pure functions from rows (``catalog.Point``s and ``catalog`` dicts),
so they are tested without a database; the command only reads through ``catalog`` and saves.
Each drawn artist carries a ``gid`` (``config:<id>``, ``event:<id>``, ...) and the command
writes what was drawn, counted from those artists, into the PNG's text metadata
(``cerebro:drawn``): a reader (or a test) can check what the picture holds without trusting
the input. matplotlib is imported inside functions so ``cerebro --help`` stays fast.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import catalog
from .catalog import Point

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGSIZE = (12.0, 8.0)  # inches; at the default 125 dpi: 1500 x 1000 px
DEFAULT_DPI = 125
HUMAN = "human:"
MAX_LEGEND = 24  # configs named in the legend (the best ranked); the rest are drawn unnamed
MAX_EVENTS_LISTED = 14
# the metric words where higher is better (a metric that is not the objective has no stored
# direction; these are the usual Keras names)
_HIGHER_WORDS = ("accuracy", "auc", "precision", "recall", "f1", "r2", "iou")
# status -> (marker, size, face colour or None for the line's colour, label in the key)
STATUS_MARKERS: dict[str, tuple[str, float, str | None, str]] = {
    "completed": ("o", 6.0, None, "completed"),
    "stopped": ("s", 9.0, "white", "stopped (by a person)"),
    "failed": ("X", 11.0, "black", "failed"),
    "active": (">", 8.0, None, "still training"),
}
CLONE_MARKER = ("D", 8.0)
SHORT_KEYS = {
    "learning_rate": "lr",
    "batch_size": "bs",
    "optimizer": "opt",
    "dropout": "drop",
    "activation": "act",
    "momentum": "mom",
    "weight_decay": "wd",
}


# -- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curves:
    """Everything the curves figure shows: ``configs`` are ``catalog.configs`` rows in rank
    order (config_id, rank, status, params, parent_config, clone_epoch), ``points`` the
    ``catalog.curves`` rows of one metric, ``events`` ``catalog.events`` rows (only the
    human ones are drawn)."""

    workload: str
    metric: str
    direction: str  # "min" (lower is better) or "max"
    configs: list[dict[str, Any]]
    points: list[Point]
    events: list[dict[str, Any]] = field(default_factory=list)
    top: int | None = None


@dataclass(frozen=True)
class Parallel:
    """What the parallel-coordinates figure shows: the workload's ``space`` (its searched
    parameters become axes) and ``catalog.configs`` rows (params and best_objective)."""

    workload: str
    objective: str
    direction: str
    space: dict[str, Any]
    configs: list[dict[str, Any]]
    top: int | None = None


def better(direction: str) -> str:
    return "higher is better" if direction == "max" else "lower is better"


def metric_direction(metric: str, objective: str, objective_direction: str) -> str:
    """The objective's stored direction for the objective's metric; otherwise inferred from
    the metric's name (accuracy, auc, ... are maximised; losses and errors minimised)."""
    if metric == objective.split(":")[0]:
        return objective_direction
    return "max" if any(w in metric for w in _HIGHER_WORDS) else "min"


def chosen(configs: Sequence[dict[str, Any]], top: int | None) -> list[dict[str, Any]]:
    """The configs drawn: the first ``top`` by leaderboard rank (rows come rank-ordered)."""
    return list(configs[:top]) if top else list(configs)


def varying_keys(
    configs: Iterable[dict[str, Any]], space: dict[str, Any] | None = None
) -> list[str]:
    """The params that tell the configs apart (searched in the space, or different between
    configs), in a stable order: the rest are the same for all and only clutter labels."""
    rows = [c.get("params") or {} for c in configs]
    searched = {k for k, v in (space or {}).items() if isinstance(v, dict)}
    keys = sorted({k for p in rows for k in p})
    return [
        k
        for k in keys
        if k in searched or len({json.dumps(p.get(k), sort_keys=True) for p in rows}) > 1
    ]


def value_text(value: Any) -> str:
    """A param value, short: floats to 3 significant digits, lists without spaces."""
    if isinstance(value, float):
        return format(value, ".3g")
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def params_summary(params: dict[str, Any], keys: Sequence[str], width: int = 34) -> str:
    """``hidden=[16] lr=0.01`` from the distinguishing keys, cut to ``width`` characters."""
    text = " ".join(f"{SHORT_KEYS.get(k, k)}={value_text(params.get(k))}" for k in keys)
    return text if len(text) <= width else text[: width - 1] + "…"


# -- the learning curves ----------------------------------------------------------------------


@dataclass
class _Series:
    """One config's points, split into what it inherited from its ancestors and its own."""

    inherited: list[Point]
    own: list[Point]


def _series(points: Iterable[Point]) -> dict[int, _Series]:
    out: dict[int, _Series] = defaultdict(lambda: _Series([], []))
    for p in sorted(points, key=lambda p: (p.config_id, p.epoch)):
        if p.value is None or not math.isfinite(p.value):
            continue
        s = out[p.config_id]
        (s.own if p.from_config == p.config_id else s.inherited).append(p)
    return dict(out)


def _xs(points: Sequence[Point], time: bool = False) -> list[Any]:
    return [p.created_at if time else p.epoch for p in points]


def _ys(points: Sequence[Point]) -> list[Any]:
    return [p.value for p in points]


def _colors(n: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def curves_figure(data: Curves) -> Figure:
    """The learning-curves figure: metric per epoch (top) and over wall-clock time with the
    human's actions (bottom); legend and the list of actions on the right."""
    from matplotlib.figure import Figure

    shown = chosen(data.configs, data.top)
    series = _series(data.points)
    keys = varying_keys(data.configs)  # the same labels with or without --top
    colors = dict(zip([c["config_id"] for c in shown], _colors(len(shown)), strict=True))
    fig = Figure(figsize=FIGSIZE, dpi=DEFAULT_DPI)
    grid = fig.add_gridspec(
        2, 1, height_ratios=(3, 2), left=0.07, right=0.68, top=0.87, bottom=0.08, hspace=0.32
    )
    by_epoch, by_time = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    for row in shown:
        s = series.get(row["config_id"], _Series([], []))
        _draw_epoch_line(by_epoch, row, s, colors[row["config_id"]], _config_label(row, keys))
        _draw_time_line(by_time, row, s, colors[row["config_id"]])
    _log_if_wide(by_epoch, by_time, series)
    ids = {c["config_id"] for c in shown}
    events = [e for e in data.events if _is_drawn_event(e, data.workload, ids)]
    _draw_events(by_time, events, series, ids)
    _titles(fig, by_epoch, by_time, data, len(shown))
    _legends(fig, by_epoch, shown)
    _event_list(fig, events)
    return fig


def _config_label(row: dict[str, Any], keys: Sequence[str]) -> str:
    rank = f"rank {row['rank']}" if row.get("best_objective") is not None else "no objective"
    lineage = f", clone of #{row['parent_config']}" if row.get("parent_config") else ""
    summary = params_summary(row.get("params") or {}, keys)
    return f"#{row['config_id']} {summary}\n    {rank}, {row['status']}{lineage}"


def _draw_epoch_line(ax: Axes, row: dict[str, Any], s: _Series, color: Any, label: str) -> None:
    """Own epochs solid (from the clone point on), inherited ones thin and dashed, the clone
    point a diamond, the last point marked by the config's status."""
    cid = row["config_id"]
    if s.inherited:
        ax.plot(
            _xs(s.inherited),
            _ys(s.inherited),
            color=color,
            lw=1.0,
            ls="--",
            alpha=0.7,
            gid=f"inherited:{cid}",
        )
        last = s.inherited[-1]
        ax.plot(
            _xs([last]),
            _ys([last]),
            ls="none",
            marker=CLONE_MARKER[0],
            ms=CLONE_MARKER[1],
            mfc=color,
            mec="black",
            zorder=6,
            gid=f"clonepoint:{cid}",
        )
        ax.annotate(
            f"#{cid} cloned from #{row.get('parent_config')}",
            (last.epoch, last.value),
            xytext=(10, 8),
            textcoords="offset points",
            fontsize=8,
            color=color,
        )
    own = s.inherited[-1:] + s.own
    xs, ys = _xs(own), _ys(own)
    ax.plot(xs, ys, color=color, lw=2.0, marker=".", ms=5, label=label, gid=f"config:{cid}")
    if s.own or s.inherited:
        _status_marker(ax, row, xs[-1], ys[-1], color)


def _status_marker(ax: Axes, row: dict[str, Any], x: Any, y: Any, color: Any) -> None:
    marker, size, face, _ = STATUS_MARKERS.get(row["status"], STATUS_MARKERS["active"])
    edge = "red" if row["status"] == "failed" else "black"
    ax.plot(
        [x],
        [y],
        ls="none",
        marker=marker,
        ms=size,
        mfc=face or color,
        mec=edge,
        mew=1.5,
        zorder=5,
        gid=f"status:{row['status']}:{row['config_id']}",
    )


def _draw_time_line(ax: Axes, row: dict[str, Any], s: _Series, color: Any) -> None:
    """A config's own epochs at the time they committed; a clone starts with a dashed link
    from its parent's point at the clone epoch."""
    cid = row["config_id"]
    if s.inherited and s.own:
        a, b = s.inherited[-1], s.own[0]
        ax.plot(
            _xs([a, b], time=True),
            _ys([a, b]),
            color=color,
            lw=1.0,
            ls="--",
            alpha=0.7,
            gid=f"timelink:{cid}",
        )
    if s.own:
        ax.plot(
            _xs(s.own, time=True),
            _ys(s.own),
            color=color,
            lw=1.6,
            marker=".",
            ms=5,
            gid=f"time:{cid}",
        )
        _status_marker(ax, row, s.own[-1].created_at, _ys(s.own)[-1], color)


def _log_if_wide(by_epoch: Axes, by_time: Axes, series: dict[int, _Series]) -> None:
    """A log y axis when the values are positive and span more than 1.5 decades (a loss
    falling from 2.3 to 0.01 is unreadable on a linear axis)."""
    values = [p.value for s in series.values() for p in s.inherited + s.own if p.value]
    if values and min(values) > 0 and math.log10(max(values) / min(values)) > 1.5:
        by_epoch.set_yscale("log")
        by_time.set_yscale("log")


def _is_drawn_event(event: dict[str, Any], workload: str, ids: set[int]) -> bool:
    """A human's action on this workload, about a drawn config or the whole workload."""
    return (
        str(event.get("actor") or "").startswith(HUMAN)
        and event.get("workload") in (None, workload)
        and (event.get("config_id") is None or event["config_id"] in ids)
    )


def event_text(event: dict[str, Any]) -> str:
    """``stop #3 by human:alice`` (with the new value or the parent when there is one)."""
    detail = event.get("detail") or {}
    what = str(event["action"])
    if event.get("config_id") is not None:
        what += f" #{event['config_id']}"
    if event["action"] == "max_epochs":
        what += f" → {detail.get('to')}"
    elif event["action"] == "clone" and detail.get("parent_config"):
        what += f" (of #{detail['parent_config']})"
    return f"{what} by {event['actor']}"


def _draw_events(
    ax: Axes, events: list[dict[str, Any]], series: dict[int, _Series], ids: set[int]
) -> None:
    """Each human action a vertical line; the lines that fall close together share one
    numbered badge at the top (the list on the right says what each number was); the time
    axis is widened to include them all."""
    import matplotlib.dates as mdates

    times = [p.created_at for c in ids for p in series.get(c, _Series([], [])).own]
    events = sorted(events, key=lambda e: e["event_id"])
    moments = times + [e["at"] for e in events]
    span = 0.0
    if moments:
        lo, hi = min(moments), max(moments)
        span = float(mdates.date2num(hi) - mdates.date2num(lo))
        if hi > lo:
            ax.set_xlim(lo - (hi - lo) * 0.04, hi + (hi - lo) * 0.04)
    groups: list[tuple[float, list[int]]] = []
    for n, e in enumerate(events, 1):
        ax.axvline(e["at"], color="crimson", lw=1.2, ls=":", gid=f"event:{e['event_id']}")
        x = float(mdates.date2num(e["at"]))
        if groups and abs(x - groups[-1][0]) <= 0.015 * span:
            groups[-1][1].append(n)
        else:
            groups.append((x, [n]))
    for x, numbers in groups:
        ax.annotate(
            ",".join(map(str, numbers)),
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, -3),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=8,
            color="white",
            bbox={"boxstyle": "round,pad=0.2", "fc": "crimson", "ec": "none"},
        )
    _time_axis(ax, times or moments)


def _time_axis(ax: Axes, moments: Sequence[datetime]) -> None:
    """Concise clock labels in the timestamps' own zone (the session's TimeZone)."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(tz=moments[0].tzinfo if moments else None)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=locator.tz))


def _titles(fig: Figure, by_epoch: Axes, by_time: Axes, data: Curves, shown: int) -> None:
    from matplotlib.ticker import MaxNLocator

    total = len(data.configs)
    which = f"top {shown} of {total} configs" if data.top else f"all {total} configs"
    fig.suptitle(
        f"{data.workload}: {data.metric} ({better(data.direction)})",
        x=0.07,
        ha="left",
        fontsize=15,
        fontweight="bold",
    )
    fig.text(
        0.07,
        0.915,
        f"{which} by leaderboard rank · learning curves per config",
        fontsize=10,
        color="dimgray",
    )
    by_epoch.set_xlabel("epoch")
    by_epoch.set_ylabel(data.metric)
    by_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_epoch.set_title(
        "per epoch (a clone continues its parent: dashed = inherited)", fontsize=10, loc="left"
    )
    tz = next((p.created_at.tzname() for p in data.points if p.created_at.tzinfo), None)
    by_time.set_xlabel(f"wall-clock time{f' ({tz})' if tz else ''}")
    by_time.set_ylabel(data.metric)
    by_time.set_title(
        "over time, with the human's actions (numbered, listed right)", fontsize=10, loc="left"
    )
    for ax in (by_epoch, by_time):
        ax.grid(True, alpha=0.3)


def _legends(fig: Figure, ax: Axes, shown: list[dict[str, Any]]) -> None:
    """The configs (named: id, params, rank, status) and, below, the key to the markers."""
    from matplotlib.lines import Line2D

    handles = [h for h in ax.lines if not str(h.get_label()).startswith("_")][:MAX_LEGEND]
    title = "config" if len(shown) <= MAX_LEGEND else f"best {MAX_LEGEND} of {len(shown)}"
    fig.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0.695, 0.89),
        fontsize=8,
        title=title,
        title_fontsize=9,
        frameon=False,
        ncols=1 if len(handles) <= 12 else 2,
        handlelength=1.6,
    )
    key = [
        Line2D(
            [],
            [],
            ls="none",
            marker=m,
            ms=s,
            mfc=f or "gray",
            mec="red" if st == "failed" else "black",
            label=lab,
        )
        for st, (m, s, f, lab) in STATUS_MARKERS.items()
    ]
    key.append(
        Line2D(
            [],
            [],
            ls="none",
            marker=CLONE_MARKER[0],
            ms=CLONE_MARKER[1],
            mfc="gray",
            mec="black",
            label="cloned here",
        )
    )
    key.append(Line2D([], [], color="gray", ls="--", lw=1.0, label="inherited from parent"))
    fig.legend(
        handles=key,
        loc="lower left",
        bbox_to_anchor=(0.695, 0.40),
        fontsize=8,
        title="last point",
        title_fontsize=9,
        frameon=False,
    )


def _event_list(fig: Figure, events: list[dict[str, Any]]) -> None:
    """The numbered human actions, in order, beside the time panel."""
    events = sorted(events, key=lambda e: e["event_id"])
    lines = [
        f"{n}  {e['at']:%H:%M:%S}  {event_text(e)}"
        for n, e in enumerate(events, 1)
        if n <= MAX_EVENTS_LISTED
    ]
    if len(events) > MAX_EVENTS_LISTED:
        lines.append(f"…and {len(events) - MAX_EVENTS_LISTED} more")
    text = "\n".join(lines) if lines else "(none)"
    fig.text(0.70, 0.36, "the human's actions", fontsize=9, fontweight="bold", va="top")
    fig.text(
        0.70,
        0.33,
        text,
        fontsize=8,
        va="top",
        family="monospace",
        color="crimson",
        gid="event-list",
    )


# -- parallel coordinates ---------------------------------------------------------------------


@dataclass
class _Axis:
    """One vertical axis: a parameter (numbers, maybe on a log scale, or categories) or the
    objective; ``pos`` maps a value to 0..1 (None: not placed)."""

    name: str
    values: list[Any]
    log: bool = False
    cats: list[str] = field(default_factory=list)
    lo: float = 0.0
    hi: float = 1.0
    exact: bool = True  # ticks at the distinct values when there are few (params)

    def pos(self, v: Any) -> float | None:
        if v is None:
            return None
        if self.cats:
            i = self.cats.index(value_text(v))
            return 0.5 if len(self.cats) == 1 else i / (len(self.cats) - 1)
        t = math.log10(v) if self.log else float(v)
        return 0.5 if self.hi == self.lo else (t - self.lo) / (self.hi - self.lo)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def make_axis(name: str, values: list[Any], spec: Any = None) -> _Axis:
    """Numbers on a linear axis, or a log one when the space says loguniform or the values
    span more than two decades; anything else (strings, lists like hidden=[128,64]) as
    categories in the space's order."""
    present = [v for v in values if v is not None]
    primitive = next(iter(spec), None) if isinstance(spec, dict) and len(spec) == 1 else None
    if present and all(_is_number(v) for v in present):
        lo, hi = min(present), max(present)
        log = lo > 0 and (primitive in ("loguniform", "qloguniform") or hi / lo > 100)
        f = math.log10 if log else float
        return _Axis(name, values, log=log, lo=f(lo), hi=f(hi))
    order = [value_text(v) for v in (spec or {}).get("choice", [])] if primitive else []
    cats = list(dict.fromkeys(order + sorted({value_text(v) for v in present})))
    cats = [c for c in cats if c in {value_text(v) for v in present}] or ["—"]
    return _Axis(name, values, cats=cats)


def _ticks(axis: _Axis) -> list[tuple[float, str]]:
    """(position, label) pairs: the categories; the distinct values when there are few;
    otherwise nice round numbers inside the range."""
    from matplotlib.ticker import LogLocator, MaxNLocator

    if axis.cats:
        return [(axis.pos(c) or 0.0, c) if len(axis.cats) > 1 else (0.5, c) for c in axis.cats]
    distinct = sorted({v for v in axis.values if v is not None})
    if axis.exact and len(distinct) <= 6:
        return [(axis.pos(v) or 0.0, value_text(float(v))) for v in distinct]
    if axis.log:
        raw = LogLocator(base=10, subs=(1.0, 3.0)).tick_values(10**axis.lo, 10**axis.hi)
    else:
        raw = MaxNLocator(5).tick_values(axis.lo, axis.hi)
    ticks = [float(t) for t in raw if _inside(t, axis)] or [float(v) for v in distinct[:6]]
    return [(axis.pos(t) or 0.0, format(t, ".3g")) for t in ticks]


def _inside(t: float, axis: _Axis) -> bool:
    if axis.log and t <= 0:
        return False
    x = math.log10(t) if axis.log else t
    return axis.lo - 1e-9 <= x <= axis.hi + 1e-9


def parallel_axes(data: Parallel, rows: list[dict[str, Any]]) -> list[_Axis]:
    """One axis per searched (or varying) parameter, then the objective."""
    axes = []
    for key in varying_keys(rows, data.space):
        vals = [(r.get("params") or {}).get(key) for r in rows]
        axes.append(make_axis(key, vals, data.space.get(key)))
    best = [r.get("best_objective") for r in rows]
    axes.append(make_axis(f"best {data.objective}", [b for b in best]))
    # the objective is a number (None: not placed); its ticks are round numbers (the #id
    # labels beside the axis name the lines)
    axes[-1].cats, axes[-1].exact = [], False
    return axes


def parallel_figure(data: Parallel) -> Figure:
    """Parameters against the objective: one polyline per config, coloured by its best
    objective (colorbar); failed configs and those without an objective in grey."""
    import matplotlib
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    rows = chosen(data.configs, data.top)
    axes = parallel_axes(data, rows)
    fig = Figure(figsize=FIGSIZE, dpi=DEFAULT_DPI)
    ax = fig.add_axes((0.07, 0.1, 0.78, 0.74), gid="parallel")
    scored = [r["best_objective"] for r in rows if r.get("best_objective") is not None]
    norm = Normalize(min(scored, default=0.0), max(scored, default=1.0))
    cmap = matplotlib.colormaps["viridis_r" if data.direction == "min" else "viridis"]
    order = sorted(rows, key=lambda r: r.get("rank") or 10**9, reverse=True)  # best on top
    for z, row in enumerate(order):
        _polyline(
            ax,
            axes,
            rows.index(row),
            row,
            cmap(norm(row["best_objective"])) if row.get("best_objective") is not None else None,
            z,
        )
    _draw_parallel_axes(ax, axes)
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(sm, cax=fig.add_axes((0.89, 0.1, 0.018, 0.74)))
    bar.set_label(f"best {data.objective} ({better(data.direction)})")
    _parallel_titles(fig, data, len(rows))
    _id_labels(ax, axes, rows)
    return fig


def _polyline(
    ax: Axes, axes: list[_Axis], i: int, row: dict[str, Any], color: Any, z: int
) -> None:
    ys = [a.pos(a.values[i]) for a in axes]
    greyed = color is None or row.get("status") == "failed"
    if ys[-1] is None:
        ys[-1] = -0.1  # the "failed / none" slot below the objective axis
    ax.plot(
        range(len(axes)),
        [math.nan if y is None else y for y in ys],
        color="silver" if greyed else color,
        lw=1.2 if greyed else 2.2,
        ls="--" if greyed else "-",
        marker="o",
        ms=4,
        alpha=0.9,
        zorder=1 if greyed else 2 + z / 1000,
        gid=f"config:{row['config_id']}",
    )


def _draw_parallel_axes(ax: Axes, axes: list[_Axis]) -> None:
    for i, axis in enumerate(axes):
        ax.axvline(i, color="black", lw=1.0, zorder=0.5)
        for y, label in _ticks(axis):
            ax.plot([i - 0.015, i], [y, y], color="black", lw=1.0, zorder=0.5)
            ax.text(
                i - 0.025,
                y,
                label,
                ha="right",
                va="center",
                fontsize=8,
                zorder=10,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
            )
    last = len(axes) - 1
    if any(v is None for v in axes[-1].values):
        ax.text(last - 0.025, -0.1, "none", ha="right", va="center", fontsize=8, color="gray")
    ax.set_xticks(range(len(axes)))
    ax.set_xticklabels([a.name + ("\n(log scale)" if a.log else "") for a in axes], fontsize=10)
    ax.set_xlim(-0.35, last + 0.25)
    ax.set_ylim(-0.16, 1.06)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


def _parallel_titles(fig: Figure, data: Parallel, shown: int) -> None:
    total = len(data.configs)
    which = f"top {shown} of {total} configs" if data.top else f"all {total} configs"
    fig.suptitle(
        f"{data.workload}: parameters vs best {data.objective} ({better(data.direction)})",
        x=0.07,
        ha="left",
        fontsize=15,
        fontweight="bold",
    )
    fig.text(
        0.07,
        0.9,
        f"{which} · one line per config, coloured by its best objective · "
        "grey dashed = failed, or no objective yet (at “none”)",
        fontsize=10,
        color="dimgray",
    )


def _id_labels(ax: Axes, axes: list[_Axis], rows: list[dict[str, Any]]) -> None:
    """``#id`` right of the objective axis, nudged apart so they never overlap."""
    if len(rows) > 30:
        return
    placed = sorted(
        (y, r["config_id"])
        for r in rows
        if (y := axes[-1].pos(r.get("best_objective"))) is not None
    )
    last = -1.0
    for y, cid in placed:
        y = max(y, last + 0.035)
        last = y
        ax.text(len(axes) - 1 + 0.03, y, f"#{cid}", fontsize=8, va="center", ha="left")


# -- what a figure holds, and the command -----------------------------------------------------


def drawn(fig: Figure) -> dict[str, Any]:
    """What the figure shows, counted from its artists (not from the input rows): the
    configs with a line that has at least one finite point, status markers, clone points,
    human events and, for parallel coordinates, the axes' names."""
    out: dict[str, Any] = {"configs": [], "status": {}, "clones": [], "events": [], "axes": []}
    for ax in fig.axes:
        for line in ax.lines:
            kind, _, rest = str(line.get_gid() or "").partition(":")
            if kind == "event":
                out["events"].append(int(rest))
            elif _has_points(line) and kind in ("config", "clonepoint"):
                out["configs" if kind == "config" else "clones"].append(int(rest))
            elif _has_points(line) and kind == "status":
                status, _, cid = rest.partition(":")
                out["status"].setdefault(status, []).append(int(cid))
        if ax.get_gid() == "parallel":
            out["axes"] = [t.get_text().split("\n")[0] for t in ax.get_xticklabels()]
    # each config has one line per panel: count it once
    out["configs"] = sorted(set(out["configs"]))
    out["clones"] = sorted(set(out["clones"]))
    out["events"] = sorted(set(out["events"]))
    out["status"] = {k: sorted(set(v)) for k, v in sorted(out["status"].items())}
    return out


def _has_points(line: Any) -> bool:
    ys = line.get_ydata()
    return any(isinstance(y, int | float) and math.isfinite(y) for y in ys)


def read_curves(conn: Any, workload: str, metric: str | None, top: int | None) -> Curves:
    """The rows of the curves figure, through catalog; LookupError with the reason (an
    unknown workload, or a metric without points: the metrics that exist are listed)."""
    w = _workload(conn, workload)
    metric = metric or str(w["objective"]).split(":")[0]
    points = catalog.curves(conn, workload, metric)
    if not points:
        have = sorted({p.metric for p in catalog.curves(conn, workload)})
        if not have:
            raise LookupError(f"workload {workload!r} has no committed epoch yet: nothing to plot")
        raise LookupError(
            f"workload {workload!r} has no points for metric {metric!r}; "
            f"its metrics: {', '.join(have)}"
        )
    return Curves(
        workload=workload,
        metric=metric,
        direction=metric_direction(metric, w["objective"], w["direction"]),
        configs=catalog.configs(conn, workload),
        points=points,
        events=catalog.events(conn, workload, limit=10_000),
        top=top,
    )


def read_parallel(conn: Any, workload: str, top: int | None) -> Parallel:
    """The rows of the parallel-coordinates figure, through catalog."""
    w = _workload(conn, workload)
    configs = catalog.configs(conn, workload)
    if not configs:
        raise LookupError(f"workload {workload!r} has no configs: nothing to plot")
    return Parallel(
        workload=workload,
        objective=str(w["objective"]).split(":")[0],
        direction=w["direction"],
        space=w.get("space") or {},
        configs=configs,
        top=top,
    )


def _workload(conn: Any, name: str) -> dict[str, Any]:
    catalog.workload_id(conn, name)  # LookupError naming it
    return next(w for w in catalog.workloads(conn) if w["workload"] == name)


def save(fig: Figure, path: Path, dpi: int) -> dict[str, Any]:
    """Write the figure (format from the suffix: png, svg, pdf) with what it holds in its
    metadata; returns that summary."""
    summary = drawn(fig)
    title = fig.get_suptitle()
    text = json.dumps(summary, separators=(",", ":"))
    suffix = path.suffix.lower()
    if suffix == ".png":
        meta = {"Title": title, "Software": "cerebro plot", "cerebro:drawn": text}
    elif suffix == ".svg":
        meta = {"Title": title, "Description": text}
    else:
        meta = {"Title": title, "Subject": text}
    fig.savefig(path, dpi=dpi, metadata=meta)
    return summary


FORMATS = (".png", ".svg", ".pdf")


@click.command()
@click.argument("workload")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="the image to write: .png (default <workload>-curves.png or <workload>-params.png), "
    ".svg or .pdf",
)
@click.option("--metric", help="the metric to draw (default: the workload's objective)")
@click.option("--top", type=click.IntRange(min=1), help="only the best K configs by rank")
@click.option(
    "--parallel-coordinates",
    "parallel",
    is_flag=True,
    help="draw the searched parameters against the best objective instead of curves",
)
@click.option(
    "--dpi",
    type=click.IntRange(50, 600),
    default=DEFAULT_DPI,
    show_default=True,
    help="pixels per inch of the 12 x 8 in figure (125: 1500 x 1000 px)",
)
@click.option("--dsn", help="where to connect (default: CEREBRO_DSN, else the embedded server)")
def command(
    workload: str,
    output: Path | None,
    metric: str | None,
    top: int | None,
    parallel: bool,
    dpi: int,
    dsn: str | None,
) -> None:
    """Draw WORKLOAD's learning curves (or, with --parallel-coordinates, its parameters
    against the objective) as an image to paste into a report: 12 x 8 in, 1500 x 1000 px at
    the default --dpi 125.

    The curves: one line per config (id and params in the legend), stopped / failed /
    still-training configs marked at their last point, clones continuing their parent
    (dashed = inherited), and a second panel over wall-clock time with the human's actions
    (stop, resume, clone, max_epochs, ...) as numbered vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    if parallel and metric:
        raise click.UsageError(
            "--metric is for learning curves; parallel coordinates use the workload's objective"
        )
    output = output or Path(f"{workload}-{'params' if parallel else 'curves'}.png")
    if output.suffix.lower() not in FORMATS:
        raise click.UsageError(f"{output}: the file name must end in {', '.join(FORMATS)}")
    try:
        with catalog.connect(catalog.resolve_dsn(dsn)) as conn:
            if parallel:
                fig = parallel_figure(read_parallel(conn, workload, top))
            else:
                fig = curves_figure(read_curves(conn, workload, metric, top))
    except LookupError as e:
        raise click.ClickException(str(e).strip('"')) from e
    except catalog.psycopg.Error as e:
        raise click.ClickException(f"cannot read workload {workload!r}: {e}") from e
    summary = save(fig, output, dpi)
    width, height = (round(v * dpi) for v in fig.get_size_inches())
    what = f"{len(summary['configs'])} configs"
    if parallel:
        what += f" on {len(summary['axes'])} axes"
    else:
        what += f", {len(summary['events'])} human actions"
    click.echo(f"wrote {output} ({width} x {height} px): {what}")
