"""``cerebro tensorboard``: the event files hold exactly cerebro.metrics (read back with
tensorboard's own readers), clones continue their parent's curve, nothing is written twice,
the files follow a running search through LISTEN, and the TensorBoard server serves them and
goes away with the command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import types
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import ROOT, fetch_all, launch, make_db, scheduler, wait_all_completed, wait_for

CLONE_LR = 0.0007
TWO = {"hidden": {"choice": [[8]]}, "learning_rate": {"choice": [0.01, 0.003]}}

Scalars = dict[str, dict[str, dict[int, tuple[float, float]]]]  # run -> tag -> step -> (v, t)


# -- what the catalog says --------------------------------------------------------------------


def expected_scalars(dsn: str, workload: str | None = None) -> Scalars:
    """run -> tag -> step -> (float32 value, wall time), built from cerebro.metrics and the
    lineage columns directly (not from the view the command reads): a clone holds its
    ancestors' rows up to its clone epoch (the tightest one along the chain), then its own."""
    configs = {
        cid: (name, parent, upto)
        for cid, name, parent, upto in fetch_all(
            dsn,
            "select c.config_id, w.name, c.parent_config, c.clone_epoch "
            "from cerebro.configs c join cerebro.workloads w using (workload_id)",
        )
    }
    rows: dict[int, list[tuple]] = defaultdict(list)
    for cid, *rest in fetch_all(
        dsn,
        "select config_id, epoch, train_loss, train_metrics, valid_loss, valid_metrics, "
        "extract(epoch from created_at)::float8 from cerebro.metrics",
    ):
        rows[cid].append(tuple(rest))
    out: Scalars = {}
    for cid, (name, _, _) in configs.items():
        if workload is not None and name != workload:
            continue
        run = out.setdefault(f"{name}/{cid}", {})
        source, limit = cid, None
        while source is not None:
            for epoch, tl, tm, vl, vm, at in rows[source]:
                if limit is None or epoch <= limit:
                    for tag, value in _metric_values(tl, tm, vl, vm):
                        run.setdefault(tag, {})[epoch] = (float(np.float32(value)), at)
            _, parent, upto = configs[source]
            if parent is None:
                break
            limit = upto if limit is None else min(limit, upto)
            source = parent
    return out


def _metric_values(tl: Any, tm: dict, vl: Any, vm: dict) -> list[tuple[str, float]]:
    values = [("train_loss", tl), ("valid_loss", vl)]
    values += [(f"train_{k}", v) for k, v in tm.items()]
    values += [(f"valid_{k}", v) for k, v in vm.items()]
    return [(tag, float(v)) for tag, v in values if v is not None]


# -- what TensorBoard reads -------------------------------------------------------------------

# Read as the served TensorBoard reads (cerebro starts it without TensorFlow, see
# board.TENSORBOARD_MAIN): tensorboard's readers would otherwise import TensorFlow (20 s on a
# loaded box) just to open local files. Only tensorboard's own compat layer looks at this.
sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


def run_dirs(logdir: Path) -> dict[str, Path]:
    """Every directory holding event files, by run name (its path under logdir)."""
    return {
        p.parent.relative_to(logdir).as_posix(): p.parent
        for p in logdir.rglob("events.out.tfevents.*")
    }


def read_scalars(logdir: Path) -> Scalars:
    """The scalars as TensorBoard's EventAccumulator loads them (every point kept)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: Scalars = {}
    for run, d in run_dirs(logdir).items():
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        out[run] = {
            tag: {e.step: (e.value, e.wall_time) for e in acc.Scalars(tag)}
            for tag in acc.Tags()["scalars"]
        }
    return out


def nonempty(scalars: Scalars) -> Scalars:
    """The runs that hold scalars (a run of an untrained config holds only its params)."""
    return {run: tags for run, tags in scalars.items() if tags}


def raw_steps(logdir: Path) -> Counter:
    """(run, tag, step) -> how many times it is in the files, read raw (no deduplicating
    reservoir in between), so a step written twice shows up as 2."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    seen: Counter = Counter()
    for run, d in run_dirs(logdir).items():
        for f in d.glob("events.out.tfevents.*"):
            for event in LegacyEventFileLoader(str(f)).Load():
                for v in event.summary.value:
                    seen[(run, v.tag, event.step)] += 1
    return seen


def assert_same(got: Scalars, want: Scalars) -> None:
    """Same runs, tags, steps and float32 values; wall times are the rows' created_at."""
    assert sum(len(steps) for tags in want.values() for steps in tags.values()) >= 8
    assert {r: {t: sorted(s) for t, s in tags.items()} for r, tags in got.items() if tags} == {
        r: {t: sorted(s) for t, s in tags.items()} for r, tags in want.items() if tags
    }
    for run, tags in want.items():
        for tag, steps in tags.items():
            for step, (value, at) in steps.items():
                v, t = got[run][tag][step]
                assert v == value, (run, tag, step)
                assert abs(t - at) < 1e-3, (run, tag, step)


