"""`fraud sql`: the analyst's playground. A table for people, CSV or JSON lines for scripts.

Card numbers are shown as stored (predictionResult keeps them in clear, as the old system
did); the demo's summary masks them.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import orjson

from service.settings import Settings


def query_rows(settings: Settings, query: str) -> tuple[list[str], list[list[Any]]]:
    """Run one SQL statement; return column names and rows (empty for DDL/DML)."""
    from enrich.connection import connect
    from enrich.sql_mappings import create_all_mappings

    client = connect(settings, near_cache=False)
    try:
        create_all_mappings(settings, client)
        with client.sql.execute(query).result() as result:
            if not result.is_row_set():
                return [], []
            metadata = result.get_row_metadata()
            names = [c.name for c in metadata.columns]
            rows = [[row.get_object_with_index(i) for i in range(len(names))] for row in result]
        return names, rows
    finally:
        client.shutdown()


def format_table(names: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    cells = [[_text(v) for v in row] for row in rows]
    widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]
    out.write(" | ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)) + "\n")
    out.write("-+-".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + "\n")
    out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def run_sql(settings: Settings, query: str, output_format: str = "table",
            out: TextIO = sys.stdout) -> int:
    names, rows = query_rows(settings, query)
    if not names:
        out.write("OK\n")
        return 0
    if output_format == "csv":
        writer = csv.writer(out)
        writer.writerow(names)
        writer.writerows(rows)
    elif output_format == "json":
        for row in rows:
            out.write(orjson.dumps(dict(zip(names, row, strict=True)), default=str).decode())
            out.write("\n")
    else:
        format_table(names, rows, out)
    return 0
