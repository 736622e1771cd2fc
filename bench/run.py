"""Run every benchmark and print a summary table (``make bench``).

Connects to CEREBRO_DSN if set, else to the embedded default cluster
(``cerebro.cluster.Cluster.default().conninfo()``; start it with ``cerebro up``).
Ratios are measured side by side in the same run; a missed target is reported, not an error.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import p1_training  # noqa: E402
import p6_load  # noqa: E402


def main() -> None:
    dsn = _common.dsn()
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(f"cerebro benchmarks against: {dsn}")
    t0 = time.perf_counter()
    results = []
    for name, bench in (("P1", p1_training.run), ("P6", p6_load.run)):
        console.rule(name)
        try:
            results.append(bench(dsn))
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            console.print(f"[red]{name} failed: {type(e).__name__}: {e}[/red]")
            results.append({"id": name, "what": "(failed)", "ratio": None, "target": None})

    table = Table(title=f"cerebro benchmarks ({time.perf_counter() - t0:.0f} s)")
    for col in ("id", "what", "measured ratio", "target", "met", "figures"):
        table.add_column(col)
    for r in results:
        if r["ratio"] is None:
            table.add_row(r["id"], r["what"], "-", "-", "[red]error[/red]", "")
            continue
        met = r["ratio"] >= r["target"]
        if r["id"] == "P1":
            figures = (f"in-db {r['in_db_rows_per_s']:.0f} rows/s, plain "
                       f"{r['plain_rows_per_s']:.0f} rows/s ({r['rows']} rows, "
                       f"{r['params']} params)")
        else:
            figures = (f"load_dataset {r['load_rows_per_s']:.0f} rows/s, COPY "
                       f"{r['copy_rows_per_s']:.0f} rows/s ({r['rows']} rows)")
        table.add_row(r["id"], r["what"], f"{r['ratio']:.2f}", f"≥ {r['target']:.2f}",
                      "[green]yes[/green]" if met else "[yellow]no[/yellow]",
                      f"{figures}, median of {r['reps']}")
    console.print(table)
    for r in results:
        if r.get("interference"):
            console.print(f"{r['id']}: {r['interference']}")


if __name__ == "__main__":
    main()
