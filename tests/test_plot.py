"""``cerebro plot``: learning curves and parallel coordinates as report-ready images.

The pure tests build figures from synthetic rows (no server) and count what was drawn from
the figure's artists. The server tests run a real workload (4 configs x 2 epochs, one
stopped by a person after its max_epochs was raised, one cloned with a new learning rate and
trained on), run the command as a subprocess and check the PNG: its pixel size, the metadata
the command writes (counted from the artists), and the line colours really present in the
plot area of the image, so a figure that lost its lines fails even if its legend survived.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib
import pytest
from click.testing import CliRunner
from PIL import Image

from cerebro import catalog, plot, plot_curves, plot_parallel
from cerebro.catalog import Point
from cerebro.params_text import summarise, varying_keys
from helpers import ROOT, launch, make_db, run_to_end

matplotlib.use("Agg")

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SPACE = {
    "hidden": {"choice": [[8], [16], [32, 16]]},
    "learning_rate": {"loguniform": [1e-4, 1e-1]},
    "batch_size": 32,
}


def _cfg(cid: int, rank: int | None, status: str, lr: float, hidden: list[int], **kw: Any):
    best = kw.pop("best", None if rank is None else 0.1 * rank)
    return {
        "config_id": cid,
        "rank": rank,
        "status": status,
        "params": {"hidden": hidden, "learning_rate": lr, "batch_size": 32},
        "parent_config": kw.pop("parent", None),
        "clone_epoch": kw.pop("clone_epoch", None),
        "best_objective": best,
        **kw,
    }


# rank order, like catalog.configs: #5 is a clone of #1 at epoch 2; #4 never got an objective
CONFIGS = [
    _cfg(5, 1, "active", 0.03, [16], parent=1, clone_epoch=2),
    _cfg(1, 2, "completed", 0.01, [16]),
    _cfg(2, 3, "stopped", 0.001, [8]),
    _cfg(3, 4, "failed", 0.0001, [32, 16]),
    _cfg(4, None, "failed", 0.05, [8]),
]


def _points() -> list[Point]:
    """#1 three epochs, #2 two (then stopped), #3 one (then failed), #4 none, #5 inherits
    #1's epochs 1-2 and trains epoch 3 later."""
    out = []
    own = {1: 3, 2: 2, 3: 1}
    for cid, n in own.items():
        for e in range(1, n + 1):
            at = T0 + timedelta(minutes=e * 2 + cid * 0.1)
            out.append(Point("w", cid, e, "valid_loss", 1.0 / (e + cid), cid, at))
    for e in (1, 2):  # the clone's inherited history, with the parent's timestamps
        at = T0 + timedelta(minutes=e * 2 + 0.1)
        out.append(Point("w", 5, e, "valid_loss", 1.0 / (e + 1), 1, at))
    out.append(Point("w", 5, 3, "valid_loss", 0.2, 5, T0 + timedelta(minutes=9)))
    return out


EVENTS = [
    {"event_id": 10, "at": T0 + timedelta(minutes=5), "actor": "human:alice", "workload": "w",
     "config_id": 2, "action": "stop", "detail": {"epoch": 2}},
    {"event_id": 11, "at": T0 + timedelta(minutes=7), "actor": "human:bob", "workload": "w",
     "config_id": 5, "action": "clone", "detail": {"parent_config": 1}},
    {"event_id": 12, "at": T0 + timedelta(minutes=6), "actor": "system", "workload": "w",
     "config_id": 1, "action": "completed", "detail": {}},
    {"event_id": 13, "at": T0 + timedelta(minutes=6), "actor": "human:alice", "workload": "w",
     "config_id": None, "action": "pause", "detail": {}},
]  # fmt: skip


def _curves(top: int | None = None) -> plot_curves.Curves:
    return plot_curves.Curves("w", "valid_loss", "min", CONFIGS, _points(), EVENTS, top)


# -- pure: the figures from rows --------------------------------------------------------------


