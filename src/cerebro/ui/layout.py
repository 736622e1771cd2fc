"""The page: a header with the logged-in role and the selected workload, then the original
Cerebro demo's five panels (A model, B launch, C curves, D configs, E drill-down) and the
events feed. Element ids are stable: the callbacks and the browser test use them."""

from __future__ import annotations

from typing import Any

SEARCHES = ["grid", "random", "hyperopt", "asha", "hyperband", "pbt"]
CONFIG_COLUMNS = [
    ("config_id", "id"),
    ("rank", "rank"),
    ("status", "status"),
    ("epoch", "epoch/max"),
    ("best", "best objective"),
    ("last", "last objective"),
    ("source", "source"),
    ("parent", "parent config"),
    ("params", "params (those that differ)"),
    ("error", "error"),
]
CELL = {"fontSize": "12px", "textAlign": "left", "padding": "2px 6px"}
# long JSON cells end in "..." (the whole value is the cell's tooltip)
ELLIPSIS = {"maxWidth": "320px", "overflow": "hidden", "textOverflow": "ellipsis"}
EVENT_COLUMNS = ["at", "actor", "workload", "config", "action", "detail"]
PANEL = {
    "border": "1px solid #ccd",
    "borderRadius": "6px",
    "padding": "10px 14px",
    "margin": "8px",
    "background": "#fbfbfd",
}
MESSAGE = {"whiteSpace": "pre-wrap", "fontSize": "13px", "margin": "6px 0", "minHeight": "1em"}
NUMBER = {"width": "90px"}
TEXTAREA = {"width": "100%", "fontFamily": "monospace", "fontSize": "12px"}


def _field(label: str, control: Any) -> Any:
    from dash import html

    return html.Div(
        [
            html.Label(
                label, style={"display": "block", "fontWeight": "bold", "fontSize": "13px"}
            ),
            control,
        ],
        style={"margin": "4px 0"},
    )


def _panel(pid: str, title: str, children: list[Any], width: str = "46%") -> Any:
    from dash import html

    return html.Div(
        [html.H3(title, style={"margin": "2px 0 8px"}), *children],
        id=pid,
        style={**PANEL, "flex": f"1 1 {width}", "minWidth": "420px"},
    )


def header(role: str, dsn_label: str) -> Any:
    from dash import dcc, html

    return html.Div(
        [
            html.H2("cerebro", style={"margin": "0 16px 0 0"}),
            html.Span(["logged in as ", html.B(role, id="whoami")]),
            html.Span(f"  ({dsn_label})", style={"color": "#667", "marginRight": "24px"}),
            html.Label("workload: ", style={"fontWeight": "bold"}),
            dcc.Dropdown(id="workload-select", clearable=False, style={"width": "320px"}),
            dcc.Interval(id="refresh", interval=2000),
            dcc.Store(id="models-version"),
        ],
        style={"display": "flex", "alignItems": "center", "gap": "8px", "margin": "8px"},
    )


def model_panel() -> Any:
    from dash import dash_table, dcc, html

    return _panel(
        "panel-model",
        "A. Model",
        [
            _field("roster or registered model", dcc.Dropdown(id="model-select", clearable=False)),
            html.Div(id="model-info", style={"fontSize": "13px", "color": "#445"}),
            dash_table.DataTable(  # type: ignore[attr-defined]
                id="model-params",
                columns=[{"name": c, "id": c} for c in ("param", "type", "allowed", "default")],
                style_cell=CELL,
            ),
            html.H4("or upload a custom Keras script", style={"margin": "10px 0 4px"}),
            dcc.Upload(
                id="upload-script",
                children=html.Div(["drop a .py file here or ", html.A("choose one")]),
                accept=".py",
                style={
                    "border": "1px dashed #99a",
                    "borderRadius": "4px",
                    "padding": "8px",
                    "textAlign": "center",
                },
            ),
            _field(
                "script",
                dcc.Textarea(
                    id="script-source",
                    placeholder="def build(config):\n    import keras\n    ...",
                    style={**TEXTAREA, "height": "110px"},
                ),
            ),
            html.Div(
                [
                    _field("name", dcc.Input(id="script-name", type="text")),
                    _field("entry point", dcc.Input(id="script-entry", value="build")),
                    html.Button("register model", id="register-button"),
                ],
                style={"display": "flex", "gap": "12px", "alignItems": "end"},
            ),
            html.Pre(id="model-message", style=MESSAGE),
        ],
    )


def launch_panel() -> Any:
    from dash import dcc, html

    row = {"display": "flex", "gap": "12px", "flexWrap": "wrap"}
    return _panel(
        "panel-launch",
        "B. Launch a search",
        [
            html.Div(
                [
                    _field("name", dcc.Input(id="launch-name", type="text")),
                    _field(
                        "AutoML procedure",
                        dcc.Dropdown(
                            id="launch-search",
                            options=SEARCHES,
                            value="grid",
                            clearable=False,
                            style={"width": "160px"},
                        ),
                    ),
                    _field(
                        "max epochs",
                        dcc.Input(id="launch-epochs", type="number", value=10, style=NUMBER),
                    ),
                    _field(
                        "configs (not grid)",
                        dcc.Input(id="launch-num-configs", type="number", value=8, style=NUMBER),
                    ),
                ],
                style=row,
            ),
            _field("description", dcc.Input(id="launch-description", style={"width": "100%"})),
            _field("training data", dcc.Dropdown(id="launch-train")),
            _field("validation data", dcc.Dropdown(id="launch-valid")),
            _field(
                "search space (JSON; roster models: prefilled from the parameter list)",
                dcc.Textarea(id="launch-space", style={**TEXTAREA, "height": "150px"}),
            ),
            html.Button("launch", id="launch-button"),
            html.Pre(id="launch-message", style=MESSAGE),
        ],
    )


