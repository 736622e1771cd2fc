"""``cerebro tensorboard``: the learning curves as live TensorBoard runs.

The person in the loop decides from learning curves, and TensorBoard is where many of them
already look. So the catalog (``catalog.curves``: one point per config, epoch and metric; a
clone's rows include its ancestors' epochs up to the clone point) is written as TensorBoard
event files: one run per config in ``<logdir>/<workload>/<config_id>`` (so the run is named
``<workload>/<config_id>``), one scalar tag per metric (``train_loss``, ``valid_loss``,
``train_<m>``, ``valid_<m>``) with step = epoch and wall time = when the epoch committed, and
the config's params as a text summary (``params``) and as hparams (the HParams dashboard's
session start info) at step 0. A clone's run therefore continues its parent's curve.

The files are kept up to date while the command runs: it LISTENs on ``cerebro_metrics`` (an
epoch committed) and ``cerebro_events`` (e.g. a clone appeared), polls as a fallback, and
appends only the epochs after the last one it wrote to each run, so no step is ever written
twice. Each run's event file is rewritten from scratch the first time this process touches the
run, which is what keeps a restarted command from duplicating steps too.

The writer is the ``tensorboard`` package's own ``RecordWriter`` (the TFRecord framing that
``EventFileWriter`` uses) over a file opened for each append: ``EventFileWriter`` keeps a
thread and an open file per run, too much for a search of a thousand configs that is mostly
idle. TensorFlow is never imported. Everything from ``tensorboard`` is imported inside
functions so ``cerebro --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import psycopg

from . import catalog

DEFAULT_LOGDIR = "cerebro-tensorboard"
DEFAULT_PORT = 6006
EVENT_PREFIX = "events.out.tfevents."
SERVER_START_TIMEOUT = 60.0

# ``python -m tensorboard.main``, minus TensorFlow: TensorBoard imports TensorFlow whenever it is
# installed (it is, for the training), which costs seconds and half a gigabyte for nothing when
# reading local event files; ``tensorboard.compat.notf`` is the switch tensorboard's own builds
# use to take its stub instead. Measured on a loaded 2-CPU box: 6 s to serve instead of 30 s.
TENSORBOARD_MAIN = (
    "import sys, types; "
    "sys.modules['tensorboard.compat.notf'] = types.ModuleType('tensorboard.compat.notf'); "
    "from tensorboard.main import run_main; sys.argv[0] = 'tensorboard'; run_main()"
)


# -- events (pure: rows in, protobufs out) -----------------------------------------------------


def hparam_value(value: Any) -> bool | float | int | str:
    """A param as an hparams value: numbers, booleans and strings as they are; anything else
    (lists such as ``hidden: [16, 8]``, objects, null) as its JSON text, which the HParams
    dashboard can still sort and filter."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def params_markdown(config: dict[str, Any]) -> str:
    """The params as the markdown table the Text dashboard shows, with the lineage line that
    explains why a clone's curve starts with someone else's epochs."""
    params = config.get("params") or {}
    lines = ["| param | value |", "| --- | --- |"]
    lines += [f"| {k} | {json.dumps(params[k], sort_keys=True)} |" for k in sorted(params)]
    if config.get("parent_config") is not None:
        lines.append("")
        lines.append(
            f"clone of config {config['parent_config']} at epoch {config.get('clone_epoch')}"
        )
    return "\n".join(lines)


def header_events(run: str, config: dict[str, Any]) -> list[Any]:
    """The events that open a run: the file version, the hparams session start and the params
    text, at step 0 and the config's creation time."""
    from tensorboard.compat.proto import event_pb2  # type: ignore[import-untyped]
    from tensorboard.plugins.hparams import summary_v2  # type: ignore[import-untyped]

    start = config["created_at"].timestamp() if config.get("created_at") else time.time()
    params = config.get("params") or {}
    hparams = summary_v2.hparams_pb(
        {k: hparam_value(v) for k, v in params.items()}, trial_id=run, start_time_secs=start
    )
    return [
        event_pb2.Event(wall_time=start, file_version="brain.Event:2"),
        event_pb2.Event(wall_time=start, step=0, summary=hparams),
        event_pb2.Event(wall_time=start, step=0, summary=text_summary("params", config)),
    ]


