"""The parallel-coordinates figure of ``cerebro plot``: every searched parameter against the
objective, one polyline per config coloured by its best objective, built by a pure function
from rows (the axes carry the gids ``plot.drawn`` counts). matplotlib is imported inside
functions so ``cerebro --help`` stays fast."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .params_text import value_text, varying_keys
from .plot_common import DEFAULT_DPI, FIGSIZE, better, chosen, headline, which_configs

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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
        return [(axis.pos(v) or 0.0, value_text(float(v), short=True)) for v in distinct]
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


def axis_keys(rows: Iterable[dict[str, Any]], space: dict[str, Any]) -> list[str]:
    """The params that get an axis: those that differ between the drawn configs
    (``varying_keys``, as in every table) and also those searched in the space
    (a dict there, like ``{"choice": [...]}``) even when the drawn configs agree on them. The
    axes are the search's dimensions: they must not come and go with ``--top`` or when a
    search happened to draw one value, where a table only needs what tells its rows apart."""
    params = [r.get("params") or {} for r in rows]
    searched = {k for k, v in space.items() if isinstance(v, dict)}
    present = {k for p in params for k in p}
    return sorted(set(varying_keys(params)) | (searched & present))


def parallel_axes(data: Parallel, rows: list[dict[str, Any]]) -> list[_Axis]:
    """One axis per searched (or varying) parameter, then the objective."""
    axes = []
    for key in axis_keys(rows, data.space):
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
    which = which_configs(shown, len(data.configs), data.top)
    headline(
        fig,
        f"{data.workload}: parameters vs best {data.objective} ({better(data.direction)})",
        f"{which} · one line per config, coloured by its best objective · "
        "grey dashed = failed, or no objective yet (at “none”)",
        0.9,
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
