"""The BI views (046-bi.sql) and the Grafana dashboard (contrib/grafana/), as a BI tool uses them.

One finished workload 'bi1' (two configs; one stopped and resumed by a human; one cloned with
a lower learning rate after it finished, so a clone's curve inherits its parent's epochs), and
two plain users' workloads. A login role that is only a member of ``cerebro_reader`` (what a
BI tool connects as) reads the views; two ``cerebro_user`` roles check row-level security.
Then every SQL statement of the dashboard (panels, template variables, annotations) is
expanded the way Grafana expands it and run as the reader against the real views.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from cerebro import catalog
from helpers import DB_SUFFIX, launch, make_db, scheduler, wait_all_completed, wait_for

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "contrib" / "grafana" / "cerebro-dashboard.json"
VIEWS = ("bi_configs", "bi_curves", "bi_timeline", "bi_events")
BI_SPACE = {"hidden": {"choice": [[8]]}, "learning_rate": {"choice": [0.01, 0.003]}}


# -- Grafana's macro and variable expansion ---------------------------------------------------


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def grafana_sql(
    query: str,
    variables: Mapping[str, str | Sequence[str]],
    time_from: datetime,
    time_to: datetime,
    interval: timedelta = timedelta(minutes=1),
) -> str:
    """Expand ``query`` as Grafana's PostgreSQL data source does before sending it.

    Macros ($__timeFilter, $__timeFrom, $__timeTo, $__time, $__timeEpoch, $__unixEpochFilter,
    $__timeGroup[Alias], $__interval[_ms]) become SQL; a template variable becomes its value,
    raw when single-valued, as a comma-separated list of quoted literals when multi-valued (a
    list here), as Grafana's SQL data sources format them. An unknown macro or variable
    raises, so a dashboard cannot pass by using something this expansion does not know.
    """
    start, end = _iso(time_from), _iso(time_to)
    secs = int(interval.total_seconds())

    def macro(m: re.Match[str]) -> str:
        name, args = m.group(1), [a.strip() for a in (m.group(2) or "").split(",") if a.strip()]
        col = args[0] if args else ""
        if name == "timeFilter":
            return f"{col} BETWEEN '{start}' AND '{end}'"
        if name == "timeFrom":
            return f"'{start}'"
        if name == "timeTo":
            return f"'{end}'"
        if name == "time":
            return f'{col} AS "time"'
        if name == "timeEpoch":
            return f'extract(epoch from {col}) AS "time"'
        if name == "unixEpochFilter":
            return f"{col} >= {int(time_from.timestamp())} AND {col} <= {int(time_to.timestamp())}"
        if name in ("timeGroup", "timeGroupAlias"):
            step = _seconds(args[1].strip("'\"")) if len(args) > 1 else secs
            group = f"floor(extract(epoch from {col})/{step})*{step}"
            return group + (' AS "time"' if name == "timeGroupAlias" else "")
        raise ValueError(f"unknown Grafana macro $__{name}")

    out = re.sub(r"\$__(\w+)\(([^()]*)\)", macro, query)
    out = out.replace("$__interval_ms", str(secs * 1000)).replace("$__interval", f"{secs}s")
    if "$__" in out:
        raise ValueError(f"unexpanded Grafana macro in {out!r}")

    def variable(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in variables:
            raise ValueError(f"unknown template variable ${name}")
        value = variables[name]
        if isinstance(value, str):
            return value
        return ",".join(_literal(v) for v in value)

    return re.sub(r"\$\{(\w+)\}|\[\[(\w+)\]\]|\$(\w+)", variable, out)


def _seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(text[:-1]) * units[text[-1]]


T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 1, 2, 12, 30, tzinfo=UTC)


def test_grafana_expansion_of_macros_and_variables():
    q = (
        "SELECT $__time(at), x FROM t WHERE $__timeFilter(at) AND w IN ($workload) "
        "AND m = '$metric' AND a > $__timeFrom() AND b < $__timeTo() AND [[metric]] = ${metric}"
    )
    out = grafana_sql(q, {"workload": ["a", "o'b"], "metric": "valid_loss"}, T0, T1)
    assert out == (
        "SELECT at AS \"time\", x FROM t WHERE at BETWEEN '2024-01-01T00:00:00Z' AND "
        "'2024-01-02T12:30:00Z' AND w IN ('a','o''b') AND m = 'valid_loss' AND "
        "a > '2024-01-01T00:00:00Z' AND b < '2024-01-02T12:30:00Z' AND valid_loss = valid_loss"
    )
    assert grafana_sql("$__timeGroupAlias(t, '5m'), $__interval_ms", {}, T0, T1) == (
        'floor(extract(epoch from t)/300)*300 AS "time", 60000'
    )
    assert grafana_sql("$__unixEpochFilter(s)", {}, T0, T1) == (
        f"s >= {int(T0.timestamp())} AND s <= {int(T1.timestamp())}"
    )
    with pytest.raises(ValueError, match="unknown Grafana macro"):
        grafana_sql("select $__timeShift(x)", {}, T0, T1)
    with pytest.raises(ValueError, match="unknown template variable"):
        grafana_sql("select $nope", {}, T0, T1)


# -- the dashboard's statements ---------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _targets(node: Any) -> Iterator[dict[str, Any]]:
    """Every object holding a ``rawSql``, anywhere in the dashboard."""
    if isinstance(node, dict):
        if "rawSql" in node:
            yield node
        for v in node.values():
            yield from _targets(v)
    elif isinstance(node, list):
        for v in node:
            yield from _targets(v)


def statements(board: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, format, sql) of every query the dashboard runs: its panels' and annotations'
    targets and its query template variables."""
    out = []
    for panel in board["panels"]:
        for t in panel.get("targets", []):
            out.append((f"panel {panel['title']!r}", t.get("format", "time_series"), t["rawSql"]))
    for a in board["annotations"]["list"]:
        for t in _targets(a):
            out.append((f"annotation {a['name']!r}", "annotation", t["rawSql"]))
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["rawSql"] if isinstance(v["query"], dict) else v["query"]
            out.append((f"variable ${v['name']}", "variable", q))
    return out