def text_summary(tag: str, config: dict[str, Any]) -> Any:
    """A Text-plugin summary built from protos (the plugin's own ``pb`` needs TensorFlow)."""
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorboard.plugins.text import metadata  # type: ignore[import-untyped]

    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(),
        string_val=[params_markdown(config).encode("utf-8")],
    )
    meta = metadata.create_summary_metadata(display_name=tag, description="the config's params")
    return summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=meta)]
    )


def scalar_events(points: list[catalog.Point]) -> list[Any]:
    """One event per epoch holding every metric of that epoch (values TensorBoard cannot
    store, NULLs, are left out), in epoch order."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    by_epoch: dict[int, list[catalog.Point]] = defaultdict(list)
    for p in points:
        by_epoch[p.epoch].append(p)
    events = []
    for epoch in sorted(by_epoch):
        values = [
            summary_pb2.Summary.Value(tag=p.metric, simple_value=p.value)
            for p in sorted(by_epoch[epoch], key=lambda p: p.metric)
            if p.value is not None
        ]
        wall = max(p.created_at for p in by_epoch[epoch]).timestamp()
        summary = summary_pb2.Summary(value=values)
        events.append(event_pb2.Event(wall_time=wall, step=epoch, summary=summary))
    return events


# -- the event files ---------------------------------------------------------------------------


@dataclass
class Run:
    """One config's run: its event file and the last epoch written to it."""

    name: str
    path: Path
    last_epoch: int = 0


class Board:
    """The event files of the runs this process manages under ``logdir``."""

    def __init__(self, logdir: Path, workload: str | None) -> None:
        self.logdir = logdir
        self.workload = workload
        self.runs: dict[int, Run] = {}

    def sync(self, conn: psycopg.Connection[Any]) -> int:
        """Write what the catalog has and the files do not yet; returns the points written.
        Configs are read after the curves, so every point read belongs to a known config."""
        points = catalog.curves(conn, self.workload)
        configs = catalog.configs(conn, self.workload)
        by_config: dict[int, list[catalog.Point]] = defaultdict(list)
        for p in points:
            by_config[p.config_id].append(p)
        written = 0
        for config in configs:
            run = self.runs.get(config["config_id"]) or self._open(config)
            fresh = [p for p in by_config[config["config_id"]] if p.epoch > run.last_epoch]
            if fresh:
                _append(run.path, scalar_events(fresh))
                run.last_epoch = max(p.epoch for p in fresh)
                written += len(fresh)
        return written

    def _open(self, config: dict[str, Any]) -> Run:
        """Start a run's event file afresh: the old event files of the run (from an earlier
        ``cerebro tensorboard``) are removed, so a step never appears twice."""
        name = f"{run_dir_name(config['workload'])}/{config['config_id']}"
        directory = self.logdir / name
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob(EVENT_PREFIX + "*"):
            old.unlink()
        stamp = f"{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}"
        path = directory / f"{EVENT_PREFIX}{stamp}.{config['config_id']}"
        path.write_bytes(b"")
        _append(path, header_events(name, config))
        run = Run(name, path)
        self.runs[config["config_id"]] = run
        return run


def run_dir_name(workload: str) -> str:
    """The workload's directory name: the name itself, percent-encoded when it could leave
    the logdir or hide (workload names are free text: ``a/b``, ``..``, ``.x``)."""
    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", workload):
        return workload
    return urllib.parse.quote(workload, safe="").replace(".", "%2E")


def _append(path: Path, events: list[Any]) -> None:
    """Append events to an event file with tensorboard's TFRecord writer and close it, so an
    idle run holds no file open."""
    from tensorboard.summary.writer.record_writer import RecordWriter  # type: ignore[import-untyped]

    with open(path, "ab") as f:
        writer = RecordWriter(f)
        for event in events:
            writer.write(event.SerializeToString())
        writer.flush()


# -- the TensorBoard server --------------------------------------------------------------------