def test_one_line_per_config_with_points_and_status_markers_where_they_ended():
    fig = plot_curves.curves_figure(_curves())
    d = plot.drawn(fig)
    assert d["configs"] == [1, 2, 3, 5]  # #4 has no epoch: nothing to draw
    assert d["status"] == {"active": [5], "completed": [1], "failed": [3], "stopped": [2]}
    assert d["clones"] == [5]
    by_epoch = fig.axes[0]
    lines = {ln.get_gid(): ln for ln in by_epoch.lines if ln.get_gid()}
    assert list(lines["status:stopped:2"].get_xdata()) == [2]  # at #2's last epoch
    assert lines["status:stopped:2"].get_marker() == "s"
    assert lines["status:failed:3"].get_marker() == "X"
    # the clone continues its parent: inherited epochs dashed with #1's values, own solid
    inherited = lines["inherited:5"]
    assert inherited.get_linestyle() == "--"
    assert list(inherited.get_xdata()) == [1, 2]
    assert list(inherited.get_ydata()) == list(lines["config:1"].get_ydata())[:2]
    assert list(lines["config:5"].get_xdata()) == [2, 3]  # starts at the clone point
    assert list(lines["clonepoint:5"].get_xdata()) == [2]


def test_only_the_humans_events_on_this_workloads_drawn_configs_are_marked_and_listed():
    fig = plot_curves.curves_figure(_curves())
    assert plot.drawn(fig)["events"] == [10, 11, 13]  # not the system's #12
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "stop #2 by human:alice" in texts
    assert "clone #5 (of #1) by human:bob" in texts
    assert "completed #1" not in texts
    by_time = fig.axes[1]
    assert "time" in by_time.get_xlabel() and "UTC" in by_time.get_xlabel()
    # the time panel's lines are the configs' own epochs, at the times they committed
    own5 = next(ln for ln in by_time.lines if ln.get_gid() == "time:5")
    assert len(own5.get_xdata()) == 1


def test_top_k_draws_the_k_best_ranked_and_says_so_in_the_title():
    fig = plot_curves.curves_figure(_curves(top=2))
    assert plot.drawn(fig)["configs"] == [1, 5]
    assert "top 2 of 5 configs" in " ".join(t.get_text() for t in fig.texts)
    assert "lower is better" in fig.get_suptitle()
    # the clone event is about a drawn config; the stop of #2 is not drawn any more
    assert plot.drawn(fig)["events"] == [11, 13]


def test_the_legend_names_each_config_with_its_id_and_the_params_that_differ():
    fig = plot_curves.curves_figure(_curves())
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    first = next(lab for lab in labels if lab.startswith("#5 "))
    assert "hidden=[16]" in first and "lr=0.03" in first and "clone of #1" in first
    assert "bs=" not in first  # batch_size is the same for all: not worth a label
    assert any(lab.startswith("#2 ") and "stopped" in lab for lab in labels)
    assert "stopped (by a person)" in labels and "failed" in labels


def test_the_legend_summarises_params_like_cerebro_top_within_its_width():
    """The legend and the tables share one summariser (params_text): same text for the same
    params, so they cannot drift apart; a long value is shortened, never wider than 34."""
    wide = [
        dict(
            c,
            params={
                **c["params"],
                "warmup_steps_ratio": 0.123456789 * c["config_id"],
                "optimizer": "adam_with_decoupled_weight_decay",
            },
        )
        for c in CONFIGS
    ]
    fig = plot_curves.curves_figure(plot_curves.Curves("w", "valid_loss", "min", wide, _points()))
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    heads = {lab.split(" ")[0]: lab.split("\n")[0] for lab in labels if lab.startswith("#")}
    keys = varying_keys(c["params"] for c in wide)
    assert keys == ["hidden", "learning_rate", "warmup_steps_ratio"]  # not the optimizer
    for c in wide:
        if f"#{c['config_id']}" in heads:
            want = summarise({k: c["params"][k] for k in keys}, 34, first=keys)
            assert heads[f"#{c['config_id']}"] == f"#{c['config_id']} {want}"
            assert len(want) <= 34
    assert heads["#1"].startswith("#1 hidden=[16] lr=0.01 wsr=0.123")
    assert "opt=" not in " ".join(heads.values())


