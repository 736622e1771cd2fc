"""``cerebro plot``: learning curves and parallel coordinates as images a person pastes into
a report.

This module is the command's side: it reads the rows through ``catalog`` (``read_curves``,
``read_parallel``), has them drawn (``plot_curves.curves_figure``,
``plot_parallel.parallel_figure``: pure functions from rows, tested without a database) and
saves the image. Each drawn artist carries a ``gid`` (``config:<id>``, ``event:<id>``, ...);
``drawn`` counts what the figure holds from those artists and ``save`` writes that into the
image's metadata (``cerebro:drawn`` in a PNG): a reader (or a test) can check what the
picture holds without trusting the input. matplotlib is imported inside functions so
``cerebro --help`` stays fast.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import catalog
from .plot_common import DEFAULT_DPI
from .plot_curves import Curves, curves_figure, metric_direction
from .plot_parallel import Parallel, parallel_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