def start_server(logdir: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    """TensorBoard on 127.0.0.1 as a child of this Python (its output in ``.tensorboard.log``
    in the logdir, which it ignores); returns it once it answers HTTP
    (ClickException with the end of its log when it exits first, e.g. the port is taken)."""
    log = logdir / ".tensorboard.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", TENSORBOARD_MAIN, "--logdir", str(logdir),
             "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        _wait_answering(proc, port, log)
    except BaseException:  # also Ctrl-C or SIGTERM while it starts: never leave it behind
        stop_server(proc)
        raise
    return proc, log


def _wait_answering(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not _answers(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:]
            raise click.ClickException(f"TensorBoard did not start on port {port}:\n{tail}")
        time.sleep(0.2)  # a server coming up: nothing to wait on but its socket


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/logdir", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Terminate TensorBoard and reap it (killed if it does not go within 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the command -------------------------------------------------------------------------------


def follow(
    listener: psycopg.Connection[Any], conn: psycopg.Connection[Any], board: Board, poll: float
) -> None:
    """Sync after every committed epoch or recorded event (or every ``poll`` seconds), until
    interrupted. One connection listens and another reads, so a notification that arrives
    during a read (or while TensorBoard starts) waits in the listener's socket for the next
    ``wait_news``."""
    while True:
        catalog.wait_news(listener, poll)
        written = board.sync(conn)
        if written:
            _report(board, written)


def _connect(dsn: str) -> psycopg.Connection[Any]:
    """``catalog.connect`` typed for ``catalog``'s readers (declared for tuple rows)."""
    return catalog.connect(dsn)


def _report(board: Board, written: int) -> None:
    click.echo(f"wrote {written} points ({len(board.runs)} runs in {board.logdir})")


def _check_workload(dsn: str, workload: str | None) -> None:
    """Fail early, naming the workload, when it does not exist or is not visible."""
    if workload is None:
        return
    with _connect(dsn) as conn:
        try:
            catalog.workload_id(conn, workload)
        except LookupError as e:
            raise click.ClickException(str(e)) from None


def _terminate_on_sigterm() -> None:
    """SIGTERM (a service manager, a test) unwinds like Ctrl-C, so TensorBoard is stopped."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@click.command()
@click.option("--workload", default=None, help="only this workload (default: every visible one)")
@click.option(
    "--logdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_LOGDIR,
    show_default=True,
    help="where the event files go (relative to the current directory): one run per config "
    "in <logdir>/<workload>/<config_id>",
)
@click.option(
    "--port", type=int, default=DEFAULT_PORT, show_default=True, help="TensorBoard's port"
)
@click.option(
    "--dsn", default=None, help="database (default: CEREBRO_DSN, else the embedded default)"
)
@click.option("--once", is_flag=True, help="write what is there and exit (no server)")
@click.option("--no-server", is_flag=True, help="write and keep syncing, without TensorBoard")
@click.option(
    "--poll",
    type=float,
    default=5.0,
    show_default=True,
    help="seconds between re-reads when no notification arrives (LISTEN wakes it earlier)",
)
def command(
    workload: str | None,
    logdir: Path,
    port: int,
    dsn: str | None,
    once: bool,
    no_server: bool,
    poll: float,
) -> None:
    """Write the learning curves as TensorBoard runs (one per config, named
    <workload>/<config_id>, params as hparams and text; a clone continues its parent's curve),
    keep them updated as epochs commit, and serve them with TensorBoard on 127.0.0.1."""
    dsn = catalog.resolve_dsn(dsn)
    logdir = logdir.resolve()
    try:
        _check_workload(dsn, workload)
        board = Board(logdir, workload)
        if once:
            with _connect(dsn) as conn:
                _report(board, board.sync(conn))
            return
        _serve(dsn, board, port, poll, no_server)
    except psycopg.Error as e:
        raise click.ClickException(str(e)) from None


def _serve(dsn: str, board: Board, port: int, poll: float, no_server: bool) -> None:
    """LISTEN, the first sync, then TensorBoard (unless ``no_server``), then sync until
    interrupted; TensorBoard is stopped however this ends. Listening starts before the first
    read, so an epoch committed in between is not missed."""
    _terminate_on_sigterm()
    board.logdir.mkdir(parents=True, exist_ok=True)
    proc = None
    try:
        with _connect(dsn) as listener, _connect(dsn) as conn:
            catalog.listen(listener, catalog.METRICS_CHANNEL, catalog.EVENTS_CHANNEL)
            _report(board, board.sync(conn))
            if not no_server:
                proc, log = start_server(board.logdir, port)
                click.echo(f"TensorBoard: http://127.0.0.1:{port}/ (pid {proc.pid}, log {log})")
            click.echo("watching for new epochs (Ctrl-C to stop)")
            follow(listener, conn, board, poll)
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        if proc is not None:
            stop_server(proc)
