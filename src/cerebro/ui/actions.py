"""The page's callbacks: each reads or steers through :mod:`cerebro.catalog` on the shared
:class:`Session`, so everything runs as the logged-in role (row-level security, and
``human:<role>`` in ``cerebro.events``). A refused action shows the server's own words."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from .. import catalog
from . import figures
from .session import Session, parse_json_object, server_message

OK = {"color": "#064", "whiteSpace": "pre-wrap", "fontSize": "13px", "margin": "6px 0"}
ERR = {**OK, "color": "#b00", "fontWeight": "bold"}


def attempt(session: Session, action: Callable[[psycopg.Connection], str]) -> tuple[str, dict]:
    """Run one action; (what it did, green) or (the server's message verbatim, red)."""
    try:
        with session.conn("act") as conn:
            return action(conn), OK
    except (psycopg.Error, ValueError, LookupError) as e:
        return server_message(e), ERR


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def workload_options(conn: psycopg.Connection) -> list[dict[str, str]]:
    """The header's workload choices (a value must be among them or the dropdown drops it)."""
    return [
        {"label": f"{w['workload']}  [{w['status']}, {w['search']}]", "value": w["workload"]}
        for w in catalog.workloads(conn)
    ]


def register_live(app: Any, session: Session) -> None:
    """What the 2 s interval refreshes: the workload list, curves, configs, events."""
    from dash import Input, Output, State, no_update

    @app.callback(
        Output("workload-select", "options"),
        Output("workload-select", "value"),
        Input("refresh", "n_intervals"),
        State("workload-select", "value"),
    )
    def workloads(_n: int | None, current: str | None) -> tuple[list[dict], Any]:
        with session.conn() as conn:
            options = workload_options(conn)
        if current is None and options:
            return options, options[-1]["value"]  # the newest, at first
        return options, no_update

    @app.callback(
        Output("curves-graph", "figure"),
        Input("refresh", "n_intervals"),
        Input("workload-select", "value"),
        Input("metric-select", "value"),
    )
    def curves(_n: int | None, workload: str | None, metric: str) -> Any:
        points = []
        if workload:
            with session.conn() as conn:
                points = catalog.curves(conn, workload, metric)
        return figures.curves_figure(points, workload, metric)

    @app.callback(
        Output("configs-table", "data"),
        Output("configs-table", "selected_rows"),
        Output("configs-table", "tooltip_data"),
        Input("refresh", "n_intervals"),
        Input("workload-select", "value"),
        State("configs-table", "selected_row_ids"),
    )
    def configs(_n: int | None, workload: str | None, selected: list[int] | None) -> tuple:
        rows: list[dict[str, Any]] = []
        if workload:
            with session.conn() as conn:
                rows = figures.config_rows(catalog.configs(conn, workload))
        # selection by config id, not by row index: rows move as ranks change
        keep = set(selected or [])
        tips = [{"params": r["all_params"], "error": r["error"]} for r in rows]
        return rows, [i for i, r in enumerate(rows) if r["id"] in keep], tips

    @app.callback(
        Output("events-table", "data"),
        Output("events-table", "tooltip_data"),
        Input("refresh", "n_intervals"),
    )
    def events(_n: int | None) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        with session.conn() as conn:
            rows = figures.event_rows(catalog.events(conn, limit=50))
        return rows, [{"detail": r["detail"]} for r in rows]

    @app.callback(Output("drill-parent", "children"), Input("workload-select", "value"))
    def drill_parent(workload: str | None) -> str:
        return workload or "(select a workload)"


def register_models(app: Any, session: Session) -> None:
    """Panel A: the model list, its parameters, and registering an uploaded script."""
    from dash import Input, Output, State, no_update

    @app.callback(
        Output("model-select", "options"),
        Output("model-select", "value"),
        Input("models-version", "data"),
        State("model-select", "value"),
    )
    def models(version: str | None, current: str | None) -> tuple[list[dict], Any]:
        with session.conn() as conn:
            rows = catalog.models(conn)
        options = [{"label": f"{m['name']} ({m['kind']})", "value": m["name"]} for m in rows]
        names = [m["name"] for m in rows]
        if version in names:
            return options, version  # the model just registered
        if current is None and names:
            return options, "mlp" if "mlp" in names else names[0]
        return options, no_update

    @app.callback(
        Output("model-info", "children"),
        Output("model-params", "data"),
        Output("launch-space", "value"),
        Input("model-select", "value"),
    )
    def model_selected(name: str | None) -> tuple[str, list[dict], str]:
        if not name:
            return "", [], "{}"
        with session.conn() as conn:
            model = next((m for m in catalog.models(conn) if m["name"] == name), None)
        if model is None:
            return f"model {name!r} is not visible to this role", [], "{}"
        schema = model["param_schema"] or {}
        info = f"{model['kind']} model, entry point {model['entry_point']}"
        if model["description"]:
            info += f": {model['description']}"
        if not schema:
            return info + " (free parameters: write the space below)", [], "{}"
        return info, figures.param_rows(schema), figures.space_template(schema)


def register_upload(app: Any, session: Session) -> None:
    """Panel A's custom script: uploaded (or typed), then registered by the server."""
    from dash import Input, Output, State, no_update

    @app.callback(
        Output("script-source", "value"),
        Output("script-name", "value"),
        Input("upload-script", "contents"),
        State("upload-script", "filename"),
        prevent_initial_call=True,
    )
    def uploaded(contents: str | None, filename: str | None) -> tuple[Any, Any]:
        if not contents:
            return no_update, no_update
        try:
            source = base64.b64decode(contents.split(",", 1)[1]).decode("utf-8")
        except (IndexError, binascii.Error, UnicodeDecodeError):
            return "# the uploaded file is not UTF-8 text", no_update
        return source, Path(filename or "custom.py").stem

    @app.callback(
        Output("model-message", "children"),
        Output("model-message", "style"),
        Output("models-version", "data"),
        Input("register-button", "n_clicks"),
        State("script-name", "value"),
        State("script-source", "value"),
        State("script-entry", "value"),
        prevent_initial_call=True,
    )
    def register(_n: int, name: str, source: str, entry: str) -> tuple[str, dict, Any]:
        def act(conn: psycopg.Connection) -> str:
            catalog.register_model(conn, name or "", source or "", entry or "build")
            return f"registered model {name!r} (entry point {entry or 'build'})"

        text, style = attempt(session, act)
        return text, style, (name if style is OK else no_update)


def register_datasets(app: Any, session: Session) -> None:
    """Panel B's dataset choices, each with its feature and label columns."""
    from dash import Input, Output

    @app.callback(
        Output("launch-train", "options"),
        Output("launch-train", "value"),
        Output("launch-valid", "options"),
        Output("launch-valid", "value"),
        Input("models-version", "data"),
    )
    def datasets(_v: Any) -> tuple:
        with session.conn() as conn:
            rows = catalog.datasets(conn)
        options = [{"label": figures.dataset_label(d), "value": d["name"]} for d in rows]
        # default: the first dataset another one is "like" (a training set with its
        # validation set), and that validation set
        by_id = {d["dataset_id"]: d for d in rows}
        pairs = [(by_id[d["like_dataset"]], d) for d in rows if d["like_dataset"] in by_id]
        train, valid = pairs[0] if pairs else (rows[0] if rows else None, None)
        return (
            options,
            train["name"] if train else None,
            options,
            valid["name"] if valid else None,
        )


def register_launch(app: Any, session: Session) -> None:
    """Panel B: the launch form."""
    from dash import Input, Output, State, no_update

    @app.callback(
        Output("launch-message", "children"),
        Output("launch-message", "style"),
        Output("workload-select", "options", allow_duplicate=True),
        Output("workload-select", "value", allow_duplicate=True),
        Input("launch-button", "n_clicks"),
        State("launch-name", "value"),
        State("launch-description", "value"),
        State("model-select", "value"),
        State("launch-search", "value"),
        State("launch-train", "value"),
        State("launch-valid", "value"),
        State("launch-epochs", "value"),
        State("launch-num-configs", "value"),
        State("launch-space", "value"),
        prevent_initial_call=True,
    )
    def launch(_n: int, name: str, description: str, model: str, search: str, *rest: Any) -> tuple:
        train, valid, epochs, num_configs, space_text = rest

        def act(conn: psycopg.Connection) -> str:
            space = parse_json_object(space_text, "the search space")
            wid = catalog.launch(
                conn,
                name or "",
                model or "",
                train or "",
                valid or None,
                search,
                space,
                num_configs=None if search == "grid" else _int(num_configs),
                max_epochs=_int(epochs) or 10,
                description=description or None,
            )
            n = len(catalog.configs(conn, name))
            return f"launched workload {name!r} (id {wid}): {n} configs, {search} search"

        text, style = attempt(session, act)
        if style is not OK:
            return text, style, no_update, no_update
        with session.conn() as conn:
            return text, style, workload_options(conn), name


def register_steering(app: Any, session: Session) -> None:
    """Panel D's buttons: the same verbs a person types, on the selected config."""
    from dash import Input, Output, State, ctx

    @app.callback(
        Output("configs-message", "children"),
        Output("configs-message", "style"),
        Input("stop-button", "n_clicks"),
        Input("resume-button", "n_clicks"),
        Input("clone-button", "n_clicks"),
        Input("max-epochs-button", "n_clicks"),
        Input("add-config-button", "n_clicks"),
        State("configs-table", "selected_row_ids"),
        State("workload-select", "value"),
        State("clone-lr", "value"),
        State("new-max-epochs", "value"),
        State("add-params", "value"),
        prevent_initial_call=True,
    )
    def steer(*args: Any) -> tuple[str, dict]:
        selected, workload, lr, max_epochs, add_params = args[5:]
        button = ctx.triggered_id
        cid = int(selected[0]) if selected else None
        if button != "add-config-button" and cid is None:
            return "select a config in the table first", ERR
        return attempt(
            session, lambda conn: _steer(conn, button, cid, workload, lr, max_epochs, add_params)
        )


def _steer(
    conn: psycopg.Connection,
    button: str,
    cid: int | None,
    workload: str | None,
    lr: Any,
    max_epochs: Any,
    add_params: str | None,
) -> str:
    """One button's verb; the sentence saying what it did."""
    if button == "add-config-button":
        if not workload:
            raise ValueError("select a workload first")
        params = parse_json_object(add_params, "the new config's params")
        new = catalog.add_config(conn, catalog.workload_id(conn, workload), params, None)
        return f"added config {new} to {workload!r}"
    assert cid is not None
    if button == "stop-button":
        catalog.stop(conn, cid)
        return f"config {cid}: stop requested (it stops at the next sub-epoch boundary)"
    if button == "resume-button":
        catalog.resume(conn, cid)
        return f"config {cid}: resumed"
    if button == "clone-button":
        overrides = {} if lr in (None, "") else {"learning_rate": float(lr)}
        new = catalog.clone(conn, cid, overrides)
        return f"cloned config {cid} as config {new} with {overrides or 'the same params'}"
    if _int(max_epochs) is None:
        raise ValueError("type the new max epochs first")
    catalog.set_max_epochs(conn, cid, int(max_epochs))
    return f"config {cid}: max epochs set to {int(max_epochs)}"


def register_drill(app: Any, session: Session) -> None:
    """Panel E: a child workload on a refined space around the selected workload's best."""
    from dash import Input, Output, State, no_update

    @app.callback(
        Output("drill-message", "children"),
        Output("drill-message", "style"),
        Output("workload-select", "options", allow_duplicate=True),
        Input("drill-button", "n_clicks"),
        State("workload-select", "value"),
        State("drill-search", "value"),
        State("drill-num-configs", "value"),
        State("drill-space", "value"),
        State("drill-epochs", "value"),
        prevent_initial_call=True,
    )
    def drill(_n: int, parent: str | None, search: str, *rest: Any) -> tuple:
        num_configs, space_text, epochs = rest
        child: list[str] = []

        def act(conn: psycopg.Connection) -> str:
            if not parent:
                raise ValueError("select the parent workload first")
            space = parse_json_object(space_text, "the refined space")
            wid = catalog.drill_down(
                conn,
                catalog.workload_id(conn, parent),
                space,
                search=search,
                num_configs=None if search == "grid" else _int(num_configs),
                max_epochs=_int(epochs),
            )
            name = next(w["workload"] for w in catalog.workloads(conn) if w["workload_id"] == wid)
            child.append(name)
            return f"launched drill-down {name!r} (id {wid}) from {parent!r}"

        text, style = attempt(session, act)
        if not child:
            return text, style, no_update
        with session.conn() as conn:  # the child is listed; the parent stays selected
            return text, style, workload_options(conn)


def register_all(app: Any, session: Session) -> None:
    register_live(app, session)
    register_models(app, session)
    register_upload(app, session)
    register_datasets(app, session)
    register_launch(app, session)
    register_steering(app, session)
    register_drill(app, session)
