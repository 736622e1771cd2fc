"""`cerebro ui` in a real browser: Debian's chromium + chromedriver, headless, driven with
selenium against the command started as a subprocess, on a live workload that the scheduler
daemon trains. Every click is checked where it must land: in the catalog (cerebro.workloads,
cerebro.configs, cerebro.events with actor human:<role>), not only on the page. Each panel's
screenshot goes to docs/screenshots/ (the README links them). A second browser test runs the
page as a plain ``cerebro_user`` login: row-level security decides what it shows, the server
refuses what the role may not do (in its own words), and its clicks are audited as its role.

chromium and chromedriver are system packages (`make test` and .ci/run install them with
tools/system-packages.sh --browser): when they are missing this test FAILS, it does not skip.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from helpers import DB_SUFFIX, ROOT, fetch_all, launch, make_db, scheduler, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = ROOT / "docs" / "screenshots"
# a grid of two mlp configs on make_db's tiny 'tr'/'va' (an epoch takes ~1.5 s once the
# workers are warm); max epochs far above what the test waits for, so both configs are still
# training when the test stops one (the daemon is stopped at the end)
SPACE = {"hidden": [8], "batch_size": 32, "learning_rate": {"choice": [0.01, 0.003]}}
MAX_EPOCHS = 40
BAD_SCRIPT = "def build(config):\n    import keras\n    return keras.Sequential([\n"
PAGE_WAIT = 60  # seconds a page element may take (a Dash refresh is 2 s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def db(server_dsn: str) -> Iterator[str]:
    dsn = make_db(server_dsn, "cerebro_test_ui")
    daemon = scheduler(dsn)
    try:
        yield dsn
    finally:
        daemon.terminate()
        daemon.communicate(timeout=60)


@contextmanager
def serving_ui(dsn: str) -> Iterator[str]:
    """`cerebro ui` for ``dsn`` on a free port; its URL once the port answers (state, not a
    sleep); terminated on exit."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cerebro.cli", "ui", "--dsn", dsn, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while not port_answers(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"cerebro ui did not start:\n{proc.communicate()[0]}")
        time.sleep(0.1)  # polling the port's state
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.fixture(scope="module")
def ui(db: str) -> Iterator[str]:
    """`cerebro ui` as the superuser on the module's database."""
    with serving_ui(db) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"the browser test needs {' and '.join(missing)}: install Debian's chromium and "
            "chromium-driver (bash tools/system-packages.sh --browser, as root, does it)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# -- page helpers ------------------------------------------------------------------------------


def until(driver: Any, condition: Callable[[Any], Any], timeout: float = PAGE_WAIT) -> Any:
    """WebDriverWait that retries through a re-render (the page refreshes every 2 s)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver, timeout, ignored_exceptions=[StaleElementReferenceException]
    ).until(condition)


def by_id(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return until(driver, lambda d: d.find_element(By.ID, element_id))


def type_into(driver: Any, element_id: str, text: str) -> None:
    """Replace a field's text the way a person does (select all, type), so React sees it."""
    from selenium.webdriver.common.keys import Keys

    el = by_id(driver, element_id)
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.DELETE)
    el.send_keys(text)
    until(driver, lambda d: by_id(d, element_id).get_attribute("value") == text)


def message(driver: Any, element_id: str, contains: str) -> str:
    """The text of a message area once it contains ``contains``."""
    return until(driver, lambda d: (t := by_id(d, element_id).text) and contains in t and t)


def config_row(driver: Any, config_id: int) -> Any:
    """The configs table's row of ``config_id`` (None while the table does not show it)."""
    from selenium.webdriver.common.by import By

    for tr in driver.find_elements(By.CSS_SELECTOR, "#configs-table tr"):
        cells = tr.find_elements(By.CSS_SELECTOR, "td[data-dash-column='config_id']")
        if cells and cells[0].text == str(config_id):
            return tr
    return None


def cell(row: Any, column: str) -> str:
    from selenium.webdriver.common.by import By

    return str(row.find_element(By.CSS_SELECTOR, f"td[data-dash-column='{column}']").text)