def test_the_dashboard_covers_what_the_issue_asks():
    board = dashboard()
    found = statements(board)
    everything = " ".join(q for *_, q in found)
    for view in ("bi_curves", "bi_timeline", "bi_events", "leaderboard", "progress"):
        assert f"cerebro.{view}" in everything, view
    kinds = {p["type"] for p in board["panels"]}
    assert {"timeseries", "table", "stat"} <= kinds
    assert any(w.startswith("annotation") for w, *_ in found)
    names = {v["name"] for v in board["templating"]["list"]}
    assert {"workload", "datasource"} <= names
    # every target and annotation uses the datasource variable, not a fixed uid
    for node in _targets(board):
        assert node.get("datasource", {}).get("uid") == "${datasource}", node
    assert len(found) >= 7


def test_the_datasource_example_keeps_the_password_out_of_the_file():
    text = (DASHBOARD.parent / "datasource.yaml").read_text()
    settings = [x.strip() for x in text.splitlines() if x.strip() and not x.startswith("#")]
    assert "password: ${CEREBRO_GRAFANA_PASSWORD}" in settings
    assert [x for x in settings if "password" in x.lower()] == [
        "password: ${CEREBRO_GRAFANA_PASSWORD}"
    ]
    assert "type: grafana-postgresql-datasource   # Grafana < 10.3: type: postgres" in settings
    assert "uid: cerebro" in settings and "user: ${CEREBRO_GRAFANA_USER}" in settings


# -- the database -----------------------------------------------------------------------------


def _create_login(c: psycopg.Connection, role: str, group: str) -> None:
    c.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
    c.execute(sql.SQL("grant {} to {}").format(sql.Identifier(group), sql.Identifier(role)))


def as_role(dsn: str, role: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, user=role)


def _user_workload(dsn: str, user: str) -> None:
    """``user`` loads its own dataset from the shared table and launches a 1-config search."""
    with psycopg.connect(as_role(dsn, user), autocommit=True) as c:
        c.execute(
            "select cerebro.load_dataset(%s, 'public.src', array['a', 'b'], 'lbl', "
            "num_partitions => 1)",
            [f"{user}_tr"],
        )
        c.execute(
            "select cerebro.launch(%s, 'mlp', %s, search => 'grid', "
            """space => '{"learning_rate": {"choice": [0.01]}}', max_epochs => 1, """
            "objective => 'train_loss')",
            [f"{user}_w", f"{user}_tr"],
        )


