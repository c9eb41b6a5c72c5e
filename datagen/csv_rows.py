"""Streaming reader for transaction CSVs in the Kaggle ``fraudTrain.csv`` schema.

Plain or gzip files (detected by their first bytes, not their name); one row at a time, so a
file of any size streams in constant memory. Values stay strings, exactly as written: callers
convert what they use (``cc_num`` and ``zip`` must stay text).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

# The schema, in file order. The first column has an empty header: it is the row index.
INDEX_COLUMN = ""
COLUMNS: tuple[str, ...] = (
    INDEX_COLUMN,
    "trans_date_trans_time",
    "cc_num",
    "merchant",
    "category",
    "amt",
    "first",
    "last",
    "gender",
    "street",
    "city",
    "state",
    "zip",
    "lat",
    "long",
    "city_pop",
    "job",
    "dob",
    "trans_num",
    "unix_time",
    "merch_lat",
    "merch_long",
    "is_fraud",
)
# What a file must have to be read: every named column; the row index and the label
# (``is_fraud``, absent from unlabelled data) are optional.
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in (INDEX_COLUMN, "is_fraud"))

_GZIP_MAGIC = b"\x1f\x8b"


def open_text(path: str | Path) -> IO[str]:
    """Open a CSV for reading as text (gzip or plain, by content); a clear error if absent."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a CSV file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"CSV file {path} {what}")
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def read_header(path: str | Path) -> list[str]:
    """The column names of a CSV (its first line)."""
    with open_text(path) as handle:
        header = next(csv.reader(handle), None)
    if header is None:
        raise ValueError(f"{path}: empty file, expected a header line")
    return header


def check_columns(header: Iterable[str], required: Iterable[str] = REQUIRED_COLUMNS,
                  source: str | Path = "CSV") -> None:
    """Raise ValueError naming every required column the header lacks."""
    present = set(header)
    missing = [c for c in required if c not in present]
    if missing:
        raise ValueError(
            f"{source}: missing required column(s) {', '.join(missing)} "
            f"(expected the fraudTrain.csv schema: {','.join(COLUMNS)})")


def iter_rows(path: str | Path, *, required: Iterable[str] = REQUIRED_COLUMNS,
              strict: bool = True) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` for every data row of a CSV, in file order.

    ``line_number`` is the row's first line in the file (the header is line 1, the first row
    line 2), for messages a user can act on. ``row`` maps column name to the raw string
    (the unnamed index column under ``""``). Blank lines are skipped.

    Raises FileNotFoundError if the file is absent, ValueError if it is empty or lacks a
    required column (all of them named), and, when ``strict``, ValueError naming the line of
    a row whose field count differs from the header's. Not strict: missing trailing fields
    read as ``""`` and extra fields are dropped.
    """
    handle = open_text(path)
    try:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file, expected a header line")
        check_columns(header, required, source=path)
        width = len(header)
        line = reader.line_num + 1
        for fields in reader:
            if fields:
                if len(fields) != width:
                    if strict:
                        raise ValueError(
                            f"{path}:{line}: expected {width} fields, found {len(fields)}")
                    fields = (fields + [""] * width)[:width]
                yield line, dict(zip(header, fields, strict=True))
            line = reader.line_num + 1
    finally:
        handle.close()