def test_parallel_coordinates_one_polyline_per_config_one_axis_per_param_and_objective():
    data = plot_parallel.Parallel("w", "valid_loss", "min", SPACE, CONFIGS)
    fig = plot_parallel.parallel_figure(data)
    d = plot.drawn(fig)
    assert d["configs"] == [1, 2, 3, 4, 5]
    assert d["axes"] == ["hidden", "learning_rate", "best valid_loss"]  # batch_size is fixed
    ax = next(a for a in fig.axes if a.get_gid() == "parallel")
    names = [t.get_text() for t in ax.get_xticklabels()]
    assert names[1] == "learning_rate\n(log scale)"  # loguniform in the space
    polylines = {ln.get_gid(): ln for ln in ax.lines if ln.get_gid()}
    assert len(polylines) == 5
    assert all(len(ln.get_xdata()) == 3 for ln in polylines.values())
    # failed / without objective: grey; the best (lowest loss) coloured like the colorbar end
    assert polylines["config:4"].get_color() == "silver"
    assert polylines["config:3"].get_color() == "silver"
    assert polylines["config:5"].get_color() != "silver"
    tick_texts = {t.get_text() for t in ax.texts}
    assert {"[8]", "[16]", "[32,16]"} <= tick_texts  # categories labelled
    assert "none" in tick_texts  # #4 has no objective
    assert len(fig.axes) == 2  # the plot and its colorbar
    assert "lower is better" in fig.axes[1].get_ylabel()


def test_parallel_axes_scale_numbers_log_only_when_the_space_or_the_spread_says_so():
    assert plot_parallel.make_axis("lr", [0.01, 0.003], {"choice": [0.01, 0.003]}).log is False
    assert plot_parallel.make_axis("lr", [0.01, 0.02], {"loguniform": [0.001, 0.1]}).log is True
    assert (
        plot_parallel.make_axis("n", [1, 500], {"randint": [1, 1000]}).log is True
    )  # > 2 decades
    hidden = plot_parallel.make_axis("hidden", [[16], [8]], {"choice": [[8], [16], [4]]})
    assert hidden.cats == ["[8]", "[16]"]  # the space's order, only the values present
    assert hidden.pos([8]) == 0.0 and hidden.pos([16]) == 1.0


def test_a_searched_param_stays_an_axis_when_the_drawn_configs_agree_on_it():
    """--top 1 draws one config: nothing varies among the drawn rows, yet the searched
    params are still the figure's axes (batch_size, fixed in the space, is not)."""
    data = plot_parallel.Parallel("w", "valid_loss", "min", SPACE, CONFIGS, top=1)
    d = plot.drawn(plot_parallel.parallel_figure(data))
    assert d["configs"] == [5]
    assert d["axes"] == ["hidden", "learning_rate", "best valid_loss"]


def test_save_writes_the_stated_pixel_size_and_what_was_drawn_into_the_png(tmp_path):
    out = tmp_path / "c.png"
    summary = plot.save(plot_curves.curves_figure(_curves()), out, 125)
    with Image.open(out) as im:
        assert im.size == (1500, 1000)
        assert json.loads(im.text["cerebro:drawn"]) == summary
        assert "w: valid_loss" in im.text["Title"]


# -- server: a real workload, the command as a person runs it --------------------------------


@pytest.fixture(scope="module")
def steered(server_dsn: str) -> dict[str, Any]:
    """4 configs x 2 epochs trained; then a person raises the worst one's max_epochs and
    stops it, and clones the best with learning_rate 0.03 for one more epoch."""
    dsn = make_db(server_dsn, "plot")
    launch(dsn, "plotw", epochs=2)
    run_to_end(dsn)
    with catalog.connect(dsn) as c:
        ranked = catalog.configs(c, "plotw")
        worst, best = ranked[-1]["config_id"], ranked[0]["config_id"]
        catalog.set_max_epochs(c, worst, 3)
        catalog.stop(c, worst)
        clone = catalog.clone(c, best, {"learning_rate": 0.03}, max_epochs=3)
    run_to_end(dsn)
    with catalog.connect(dsn) as c:
        ranked = catalog.configs(c, "plotw")
        stop_events = [e["event_id"] for e in catalog.events(c, "plotw") if e["action"] == "stop"]
    return {"dsn": dsn, "stopped": worst, "clone": clone, "ranked": ranked, "stops": stop_events}