@pytest.fixture(scope="module")
def world(server_dsn: str) -> Iterator[dict[str, Any]]:
    """The finished database and its roles (reader, user1, user2); drops them afterwards.
    It trains through the scheduler daemon (about a minute): the tests using it are slow."""
    tag = (DB_SUFFIX.strip("_") + "_" + uuid.uuid4().hex[:6]).strip("_").lower()
    roles = {"reader": f"bi_{tag}", "user1": f"bi_u1_{tag}", "user2": f"bi_u2_{tag}"}
    dsn = make_db(server_dsn, "cerebro_test_bi")
    try:
        with psycopg.connect(dsn, autocommit=True) as c:
            _create_login(c, roles["reader"], "cerebro_reader")
            for k in ("user1", "user2"):
                _create_login(c, roles[k], "cerebro_user")
                c.execute(
                    sql.SQL("grant select on public.src to {}").format(sql.Identifier(roles[k]))
                )
        yield _build(dsn, roles)
    finally:  # the database stays, like every test's (the next run recreates it)
        names = sql.SQL(", ").join(sql.Identifier(r) for r in roles.values())
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(sql.SQL("drop owned by {}").format(names))
            c.execute(sql.SQL("drop role {}").format(names))


def _build(dsn: str, roles: dict[str, str]) -> dict[str, Any]:
    """Train 'bi1' (with a human stop/resume) and the users' workloads, and a clone of a
    finished config."""
    wid = launch(dsn, "bi1", BI_SPACE, epochs=2)
    for k in ("user1", "user2"):
        _user_workload(dsn, roles[k])
    with catalog.connect(dsn) as c:
        ids = [r["config_id"] for r in catalog.configs(c, "bi1")]
        catalog.stop(c, ids[0])
        catalog.resume(c, ids[0])
    daemon = scheduler(dsn)  # one daemon for both rounds: its start-up is most of the cost
    try:
        wait_for(
            dsn,
            "select status from cerebro.configs where config_id = %s",
            lambda s: s == "completed",
            timeout=300,
            params=[ids[0]],
        )
        with catalog.connect(dsn) as c:
            clone = catalog.clone(c, ids[0], {"learning_rate": 0.001}, max_epochs=3)
        wait_all_completed(dsn)
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    return {"dsn": dsn, "roles": roles, "workload_id": wid, "configs": ids, "clone": clone}