def select_config(driver: Any, config_id: int) -> None:
    """Tick the configs table's radio button on the row of ``config_id``."""
    from selenium.webdriver.common.by import By

    until(driver, lambda d: config_row(d, config_id)).find_element(
        By.CSS_SELECTOR, "input"
    ).click()
    until(
        driver,
        lambda d: config_row(d, config_id).find_element(By.CSS_SELECTOR, "input").is_selected(),
    )


def shoot(driver: Any, element_id: str, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    el = by_id(driver, element_id)
    driver.execute_script("arguments[0].scrollIntoView();", el)
    assert el.screenshot(str(SHOTS / f"{name}.png"))


def traces_with_points(driver: Any) -> int:
    return int(
        driver.execute_script(
            "const g = document.querySelector('#curves-graph .js-plotly-plot');"
            "return g && g.data ? g.data.filter(t => t.x && t.x.length > 0).length : 0;"
        )
    )


def one(dsn: str, query: str, args: list[Any] | None = None) -> Any:
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute(query, args).fetchone()
    return None if row is None else row[0]


# -- the test ------------------------------------------------------------------------------------


def launch_from_form(driver: Any, db: str) -> int:
    """Panel B: a grid of two mlp configs; returns the workload id the catalog shows."""
    type_into(driver, "launch-name", "ui-grid")
    type_into(driver, "launch-description", "launched from the browser test")
    type_into(driver, "launch-epochs", str(MAX_EPOCHS))
    type_into(driver, "launch-space", json.dumps(SPACE))
    by_id(driver, "launch-button").click()
    message(driver, "launch-message", "launched workload 'ui-grid'")
    wid = wait_for(
        db,
        "select workload_id from cerebro.workloads where name = 'ui-grid' "
        "and options ->> 'description' = 'launched from the browser test' and max_epochs = %s",
        lambda v: v is not None,
        timeout=10,
        params=[MAX_EPOCHS],
    )
    assert one(db, "select count(*) from cerebro.configs where workload_id = %s", [wid]) == 2
    return int(wid)


def stop_and_resume(driver: Any, db: str, wid: int, actor: str) -> int:
    """Panel D: stop a config still training, then resume it; both in cerebro.events."""
    cid = one(
        db,
        "select config_id from cerebro.configs where workload_id = %s and status = 'active' "
        "order by epoch, config_id limit 1",
        [wid],
    )
    assert cid is not None, "no config is still training: raise MAX_EPOCHS"
    select_config(driver, cid)
    event = (
        "select count(*) from cerebro.events where config_id = %s and action = %s and actor = %s"
    )
    by_id(driver, "stop-button").click()
    message(driver, "configs-message", f"config {cid}: stop requested")
    wait_for(db, event, lambda n: n == 1, timeout=10, params=[cid, "stop", actor])
    by_id(driver, "resume-button").click()
    message(driver, "configs-message", f"config {cid}: resumed")
    wait_for(db, event, lambda n: n == 1, timeout=10, params=[cid, "resume", actor])
    return int(cid)


def raise_max_epochs_and_add(driver: Any, db: str, wid: int, cid: int, actor: str) -> None:
    """Panel D: train the selected config longer; add a config by hand (params JSON)."""
    type_into(driver, "new-max-epochs", str(MAX_EPOCHS + 5))
    by_id(driver, "max-epochs-button").click()
    message(driver, "configs-message", f"config {cid}: max epochs set to {MAX_EPOCHS + 5}")
    assert one(db, "select max_epochs from cerebro.configs where config_id = %s", [cid]) == (
        MAX_EPOCHS + 5
    )
    type_into(driver, "add-params", '{"learning_rate": 0.007}')
    by_id(driver, "add-config-button").click()
    message(driver, "configs-message", "added config")
    wait_for(
        db,
        "select count(*) from cerebro.configs c join cerebro.events e using (config_id) "
        "where c.workload_id = %s and (c.params ->> 'learning_rate')::float8 = 0.007 "
        "and e.action = 'add' and e.actor = %s",
        lambda n: n == 1,
        timeout=10,
        params=[wid, actor],
    )


def clone_with_learning_rate(driver: Any, db: str, cid: int, actor: str) -> None:
    """Panel D: clone the selected config with a new learning rate (lineage in the table)."""
    type_into(driver, "clone-lr", "0.0005")
    by_id(driver, "clone-button").click()
    message(driver, "configs-message", f"cloned config {cid} as config")
    clone = wait_for(
        db,
        "select config_id from cerebro.configs where parent_config = %s and source = 'clone' "
        "and (params ->> 'learning_rate')::float8 = 0.0005",
        lambda v: v is not None,
        timeout=10,
        params=[cid],
    )
    assert (
        one(
            db,
            "select count(*) from cerebro.events where config_id = %s and action = 'clone' "
            "and actor = %s",
            [clone, actor],
        )
        == 1
    )
    # the table shows the clone with its lineage once it refreshes
    row = until(driver, lambda d: config_row(d, clone))
    assert (cell(row, "source"), cell(row, "parent")) == ("clone", str(cid))
    assert "learning_rate=0.0005" in cell(row, "params")


def drill_down_from_form(driver: Any, db: str, wid: int) -> None:
    """Panel E: a child workload on a refined space, its parent the selected workload."""
    type_into(driver, "drill-space", json.dumps({"learning_rate": {"choice": [0.002, 0.005]}}))
    type_into(driver, "drill-epochs", "1")
    by_id(driver, "drill-button").click()
    message(driver, "drill-message", "launched drill-down 'ui-grid/drill-1'")
    child = wait_for(
        db,
        "select workload_id from cerebro.workloads where parent_workload = %s",
        lambda v: v is not None,
        timeout=10,
        params=[wid],
    )
    assert one(db, "select count(*) from cerebro.configs where workload_id = %s", [child]) == 2


def server_refusal(db: str, name: str, source: str) -> Future[psycopg.Error]:
    """What register_model says to psql for this script: computed in a thread because a fresh
    backend takes ~20 s to answer (the server loads its model code first)."""

    def refuse() -> psycopg.Error:
        with psycopg.connect(db, autocommit=True) as c, pytest.raises(psycopg.Error) as e:
            c.execute("select cerebro.register_model(%s, %s, %s)", [name, source, "build"])
        return e.value

    return ThreadPoolExecutor(max_workers=1).submit(refuse)


def bad_script_is_refused_verbatim(driver: Any, db: str, tmp_path: Path) -> None:
    """Panel A: an uploaded script that does not compile; the page shows the server's words."""
    from selenium.webdriver.common.by import By

    expected = server_refusal(db, "broken_net", BAD_SCRIPT)
    script = tmp_path / "broken_net.py"
    script.write_text(BAD_SCRIPT)
    upload = by_id(driver, "upload-script").find_element(By.CSS_SELECTOR, "input[type=file]")
    upload.send_keys(str(script))
    until(driver, lambda d: by_id(d, "script-name").get_attribute("value") == "broken_net")
    until(driver, lambda d: "keras.Sequential" in by_id(d, "script-source").get_attribute("value"))
    by_id(driver, "register-button").click()
    shown = until(driver, lambda d: "ERROR:" in (t := by_id(d, "model-message").text) and t, 180)
    diag = expected.result(timeout=180).diag
    assert diag.message_primary and "does not compile" in diag.message_primary
    assert f"ERROR:  {diag.message_primary}" in shown
    for extra in (diag.message_detail, diag.message_hint):
        assert extra is None or extra in shown
    assert one(db, "select count(*) from cerebro.models where name = 'broken_net'") == 0


@pytest.mark.slow
def test_the_five_panels_steer_a_live_search(browser: Any, db: str, ui: str, tmp_path: Path):
    driver = browser
    driver.get(ui)
    actor = one(db, "select cerebro.actor()")
    assert by_id(driver, "whoami").text == actor  # the header names the logged-in role
    until(driver, lambda d: by_id(d, "launch-train").text.startswith("tr"))
    wid = launch_from_form(driver, db)
    # while the first epoch trains: the upload (its backend loads the model code once)
    bad_script_is_refused_verbatim(driver, db, tmp_path)
    shoot(driver, "panel-model", "A-model")
    until(driver, lambda d: traces_with_points(d) >= 1, timeout=180)  # live curves
    cid = stop_and_resume(driver, db, wid, actor)
    raise_max_epochs_and_add(driver, db, wid, cid, actor)
    clone_with_learning_rate(driver, db, cid, actor)
    shoot(driver, "panel-configs", "D-configs")
    shoot(driver, "panel-curves", "C-curves")
    drill_down_from_form(driver, db, wid)
    shoot(driver, "panel-drill", "E-drill-down")
    shoot(driver, "panel-launch", "B-launch")
    until(driver, lambda d: "drill" in by_id(d, "events-table").text)
    shoot(driver, "panel-events", "events")


# -- a plain cerebro_user in the browser: row-level security and the audit trail -------------

GOOD_SCRIPT = "def build(config):\n    import keras\n    return keras.Sequential([])\n"
ROLE = f"ui_user{DB_SUFFIX}".lower()  # roles are cluster-wide: one per concurrent test run
OTHER = f"{ROLE}_other"


def as_role(dsn: str, role: str) -> str:
    """The same database as another login (the embedded server trusts its Unix socket)."""
    return psycopg.conninfo.make_conninfo(dsn, user=role)


def two_tenants(dsn: str) -> None:
    """In make_db's database: OTHER (a cerebro_user) and the superuser each launch a
    workload; ROLE (a cerebro_user, nothing more) loads its own training and validation
    data."""
    with psycopg.connect(dsn, autocommit=True) as c:
        for role in (OTHER, ROLE):
            c.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))
            c.execute(
                sql.SQL("create role {} login in role cerebro_user").format(sql.Identifier(role))
            )
            c.execute(sql.SQL("grant select on src, va_src to {}").format(sql.Identifier(role)))
    launch(dsn, "admin-grid", {"learning_rate": {"choice": [0.01, 0.003]}})  # on 'tr'/'va'
    for role, prefix in ((OTHER, "other"), (ROLE, "mine")):
        with psycopg.connect(as_role(dsn, role), autocommit=True) as c:
            c.execute(
                "select cerebro.load_dataset(%s, 'public.src', array['a', 'b'], 'lbl', "
                "num_partitions => 2, seed => 1)",
                [f"{prefix}_tr"],
            )
            c.execute(
                "select cerebro.load_dataset(%s, 'public.va_src', like_dataset => %s, "
                "num_partitions => 2)",
                [f"{prefix}_va", f"{prefix}_tr"],
            )
    with psycopg.connect(as_role(dsn, OTHER), autocommit=True) as c:
        c.execute(
            "select cerebro.launch('other-grid', 'mlp', 'other_tr', 'other_va', 'grid', %s, "
            "max_epochs => 3, seed => 11)",
            [json.dumps(SPACE)],
        )


