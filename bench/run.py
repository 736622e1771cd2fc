"""Run every benchmark and print a summary table (``make bench``).

P1 and P6 connect to CEREBRO_DSN if set, else to the embedded default cluster; P2, P4, P5
and P7 create (and drop) databases of their own on the embedded default and run their own
scheduler daemon. Ratios are measured side by side in the same run; a missed target is
reported, not an error. Only one benchmark runs at a time: the machine must be quiet.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
import _workload
import p1_training
import p2_mop
import p4_overhead
import p5_steering
import p6_load
import p7_optuna
import p8_scheduler_hop
import p9_predict
import p11_out_of_core
import r1_recovery
import s1_security


def _figures(r: dict) -> str:
    if r["id"] == "P1":
        return (
            f"in-db {r['in_db_rows_per_s']:.0f} rows/s, plain {r['plain_rows_per_s']:.0f} "
            f"rows/s ({r['rows']} rows, {r['params']} params), median of {r['reps']}"
        )
    if r["id"] == "P6":
        return (
            f"load_dataset {r['load_rows_per_s']:.0f} rows/s, COPY "
            f"{r['copy_rows_per_s']:.0f} rows/s ({r['rows']} rows), median of {r['reps']}"
        )
    if r["id"] == "P2":
        return f"mop {r['mop_rows_per_s']:.0f} rows/s, plain {r['plain_rows_per_s']:.0f} rows/s"
    if r["id"] == "P4":
        h = r["hop"]
        return (
            f"{r['reps']} units; 100 MB state hop under the scheduler: {h['state_mb']:.0f} MB "
            f"in {h['hop_s']:.3f} s ({h['mb_per_s']:.0f} MB/s, {h['store']})"
        )
    if r["id"] == "P5":
        d = ", ".join(f"{k} {a:.3f}/{b:.3f} s" for k, (a, b) in r["delays"].items())
        return f"late units after stop: {r['late_units']}; delay median/max: {d}"
    if r["id"] == "P8":
        return "; ".join(
            f"{m['model']} {m['state_mb']:.0f} MB in {m['hop_s']:.2f} s "
            f"({m['mb_per_s']:.0f} MB/s, {m['store']}), checkpoint +{m['checkpoint_s']:.1f} s"
            for m in r["models"]
        )
    if r["id"] == "P9":
        return (
            f"cerebro.predict {r['rows'] / statistics.median(r['db_s']):.0f} rows/s, "
            f"client {r['rows'] / statistics.median(r['client_s']):.0f} rows/s; "
            f"max |Δp| {r['max_diff']:.1e}"
        )
    if r["id"] == "S1":
        return (
            "; ".join(f"{k} {a:.1f}/{b:.1f} ms" for k, (a, b) in r["medians_ms"].items())
            + f" (alice/superuser, {r['configs']} configs x {r['epochs']} epochs)"
        )
    if r["id"] == "R1":
        return f"cold start {r['cold_start_s']:.1f} s; " + ", ".join(
            f"{k} {v:.1f} s" for k, v in r["recoveries"].items()
        )
    if r["id"] == "P7":
        return "; ".join(
            f"{s['configs']}x{s['epochs']}: {s['ratio']:.2f} (cerebro {s['cerebro_seconds']:.1f}"
            f" s, optuna {s['optuna_seconds']:.1f} s; CPU s ratio {s['cpu_ratio']:.2f})"
            for s in r["shapes"]
        )
    if r["id"] == "P11":
        return (
            f"{r['buffer_mb']:.0f} MB of buffers; sub-epoch in-memory "
            f"{r['memory']['wall']:.2f} s, out-of-core {r['disk']['wall']:.2f} s (cost "
            f"{r['cost']:.2f}x, {r['extra_s'] * 1000:+.0f} ms outside fit); reading "
            f"{r['disk']['mb_per_s']:.0f} MB/s "
            f"vs seq scan {r['scan_mb_per_s']:.0f} MB/s, COPY out {r['copy_mb_per_s']:.0f} MB/s"
        )
    return ""


def main() -> None:
    dsn = _common.dsn()
    server = _workload.server_dsn()
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(f"cerebro benchmarks against: {dsn}")
    t0 = time.perf_counter()
    results = []
    benches = (
        ("P1", lambda: p1_training.run(dsn)),
        ("P6", lambda: p6_load.run(dsn)),
        ("P2", lambda: p2_mop.run(server)),
        ("P4", lambda: p4_overhead.run(server)),
        ("P5", lambda: p5_steering.run(server)),
        ("P7", lambda: p7_optuna.run(server, reps=3)),  # its 4 x 2 shape is short: medians of 3
        ("P8", lambda: p8_scheduler_hop.run(server)),
        ("P9", lambda: p9_predict.run(server)),
        ("P11", lambda: p11_out_of_core.run(server)),
        ("S1", lambda: s1_security.run(server)),
        ("R1", lambda: r1_recovery.run(server)),
    )
    only = set(sys.argv[1:])
    for name, bench in benches:
        if only and name not in only:
            continue
        console.rule(name)
        try:
            results.append(bench())
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            console.print(f"[red]{name} failed: {type(e).__name__}: {e}[/red]")
            results.append({"id": name, "what": "(failed)", "ratio": None, "target": None})

    table = Table(title=f"cerebro benchmarks ({time.perf_counter() - t0:.0f} s)")
    for col in ("id", "what", "measured", "target", "met", "figures"):
        table.add_column(col)
    for r in results:
        if r["ratio"] is None:
            table.add_row(r["id"], r["what"], "-", "-", "[red]error[/red]", "")
            continue
        low = r.get("lower_is_better", False)
        met = r["ratio"] <= r["target"] if low else r["ratio"] >= r["target"]
        if r["id"] == "P5":
            met = met and r["late_units"] == 0
        table.add_row(
            r["id"],
            r["what"],
            f"{r['ratio']:.2f}",
            f"{'≤' if low else '≥'} {r['target']:.2f}",
            "[green]yes[/green]" if met else "[yellow]no[/yellow]",
            _figures(r),
        )
    console.print(table)
    for r in results:
        if r.get("interference"):
            console.print(f"{r['id']}: {r['interference']}")


if __name__ == "__main__":
    main()