def read(dsn: str, role: str, query: str, args: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(as_role(dsn, role), autocommit=True) as c:
        with c.cursor(row_factory=psycopg.rows.dict_row) as cur:
            return list(cur.execute(query, args).fetchall())


def superuser(dsn: str, query: str, args: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        with c.cursor(row_factory=psycopg.rows.dict_row) as cur:
            return list(cur.execute(query, args).fetchall())


# -- the views, as the reader -----------------------------------------------------------------


@pytest.mark.slow
def test_bi_curves_are_the_learning_curves_flattened(world):
    dsn, reader = world["dsn"], world["roles"]["reader"]
    curves = read(
        dsn,
        reader,
        "select workload, config_id, epoch, metric, value, time, series, status, params, "
        "params_text from cerebro.bi_curves where workload = 'bi1' "
        "order by config_id, metric, epoch",
    )
    truth = superuser(
        dsn,
        "select l.workload, l.config_id, l.epoch, l.metric, l.value, l.created_at as time "
        "from cerebro.learning_curves l where workload = 'bi1' "
        "order by config_id, metric, epoch",
    )
    assert len(truth) > 0
    assert [{k: r[k] for k in truth[0]} for r in curves] == truth
    clone = world["clone"]
    first = world["configs"][0]
    cloned = [r for r in curves if r["config_id"] == clone and r["metric"] == "valid_loss"]
    assert [r["epoch"] for r in cloned] == [1, 2, 3]  # two inherited epochs, one trained
    parent = {r["epoch"]: r["value"] for r in curves if r["config_id"] == first}
    assert [r["value"] for r in cloned[:2]] == [parent[1], parent[2]]
    by_config = {r["config_id"]: r for r in curves}
    assert by_config[clone]["series"] == f"#{clone} hidden=[8] learning_rate=0.001"
    assert by_config[first]["series"] == f"#{first} hidden=[8] learning_rate=0.01"
    assert by_config[clone]["params"]["learning_rate"] == 0.001
    assert "batch_size=32" in by_config[clone]["params_text"]
    assert {r["status"] for r in curves} == {"completed"}


@pytest.mark.slow
def test_bi_timeline_has_one_row_per_epoch_and_the_running_best(world):
    dsn, reader = world["dsn"], world["roles"]["reader"]
    rows = read(
        dsn,
        reader,
        "select config_id, epoch, objective, best_so_far, valid_loss, train_loss, seconds, "
        "rows, time from cerebro.bi_timeline where workload = 'bi1' order by config_id, epoch",
    )
    truth = superuser(
        dsn,
        "select m.config_id, m.epoch, m.valid_loss, m.train_loss, m.seconds, m.rows, "
        "m.created_at as time from cerebro.metrics m join cerebro.configs c using (config_id) "
        "join cerebro.workloads w using (workload_id) where w.name = 'bi1' order by 1, 2",
    )
    assert len(rows) == len(truth) == 2 * 2 + 1  # two configs x 2 epochs, the clone's third
    assert [{k: r[k] for k in truth[0]} for r in rows] == truth
    best: dict[int, float] = {}
    for r in rows:
        assert r["objective"] == r["valid_loss"]  # the objective is valid_loss (min)
        best[r["config_id"]] = min(best.get(r["config_id"], r["objective"]), r["objective"])
        assert r["best_so_far"] == best[r["config_id"]]
    assert all(r["best_so_far"] is not None for r in rows)


@pytest.mark.slow
def test_bi_events_show_the_human_steering(world):
    dsn, reader = world["dsn"], world["roles"]["reader"]
    rows = read(
        dsn,
        reader,
        "select actor, actor_kind, action, config_id, text, detail, time "
        "from cerebro.bi_events where workload = 'bi1' order by event_id",
    )
    first, clone = world["configs"][0], world["clone"]
    human = [(r["action"], r["config_id"]) for r in rows if r["actor_kind"] == "human"]
    assert human == [("launch", None), ("stop", first), ("resume", first), ("clone", clone)]
    assert all(r["actor"] == "human:postgres" for r in rows if r["actor_kind"] == "human")
    kinds = {r["actor"]: r["actor_kind"] for r in rows}
    assert kinds["automl:grid"] == "automl" and kinds["system"] == "scheduler"
    stop = next(r for r in rows if r["action"] == "stop")
    assert stop["text"] == f"human:postgres stop #{first} (active -> stopped, epoch 0)"
    cl = next(r for r in rows if r["action"] == "clone")
    assert cl["text"] == f"human:postgres clone #{clone} (of #{first}, epoch 2)"
    total = superuser(
        dsn,
        "select count(*) as n from cerebro.events e join cerebro.workloads w "
        "using (workload_id) where w.name = 'bi1'",
    )
    assert len(rows) == total[0]["n"]


@pytest.mark.slow
def test_the_reader_sees_every_workload_but_no_base_table_and_cannot_steer(world):
    dsn, roles = world["dsn"], world["roles"]
    reader = roles["reader"]
    seen = read(dsn, reader, "select distinct workload from cerebro.bi_configs order by 1")
    assert [r["workload"] for r in seen] == sorted(
        ["bi1", f"{roles['user1']}_w", f"{roles['user2']}_w"]
    )
    refused = [
        ("select * from cerebro.configs", "permission denied for table configs"),
        ("select * from cerebro.checkpoints", "permission denied for table checkpoints"),
        ("select * from cerebro.buffers", "permission denied for table buffers"),
        ("select * from cerebro.metrics", "permission denied for table metrics"),
        (f"select cerebro.stop({world['clone']})", "permission denied for function stop"),
        (
            "select cerebro.launch('x', 'mlp', 'tr', 'va')",
            "permission denied for function launch",
        ),
        (
            f"update cerebro.configs set status = 'stopped' where config_id = {world['clone']}",
            "permission denied for table configs",
        ),
    ]
    for statement, message in refused:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=message):
            read(dsn, reader, statement)
    still = superuser(
        dsn, "select status from cerebro.configs where config_id = %s", [world["clone"]]
    )
    assert still == [{"status": "completed"}]


@pytest.mark.slow
def test_a_user_sees_only_its_own_workloads_in_the_views(world):
    dsn, roles = world["dsn"], world["roles"]
    for me, other in (("user1", "user2"), ("user2", "user1")):
        mine = f"{roles[me]}_w"
        for view in VIEWS:
            rows = read(dsn, roles[me], f"select distinct workload from cerebro.{view}")
            assert [r["workload"] for r in rows] == [mine], (me, view)
        curves = read(dsn, roles[me], "select config_id, metric, epoch from cerebro.bi_curves")
        assert "train_loss" in {r["metric"] for r in curves}
        assert {(r["config_id"], r["epoch"]) for r in curves} == {(curves[0]["config_id"], 1)}
        actors = read(dsn, roles[me], "select distinct actor from cerebro.bi_events")
        assert f"human:{roles[me]}" in {r["actor"] for r in actors}
        assert f"human:{roles[other]}" not in {r["actor"] for r in actors}


@pytest.mark.slow
def test_nothing_new_is_granted_to_public(world):
    rows = superuser(
        world["dsn"],
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace, "
        "aclexplode(c.relacl) a where n.nspname = 'cerebro' and c.relname like 'bi\\_%%' "
        "and a.grantee = 0",
    )
    assert rows == []
    views = superuser(
        world["dsn"],
        "select c.relname, obj_description(c.oid, 'pg_class') as doc, c.reloptions "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = 'cerebro' and c.relname like 'bi\\_%%' order by 1",
    )
    assert [v["relname"] for v in views] == sorted(VIEWS)
    for v in views:
        assert v["doc"] and "stable columns" in v["doc"], v
        assert v["reloptions"] == ["security_barrier=true"], v


# -- the dashboard, as the reader -------------------------------------------------------------


def _grafana_variables(board: dict[str, Any]) -> dict[str, Any]:
    """The values a person would pick: workload bi1 (the $workload query must offer it, which
    the test below checks) and valid_loss."""
    variables: dict[str, Any] = {"workload": ["bi1"], "metric": "valid_loss"}
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            assert v["name"] in variables, f"the test does not know variable ${v['name']}"
    return variables


@pytest.mark.slow
def test_every_dashboard_query_runs_as_the_reader_and_returns_what_its_panel_needs(world):
    dsn, reader = world["dsn"], world["roles"]["reader"]
    board = dashboard()
    variables = _grafana_variables(board)
    now = datetime.now(UTC)
    ran = 0
    for where, fmt, query in statements(board):
        text = grafana_sql(query, variables, now - timedelta(hours=6), now + timedelta(minutes=5))
        with psycopg.connect(as_role(dsn, reader), autocommit=True) as c:
            cur = c.execute(text)
            columns = [d.name for d in cur.description or []]
            rows = cur.fetchall()
        assert rows, f"{where} returned no rows: {text}"
        assert "?column?" not in columns, f"{where} has an unnamed column: {columns}"
        assert len(set(columns)) == len(columns), f"{where} repeats a column: {columns}"
        _check_format(where, fmt, columns, rows)
        if where == "variable $workload":
            assert "bi1" in [r[0] for r in rows]
        ran += 1
    assert ran == len(statements(board)) >= 7


def _check_format(where: str, fmt: str, columns: list[str], rows: list[tuple]) -> None:
    """What Grafana needs of each kind of result."""
    if fmt == "time_series":
        assert columns[0] == "time", f"{where}: a time series needs a 'time' column first"
        assert "metric" in columns, f"{where}: one series per config needs a 'metric' column"
        i = columns.index("metric")
        assert len({r[i] for r in rows}) > 1, f"{where}: expected one series per config"
        assert all(isinstance(r[0], datetime) for r in rows)
    elif fmt == "annotation":
        assert {"time", "text"} <= set(columns), f"{where}: annotations need time and text"
    elif fmt == "variable":
        assert len(columns) == 1, f"{where}: a variable query returns one column"
    else:
        assert fmt == "table", f"{where}: unknown format {fmt}"


@pytest.mark.slow
def test_panel_overrides_name_columns_the_queries_return(world):
    """A field override on a column that does not exist is silently ignored by Grafana."""
    dsn, reader = world["dsn"], world["roles"]["reader"]
    board = dashboard()
    variables = _grafana_variables(board)
    now = datetime.now(UTC)
    checked = 0
    for panel in board["panels"]:
        names = [
            o["matcher"]["options"]
            for o in panel.get("fieldConfig", {}).get("overrides", [])
            if o["matcher"]["id"] == "byName"
        ]
        if not names:
            continue
        cols: set[str] = set()
        for t in panel["targets"]:
            text = grafana_sql(t["rawSql"], variables, now - timedelta(hours=6), now)
            with psycopg.connect(as_role(dsn, reader), autocommit=True) as c:
                cols |= {d.name for d in c.execute(text).description or []}
        assert set(names) <= cols, (panel["title"], set(names) - cols)
        checked += 1
    assert checked >= 2