def _run(dsn: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cerebro.cli", "plot", *args, "--dsn", dsn],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip


def _plot_area_colors(path: Path) -> set[tuple[int, int, int]]:
    """The colours in the plotting panels only (left of the legend): a line missing from
    the plot is missing here even when its legend entry is drawn."""
    with Image.open(path) as im:
        w, h = im.size
        crop = im.convert("RGB").crop((0, 0, int(w * 0.68), h))
        return {c for _, c in crop.getcolors(maxcolors=w * h)}


def _tab10(i: int) -> tuple[int, int, int]:
    r, g, b, _ = matplotlib.colormaps["tab10"](i)
    return round(r * 255), round(g * 255), round(b * 255)


@pytest.mark.slow
def test_plot_command_draws_every_config_marks_the_stop_and_the_clone(steered, tmp_path):
    out = tmp_path / "curves.png"
    r = _run(steered["dsn"], "plotw", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "1500 x 1000 px" in r.stdout and "5 configs" in r.stdout
    with Image.open(out) as im:
        assert im.size[0] >= 1200
        drawn = json.loads(im.text["cerebro:drawn"])
    ids = sorted(c["config_id"] for c in steered["ranked"])
    assert len(ids) == 5 and drawn["configs"] == ids
    assert drawn["status"]["stopped"] == [steered["stopped"]]
    assert drawn["clones"] == [steered["clone"]]
    assert steered["stops"] and set(steered["stops"]) <= set(drawn["events"])
    colors = _plot_area_colors(out)
    assert all(_tab10(i) in colors for i in range(5)), "a config's line is missing"
    assert _tab10(5) not in colors and _tab10(6) not in colors


@pytest.mark.slow
def test_plot_top_2_and_parallel_coordinates(steered, tmp_path):
    top = tmp_path / "top.png"
    r = CliRunner().invoke(plot.command, ["plotw", "-o", str(top), "--top", "2",
                                          "--dsn", steered["dsn"]])  # fmt: skip
    assert r.exit_code == 0, r.output
    with Image.open(top) as im:
        drawn = json.loads(im.text["cerebro:drawn"])
    assert drawn["configs"] == sorted(c["config_id"] for c in steered["ranked"][:2])
    colors = _plot_area_colors(top)
    assert _tab10(0) in colors and _tab10(1) in colors
    assert not {_tab10(2), _tab10(3), _tab10(4)} & colors
    par = tmp_path / "params.png"
    r2 = _run(steered["dsn"], "plotw", "--parallel-coordinates", "-o", str(par))
    assert r2.returncode == 0, r2.stderr
    with Image.open(par) as im:
        assert im.size[0] >= 1200
        drawn = json.loads(im.text["cerebro:drawn"])
    assert len(drawn["configs"]) == 5
    assert drawn["axes"] == ["hidden", "learning_rate", "best valid_loss"]


@pytest.mark.slow
def test_unknown_workload_or_metric_fails_clearly_and_writes_nothing(steered, tmp_path):
    out = tmp_path / "x.png"
    runner = CliRunner()
    r = runner.invoke(plot.command, ["nope", "-o", str(out), "--dsn", steered["dsn"]])
    assert r.exit_code != 0
    assert "no workload named 'nope'" in r.output
    r = runner.invoke(plot.command, ["plotw", "-o", str(out), "--metric", "valid_f9",
                                     "--dsn", steered["dsn"]])  # fmt: skip
    assert r.exit_code != 0
    assert "no points for metric 'valid_f9'" in r.output
    assert "train_loss" in r.output and "valid_loss" in r.output  # the metrics that exist
    assert not out.exists()