def drop_roles(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        for role in (ROLE, OTHER):
            if not c.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone():
                continue
            c.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
            c.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def dropdown_options(driver: Any, element_id: str) -> list[str]:
    """The choices a person sees on opening a dropdown (opened, read, closed again)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def opened(d: Any) -> list[str] | None:
        select = by_id(d, element_id).find_element(By.CSS_SELECTOR, ".Select")
        if "is-open" not in (select.get_attribute("class") or ""):
            select.find_element(By.CSS_SELECTOR, ".Select-control").click()
            return None
        return [
            o.text
            for o in select.find_elements(
                By.CSS_SELECTOR, ".Select-option, .VirtualizedSelectOption"
            )
        ] or None

    options = until(driver, opened)
    by_id(driver, element_id).find_element(By.CSS_SELECTOR, "input").send_keys(Keys.ESCAPE)
    return list(options)


def shown_config_ids(driver: Any) -> set[int]:
    from selenium.webdriver.common.by import By

    cells = driver.find_elements(
        By.CSS_SELECTOR, "#configs-table td[data-dash-column='config_id']"
    )
    return {int(c.text) for c in cells if c.text}


def upload_is_refused_as_psql_refuses_it(driver: Any, dsn: str, tmp_path: Path) -> None:
    """Panel A as a non-admin: register_model is for cerebro_admin; the page shows exactly
    the error psycopg gets for the same call as the same role, and no model row appears."""
    from selenium.webdriver.common.by import By

    with (
        psycopg.connect(as_role(dsn, ROLE), autocommit=True) as c,
        pytest.raises(psycopg.Error) as refused,
    ):
        c.execute("select cerebro.register_model(%s, %s, %s)", ["rls_net", GOOD_SCRIPT, "build"])
    diag = refused.value.diag
    assert refused.value.sqlstate == "42501"  # insufficient_privilege, not a compile error
    script = tmp_path / "rls_net.py"
    script.write_text(GOOD_SCRIPT)
    by_id(driver, "upload-script").find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(
        str(script)
    )
    until(driver, lambda d: by_id(d, "script-name").get_attribute("value") == "rls_net")
    by_id(driver, "register-button").click()
    shown = message(driver, "model-message", "ERROR:")
    assert shown == f"ERROR:  {diag.message_primary}"
    assert "permission denied" in shown and diag.message_detail is None
    assert one(dsn, "select count(*) from cerebro.models where name = 'rls_net'") == 0


def launch_own_grid(driver: Any, dsn: str) -> list[int]:
    """Panel B as ROLE: its own data preselected; the workload is ROLE's; its config ids."""
    type_into(driver, "launch-name", "mine-grid")
    type_into(driver, "launch-epochs", "3")
    type_into(driver, "launch-space", json.dumps(SPACE))
    by_id(driver, "launch-button").click()
    message(driver, "launch-message", "launched workload 'mine-grid'")
    rows = fetch_all(
        dsn,
        "select c.config_id from cerebro.configs c join cerebro.workloads w using (workload_id) "
        "join cerebro.datasets d on d.dataset_id = w.train_dataset "
        "where w.name = 'mine-grid' and w.owner = %s and d.name = 'mine_tr' order by 1",
        [ROLE],
    )
    assert len(rows) == 2
    return [r[0] for r in rows]


@pytest.mark.slow
def test_a_plain_user_sees_only_its_own_and_its_clicks_are_audited(
    browser: Any, server_dsn: str, tmp_path: Path
):
    """`cerebro ui --dsn 'user=<a cerebro_user>'`: the page is that role's view of a shared
    database (another tenant's and the superuser's workloads and datasets stay hidden), the
    custom-model upload gets the server's own permission error, and a stop is recorded as
    human:<role>."""
    driver = browser
    dsn = make_db(server_dsn, "cerebro_test_ui_rls")
    try:
        two_tenants(dsn)
        a_plain_users_page(driver, dsn, tmp_path)
    finally:
        drop_roles(dsn)


def a_plain_users_page(driver: Any, dsn: str, tmp_path: Path) -> None:
    """The browser part of the test above (ROLE's page, each claim checked in the catalog)."""
    assert fetch_all(
        dsn,
        "select rolsuper, rolbypassrls, pg_has_role(oid, 'cerebro_admin', 'member'), "
        "pg_has_role(oid, 'cerebro_user', 'member') from pg_roles where rolname = %s",
        [ROLE],
    ) == [(False, False, False, True)]
    others = [r[0] for r in fetch_all(dsn, "select config_id from cerebro.configs")]
    assert len(others) == 4  # admin-grid's and other-grid's, all visible to the superuser
    assert one(
        dsn,
        "select count(*) from cerebro.events e join cerebro.workloads w using (workload_id) "
        "where w.name = 'other-grid' and e.actor = %s",
        [f"human:{OTHER}"],
    )  # the other tenant's launch is in the feed's table: hiding it is RLS, not emptiness
    with serving_ui(as_role(dsn, ROLE)) as url:
        driver.get(url)
        assert by_id(driver, "whoami").text == f"human:{ROLE}"
        until(driver, lambda d: by_id(d, "launch-train").text.startswith("mine_tr"))
        assert [o.split()[0] for o in dropdown_options(driver, "launch-train")] == [
            "mine_tr",
            "mine_va",
        ]  # not 'tr'/'va' (the superuser's) nor 'other_tr'/'other_va'
        upload_is_refused_as_psql_refuses_it(driver, dsn, tmp_path)
        mine = launch_own_grid(driver, dsn)
        until(driver, lambda d: shown_config_ids(d) == set(mine))
        assert [o.split()[0] for o in dropdown_options(driver, "workload-select")] == [
            "mine-grid"
        ]  # so no config of another tenant can even be selected to steer
        select_config(driver, mine[0])
        by_id(driver, "stop-button").click()
        message(driver, "configs-message", f"config {mine[0]}: stop requested")
        wait_for(
            dsn,
            "select count(*) from cerebro.events where config_id = %s and action = 'stop' "
            "and actor = %s",
            lambda n: n == 1,
            timeout=10,
            params=[mine[0], f"human:{ROLE}"],
        )
        feed = until(driver, lambda d: "stop" in (t := by_id(d, "events-table").text) and t)
        assert "mine-grid" in feed and f"human:{ROLE}" in feed
        assert "other-grid" not in feed and "admin-grid" not in feed
        assert f"human:{OTHER}" not in feed
        assert shown_config_ids(driver).isdisjoint(set(others))


# -- without a browser or server -------------------------------------------------------------


def test_only_loopback_addresses_count_as_local():
    from cerebro.ui import is_loopback

    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.5", "example.org"]))


def test_roster_space_is_prefilled_from_the_parameter_list():
    from cerebro.ui.figures import space_template
    from cerebro_udfs.roster import PARAMS

    space = json.loads(space_template(PARAMS["mlp"]))
    # every parameter with a default, at its default; no null-default one (weights)
    assert set(space) == {k for k, v in PARAMS["mlp"].items() if v["default"] is not None}
    assert space["hidden"] == [64] and space["batch_size"] == 64
    assert space["learning_rate"] == {"choice": [0.001, 0.01]}  # a grid of two, as is


def test_the_params_column_shows_what_tells_configs_apart():
    from cerebro.ui.figures import config_rows

    base = {
        "workload": "w",
        "rank": 1,
        "status": "active",
        "epochs": 1,
        "max_epochs": 4,
        "best_objective": 0.5,
        "last_objective": 0.5,
        "source": "automl",
        "parent_config": None,
    }
    rows = config_rows(
        [
            {**base, "config_id": 1, "params": {"hidden": [8], "learning_rate": 0.01}},
            {**base, "config_id": 2, "params": {"hidden": [8], "learning_rate": 0.003}},
        ]
    )
    assert [r["params"] for r in rows] == ["learning_rate=0.01", "learning_rate=0.003"]
    assert [r["id"] for r in rows] == [1, 2]  # selection keys are config ids
    assert json.loads(rows[0]["all_params"]) == {"hidden": [8], "learning_rate": 0.01}


def test_a_clones_inherited_epochs_are_dotted_not_hiding_its_parent():
    from datetime import UTC, datetime

    from cerebro.catalog import Point
    from cerebro.ui.figures import curves_figure

    at = datetime(2025, 1, 1, tzinfo=UTC)
    parent = [Point("w", 1, e, "valid_loss", v, 1, at) for e, v in ((1, 0.5), (2, 0.4))]
    # the clone (config 4, cloned at epoch 2) shows its parent's epochs, then its own
    clone = [Point("w", 4, p.epoch, p.metric, p.value, 1, at) for p in parent]
    clone.append(Point("w", 4, 3, "valid_loss", 0.3, 4, at))
    fig = curves_figure(parent + clone, "w", "valid_loss")
    lines = [(t.name, list(t.x), t.line.dash) for t in fig.data]
    assert lines == [
        ("config 1", [1, 2], None),
        ("config 4", [1, 2, 3], "dot"),  # inherited, joined to its first own epoch
        ("config 4", [3], None),
    ]
    assert fig.data[1].line.color == fig.data[2].line.color != fig.data[0].line.color


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_a_non_loopback_address_is_warned_about_before_anything_starts(host, warned):
    from click.testing import CliRunner

    from cerebro.ui import command

    # the connection is refused here (no server for this test): the warning comes first
    result = CliRunner().invoke(command, ["--dsn", "dbname=none", "--host", host])
    assert result.exit_code != 0
    assert ("anyone who can reach this port acts as the DSN's database role" in result.output) == (
        warned
    )