def tensorboard(dsn: str, logdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cerebro.cli", "tensorboard", "--dsn", dsn, "--logdir",
         str(logdir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )  # fmt: skip


def once(dsn: str, logdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cerebro.cli", "tensorboard", "--once", "--dsn", dsn,
         "--logdir", str(logdir), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )  # fmt: skip


class Lines:
    """A subprocess's output lines, collected by a thread (reads never block the test)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        stdout = proc.stdout
        self.thread = threading.Thread(target=lambda: self.lines.extend(stdout), daemon=True)
        self.thread.start()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            time.sleep(0.1)  # polls the collected state, not a guess at a delay
        raise AssertionError(f"no {pattern!r} in {self.lines}")


def wait_until(check: Any, timeout: float, what: str) -> Any:
    """Poll ``check()`` until it returns something truthy (state-based)."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


# -- the tests --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def search(server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One training session for the module: a follower (``--no-server``, polling effectively
    off) starts first; then workload 'tb' (4 configs x 2 epochs) trains under the scheduler
    daemon, config A is cloned at epoch 2 with a new learning rate and trained to epoch 3, and
    workload 'idle' is launched but never trained."""
    from cerebro import catalog

    dsn = make_db(server_dsn, "cerebro_test_tensorboard")
    live = tmp_path_factory.mktemp("live")
    follower = tensorboard(dsn, live, "--no-server", "--poll", "600")
    daemon = None
    try:
        out = Lines(follower)
        out.wait_for("watching for new epochs", 60)
        launch(dsn, "tb", epochs=2)
        daemon = scheduler(dsn)
        wait_all_completed(dsn, timeout=240)
        with catalog.connect(dsn) as c:
            parent = min(r["config_id"] for r in catalog.configs(c, "tb"))
            clone = catalog.clone(c, parent, {"learning_rate": CLONE_LR}, max_epochs=3)
        wait_for(dsn, "select status from cerebro.configs where config_id = %s",
                 lambda s: s == "completed", 240, params=[clone])  # fmt: skip
        stop(daemon)
        launch(dsn, "idle", space=TWO, epochs=1)
        yield {"dsn": dsn, "parent": parent, "clone": clone, "live": live,
               "follower": follower, "out": out}  # fmt: skip
    finally:
        for p in (daemon, follower):
            if p is not None:
                stop(p)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)


def scalar_count(steps: Counter) -> int:
    return sum(n for (_, _, step), n in steps.items() if step >= 1)


@pytest.mark.slow  # the module's search trains through the scheduler daemon
def test_follows_the_search_live(search: dict[str, Any]) -> None:
    """Only LISTEN could have brought the epochs in (the follower polls every 600 s): every
    epoch of cerebro.metrics, the clone's inherited history included, each step once."""
    want = expected_scalars(search["dsn"])
    live = search["live"]
    wait_until(
        lambda: nonempty(read_scalars(live)) == nonempty(want), 30, "the live files to catch up"
    )
    steps = raw_steps(live)
    assert set(steps.values()) == {1}
    lines = search["out"].lines
    written = [int(n) for line in lines for n in re.findall(r"wrote (\d+) p", line) if n != "0"]
    # the files grew in several syncs (epoch 1s, epoch 2s and the clone's epoch 3 commit
    # seconds apart), each point sent once
    assert len(written) >= 3 and sum(written) == scalar_count(steps) >= 8
    stop(search["follower"])
    assert search["follower"].returncode == 0