def curves_panel(tensorboard_url: str) -> Any:
    from dash import dcc, html

    return _panel(
        "panel-curves",
        "C. Learning curves (live)",
        [
            html.Div(
                [
                    dcc.Dropdown(
                        id="metric-select",
                        options=["valid_loss", "train_loss", "valid_accuracy", "train_accuracy"],
                        value="valid_loss",
                        clearable=False,
                        style={"width": "200px"},
                    ),
                    html.A(
                        "open in TensorBoard",
                        id="tensorboard-link",
                        href=tensorboard_url,
                        target="_blank",
                    ),
                ],
                style={"display": "flex", "gap": "16px", "alignItems": "center"},
            ),
            dcc.Graph(id="curves-graph", config={"displaylogo": False}),
        ],
    )


def configs_panel() -> Any:
    from dash import dash_table, dcc, html

    return _panel(
        "panel-configs",
        "D. Configs",
        [
            dash_table.DataTable(  # type: ignore[attr-defined]
                id="configs-table",
                columns=[{"name": n, "id": i} for i, n in CONFIG_COLUMNS],
                sort_action="native",
                row_selectable="single",
                selected_rows=[],
                page_size=12,
                style_table={"overflowX": "auto"},
                style_cell=CELL,
                style_cell_conditional=[
                    {"if": {"column_id": c}, **ELLIPSIS} for c in ("params", "error")
                ],
                tooltip_duration=None,
                style_data_conditional=[
                    {"if": {"filter_query": '{status} = "stopped"'}, "color": "#a60"},
                    {"if": {"filter_query": '{status} = "failed"'}, "color": "#c00"},
                    {"if": {"filter_query": '{source} = "clone"'}, "fontStyle": "italic"},
                ],
            ),
            html.Div(
                [
                    html.Button("stop", id="stop-button"),
                    html.Button("resume", id="resume-button"),
                    dcc.Input(id="clone-lr", type="number", placeholder="new learning rate"),
                    html.Button("clone", id="clone-button"),
                    dcc.Input(id="new-max-epochs", type="number", placeholder="max epochs"),
                    html.Button("set max epochs", id="max-epochs-button"),
                ],
                style={"display": "flex", "gap": "8px", "margin": "8px 0", "flexWrap": "wrap"},
            ),
            html.Div(
                [
                    dcc.Input(
                        id="add-params",
                        placeholder='params JSON, e.g. {"learning_rate": 0.005}',
                        style={"width": "60%"},
                    ),
                    html.Button("add config", id="add-config-button"),
                ],
                style={"display": "flex", "gap": "8px"},
            ),
            html.Pre(id="configs-message", style=MESSAGE),
        ],
        width="100%",
    )


def drill_panel() -> Any:
    from dash import dcc, html

    return _panel(
        "panel-drill",
        "E. Drill down",
        [
            html.Div(["parent workload: ", html.B(id="drill-parent")]),
            html.Div(
                [
                    _field(
                        "search",
                        dcc.Dropdown(
                            id="drill-search",
                            options=SEARCHES,
                            value="grid",
                            clearable=False,
                            style={"width": "140px"},
                        ),
                    ),
                    _field(
                        "configs (not grid)",
                        dcc.Input(id="drill-num-configs", type="number", style=NUMBER),
                    ),
                    _field(
                        "max epochs", dcc.Input(id="drill-epochs", type="number", style=NUMBER)
                    ),
                ],
                style={"display": "flex", "gap": "12px"},
            ),
            _field(
                "refined space (JSON; unsearched parameters are pinned to the best config)",
                dcc.Textarea(
                    id="drill-space",
                    value='{"learning_rate": {"choice": [0.002, 0.005]}}',
                    style={**TEXTAREA, "height": "60px"},
                ),
            ),
            html.Button("launch drill-down", id="drill-button"),
            html.Pre(id="drill-message", style=MESSAGE),
        ],
        width="28%",
    )


def events_panel() -> Any:
    from dash import dash_table

    return _panel(
        "panel-events",
        "Events (newest first)",
        [
            dash_table.DataTable(  # type: ignore[attr-defined]
                id="events-table",
                columns=[{"name": c, "id": c} for c in EVENT_COLUMNS],
                page_size=15,
                style_cell=CELL,
                style_cell_conditional=[{"if": {"column_id": "detail"}, **ELLIPSIS}],
                style_table={"overflowX": "auto"},
                tooltip_duration=None,
            )
        ],
        width="62%",
    )


def page(role: str, dsn_label: str, tensorboard_url: str) -> Any:
    from dash import html

    flex = {"display": "flex", "flexWrap": "wrap", "alignItems": "flex-start"}
    return html.Div(
        [
            header(role, dsn_label),
            html.Div([model_panel(), launch_panel()], style=flex),
            html.Div([curves_panel(tensorboard_url)], style=flex),
            html.Div([configs_panel()], style=flex),
            html.Div([drill_panel(), events_panel()], style=flex),
        ],
        style={"fontFamily": "sans-serif", "maxWidth": "1500px"},
    )
