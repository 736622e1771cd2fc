"""The learning-curves figure of ``cerebro plot``, built by a pure function from rows.

The person in the loop decides from learning curves, and afterwards has to show why: which
configs ran, which ones they stopped or cloned, and when. So the figure has two panels
sharing colours: the metric per epoch (a clone drawn as the continuation of its parent: the
inherited part thin and dashed, a diamond where it was cloned; a square where a config was
stopped, an X where it failed) and the same metric over wall-clock time with the human's
actions (``cerebro.events`` rows whose actor is ``human:<role>``) as numbered vertical lines,
listed beside the plot. Each drawn artist carries a ``gid`` (``config:<id>``,
``event:<id>``, ...) so ``plot.drawn`` can count what the picture holds. matplotlib is
imported inside functions so ``cerebro --help`` stays fast.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .catalog import Point
from .params_text import summarise, varying_keys
from .plot_common import DEFAULT_DPI, FIGSIZE, better, chosen, headline, which_configs

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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
LEGEND_WIDTH = 34  # characters of params in a legend entry


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


def metric_direction(metric: str, objective: str, objective_direction: str) -> str:
    """The objective's stored direction for the objective's metric; otherwise inferred from
    the metric's name (accuracy, auc, ... are maximised; losses and errors minimised)."""
    if metric == objective.split(":")[0]:
        return objective_direction
    return "max" if any(w in metric for w in _HIGHER_WORDS) else "min"


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
    # the same labels with or without --top: the keys that differ among all the configs
    keys = varying_keys(row.get("params") or {} for row in data.configs)
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
    summary = legend_params(row.get("params") or {}, keys)
    return f"#{row['config_id']} {summary}\n    {rank}, {row['status']}{lineage}"


def legend_params(params: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``hidden=[16] lr=0.01``: only the params that tell the configs apart, through the
    one summariser every tool uses (``params_text.summarise``). Unlike a table row, which
    shows every param with the distinguishing ones first, a legend entry gets only those:
    the legend is narrow and lists the configs one under the other, so a param that is the
    same for all would repeat on every line and push the ones that differ out of it."""
    return summarise({k: params[k] for k in keys if k in params}, LEGEND_WIDTH, first=keys)


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

    which = which_configs(shown, len(data.configs), data.top)
    headline(
        fig,
        f"{data.workload}: {data.metric} ({better(data.direction)})",
        f"{which} by leaderboard rank · learning curves per config",
        0.915,
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
