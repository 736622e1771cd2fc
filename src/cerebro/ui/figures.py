"""Pure shaping of catalog rows for the page: the plotly curves, the config and event table
rows, a roster model's prefilled search space. No database, no Dash: testable alone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .. import catalog


def _line(go: Any, pts: Sequence[catalog.Point], cid: int, metric: str, color: str) -> Any:
    return go.Scatter(
        x=[p.epoch for p in pts],
        y=[p.value for p in pts],
        mode="lines+markers",
        name=f"config {cid}",
        legendgroup=str(cid),
        line={"color": color},
        hovertemplate=f"config {cid}<br>epoch %{{x}}<br>{metric} %{{y:.4g}}<extra></extra>",
    )


def _inherited(go: Any, pts: Sequence[catalog.Point], cid: int, color: str, legend: bool) -> Any:
    """A clone's history up to the clone point, dotted: it is its parent's line, so drawn
    solid it would hide the parent's."""
    return go.Scatter(
        x=[p.epoch for p in pts],
        y=[p.value for p in pts],
        mode="lines",
        name=f"config {cid}",
        legendgroup=str(cid),
        showlegend=legend,
        line={"color": color, "dash": "dot"},
        hovertemplate=f"config {cid}: inherited from config {pts[0].from_config}<extra></extra>",
    )


def curves_figure(points: Sequence[catalog.Point], workload: str | None, metric: str) -> Any:
    """One line per config, named by its id, epoch on x: what a person compares to decide.
    ``uirevision`` keeps the reader's zoom across the live refreshes of one workload."""
    import plotly.express as px  # type: ignore[import-untyped]
    import plotly.graph_objects as go  # type: ignore[import-untyped]

    fig = go.Figure()
    palette = px.colors.qualitative.Plotly
    by_config: dict[int, list[catalog.Point]] = {}
    for p in points:
        by_config.setdefault(p.config_id, []).append(p)
    for i, cid in enumerate(sorted(by_config)):
        pts = sorted(by_config[cid], key=lambda p: p.epoch)
        own = [p for p in pts if p.from_config == cid]
        before = [p for p in pts if p.from_config != cid]
        color = palette[i % len(palette)]
        if before:  # joined to the first own point, so the line is continuous
            fig.add_trace(_inherited(go, before + own[:1], cid, color, legend=not own))
        if own:
            fig.add_trace(_line(go, own, cid, metric, color))
    title = f"{workload}: {metric}" if workload else "no workload selected"
    if workload and not by_config:
        title += " (no epoch finished yet)"
    fig.update_layout(
        title=title,
        xaxis_title="epoch",
        yaxis_title=metric,
        uirevision=f"{workload}/{metric}",
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend_title_text="config (dotted: a clone's inherited epochs)",
        height=380,
    )
    fig.update_xaxes(dtick=1)
    return fig


def space_template(param_schema: dict[str, Any]) -> str:
    """A roster model's search space prefilled from its parameter list: every parameter at
    its default (fixed), the learning rate as a two-value choice, so the form shows what can
    be searched and a grid launches as is."""
    space: dict[str, Any] = {}
    for name, spec in sorted(param_schema.items()):
        if not isinstance(spec, dict) or spec.get("default") is None:
            continue
        space[name] = spec["default"]
    if isinstance(space.get("learning_rate"), (int, float)):
        lr = float(space["learning_rate"])
        space["learning_rate"] = {"choice": [lr, round(lr * 10, 12)]}
    return json.dumps(space, indent=1)


def param_rows(param_schema: dict[str, Any]) -> list[dict[str, str]]:
    """The parameter list of a model as table rows: name, type, range or values, default."""
    rows = []
    for name, spec in sorted(param_schema.items()):
        spec = spec if isinstance(spec, dict) else {}
        if "values" in spec:
            allowed = ", ".join(map(str, spec["values"]))
        elif "min" in spec or "max" in spec:
            allowed = f"{spec.get('min', '')} .. {spec.get('max', '')}"
        else:
            allowed = ""
        rows.append(
            {
                "param": name,
                "type": str(spec.get("type", "")),
                "allowed": allowed,
                "default": json.dumps(spec.get("default")),
            }
        )
    return rows


def _number(x: Any) -> float | None:
    return None if x is None else round(float(x), 5)


def varying(params: Sequence[dict[str, Any]]) -> list[str]:
    """The parameters whose values differ between configs (all of them for a single one):
    what tells the table's rows apart, so the column stays narrow."""
    keys = sorted({k for p in params for k in p})
    if len(params) < 2:
        return keys
    return [k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in params}) > 1]


def params_text(params: dict[str, Any], keys: Sequence[str]) -> str:
    """``k=v`` for the chosen keys, compact JSON values (``hidden=[8]``, ``lr=0.01``)."""
    return " ".join(f"{k}={json.dumps(params.get(k), separators=(',', ':'))}" for k in keys)


def config_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The configs table: ``id`` is the config id (so a selection survives refreshes and
    sorting), lineage in ``source`` and ``parent``; ``params`` shows what varies, and
    ``all_params`` (the cell's tooltip) everything."""
    keys = varying([r["params"] or {} for r in rows])
    return [
        {
            "id": r["config_id"],
            "config_id": r["config_id"],
            "rank": r["rank"],
            "status": r["status"],
            "epoch": f"{r['epochs']}/{r['max_epochs']}",
            "best": _number(r["best_objective"]),
            "last": _number(r["last_objective"]),
            "params": params_text(r["params"] or {}, keys),
            "all_params": json.dumps(r["params"], sort_keys=True),
            "source": r["source"],
            "parent": r["parent_config"],
            "error": r.get("error") or "",
        }
        for r in rows
    ]


def event_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events feed, newest first as catalog.events returns it."""
    return [
        {
            "at": r["at"].strftime("%H:%M:%S") if r["at"] else "",
            "actor": r["actor"],
            "workload": r["workload"] or "",
            "config": r["config_id"],
            "action": r["action"],
            "detail": json.dumps(r["detail"]) if r["detail"] not in (None, {}) else "",
        }
        for r in rows
    ]


def dataset_label(d: dict[str, Any]) -> str:
    """A dataset as the launch form lists it: name, rows, feature and label columns."""
    features = d["features"]
    cols = ", ".join(map(str, features)) if isinstance(features, list) else json.dumps(features)
    return f"{d['name']}  ({d['num_rows']} rows; features: {cols}; label: {d['label']})"