@pytest.mark.slow  # the module's search trains through the scheduler daemon
def test_event_files_hold_exactly_the_metrics(search: dict[str, Any], tmp_path: Path) -> None:
    dsn, parent, clone = search["dsn"], search["parent"], search["clone"]
    done = once(dsn, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    want = expected_scalars(dsn)
    got = read_scalars(tmp_path)
    assert_same(got, want)

    # the clone's run: its parent's epochs 1-2 (same values, same times), then its own 3
    assert sorted(got[f"tb/{clone}"]["valid_loss"]) == [1, 2, 3]
    assert sorted(got[f"tb/{parent}"]["valid_loss"]) == [1, 2]
    for epoch in (1, 2):
        assert got[f"tb/{clone}"]["valid_loss"][epoch] == got[f"tb/{parent}"]["valid_loss"][epoch]

    # every config of both workloads has a run (the idle ones: params only), one file each
    configs = fetch_all(
        dsn,
        "select w.name || '/' || c.config_id, c.params from cerebro.configs c "
        "join cerebro.workloads w using (workload_id)",
    )
    assert set(run_dirs(tmp_path)) == {run for run, _ in configs} and len(configs) == 7
    for run, params in configs:
        assert_params(tmp_path / run, run, params)
    assert dict(configs)[f"tb/{clone}"]["learning_rate"] == CLONE_LR

    # a second run over the same logdir rewrites: no step twice, one file per run
    counts = raw_steps(tmp_path)
    again = once(dsn, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_same(read_scalars(tmp_path), want)
    assert raw_steps(tmp_path) == counts and set(counts.values()) == {1}
    assert all(len(list(d.glob("events.*"))) == 1 for d in run_dirs(tmp_path).values())


def assert_params(directory: Path, run: str, params: dict[str, Any]) -> None:
    """The params are the run's hparams (session start info) and its 'params' text."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata as hp_metadata

    acc = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    acc.Reload()
    content = acc.PluginTagToContent("hparams")[hp_metadata.SESSION_START_INFO_TAG]
    info = hp_metadata.parse_session_start_info_plugin_data(content)
    assert info.group_name == run
    got = {}
    for name, value in info.hparams.items():
        kind = value.WhichOneof("kind")
        got[name] = getattr(value, kind)
    assert got == {
        k: v if isinstance(v, (int, float, str)) else json.dumps(v) for k, v in params.items()
    }
    [text] = acc.Tensors("params")
    markdown = text.tensor_proto.string_val[0].decode()
    for k, v in params.items():
        assert f"| {k} | {json.dumps(v)} |" in markdown


@pytest.mark.slow  # the module's search trains through the scheduler daemon
def test_unknown_workload_is_named(search: dict[str, Any], tmp_path: Path) -> None:
    done = once(search["dsn"], tmp_path, "--workload", "no_such_workload")
    assert done.returncode != 0
    assert "no_such_workload" in done.stderr
    assert run_dirs(tmp_path) == {}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


@pytest.mark.slow  # the module's search trains through the scheduler daemon
def test_serves_tensorboard_and_stops_it(search: dict[str, Any], tmp_path: Path) -> None:
    dsn, clone = search["dsn"], search["clone"]
    port = free_port()
    proc = tensorboard(dsn, tmp_path, "--port", str(port), "--workload", "tb")
    try:
        out = Lines(proc)
        url = f"http://127.0.0.1:{port}"
        pid = int(out.wait_for(rf"TensorBoard: {url}/ \(pid (\d+)", 90).group(1))
        want = expected_scalars(dsn, "tb")
        runs = wait_until(
            lambda: set(get_json(f"{url}/data/runs")) == set(want), 60, "TensorBoard's runs"
        )
        assert runs and len(want) == 5  # 4 configs and the clone; not the idle workload
        query = urllib.parse.urlencode({"run": f"tb/{clone}", "tag": "valid_loss"})
        points = get_json(f"{url}/data/plugin/scalars/scalars?{query}")
        assert [(step, value) for _, step, value in points] == [
            (step, value) for step, (value, _) in sorted(want[f"tb/{clone}"]["valid_loss"].items())
        ]
        # the HParams dashboard: the clone's new learning rate, its last valid_loss (epoch 3)
        group = session_group(url, f"tb/{clone}")
        assert group["hparams"]["learning_rate"] == CLONE_LR
        [last] = [m for m in group["metricValues"] if m["name"]["tag"] == "valid_loss"]
        assert (last["trainingStep"], last["value"]) == (
            3,
            want[f"tb/{clone}"]["valid_loss"][3][0],
        )
    finally:
        stop(proc)
    assert proc.returncode == 0
    wait_until(lambda: not _alive(pid), 10, f"TensorBoard (pid {pid}) to exit")


def session_group(url: str, name: str) -> dict[str, Any]:
    """One session group as the HParams dashboard asks for it (a POST, XSRF header)."""
    body = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_RUNNING"],
        "colParams": [],
        "startIndex": 0,
        "sliceSize": 100,
    }
    request = urllib.request.Request(
        f"{url}/data/plugin/hparams/session_groups",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        groups = json.load(r)["sessionGroups"]
    [group] = [g for g in groups if g["name"] == name]
    return dict(group)


def _alive(pid: int) -> bool:
    """A process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_run_names_stay_inside_the_logdir() -> None:
    """Workload names are free text: one that could climb out of the logdir, or hide, is
    percent-encoded; ordinary names are the run names as they are."""
    from cerebro.board import hparam_value, run_dir_name

    assert [run_dir_name(n) for n in ["tb", "x.y-z_1", "a/b", "..", ".x", "my wl"]] == [
        "tb", "x.y-z_1", "a%2Fb", "%2E%2E", "%2Ex", "my%20wl"
    ]  # fmt: skip
    assert [hparam_value(v) for v in [3, 0.5, True, "adam", [16, 8], None, {"b": 1}]] == [
        3, 0.5, True, "adam", "[16, 8]", "null", '{"b": 1}'
    ]  # fmt: skip
