"""The streaming CSV reader: plain and gzip, line numbers, clear errors."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest

from datagen.csv_rows import COLUMNS, REQUIRED_COLUMNS, iter_rows, read_header
from datagen.generator import GeneratorConfig, generate_frame, write_csv
from tests.conftest import shared_data_or_skip

HEADER = ",".join(COLUMNS)
ROW = ('0,2023-01-01 00:00:54,2264461089328836,"fraud_Tillman, Dickinson and Labadie",'
       "gas_transport,68.32,Cesar,Taylor,M,7388 Tiffany Cove,Simi Valley,CA,93065,34.2656,"
       '-118.7653,126874,"Therapist, speech and language",1980-06-04,'
       "cbec8ea0540d6eec6c9986c9c2a4451a,1672531254,35.198871,-119.217573,0")


def _write(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "gzip-without-suffix.csv"])
def test_reads_plain_and_gzip_with_line_numbers(tmp_path: Path, name: str) -> None:
    text = f"{HEADER}\n{ROW}\n\n{ROW.replace('0,2023', '1,2023', 1)}\n"
    path = tmp_path / name
    if name.startswith("gzip"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        _write(path, text)
    rows = list(iter_rows(path))
    assert [line for line, _ in rows] == [2, 4]  # the blank line 3 is skipped
    first = rows[0][1]
    assert list(first) == list(COLUMNS)
    assert first["merchant"] == "fraud_Tillman, Dickinson and Labadie"
    assert first["job"] == "Therapist, speech and language"
    assert first["cc_num"] == "2264461089328836" and first[""] == "0"
    assert rows[1][1][""] == "1"


def test_line_numbers_count_physical_lines_of_multiline_fields(tmp_path: Path) -> None:
    multi = ROW.replace('"Therapist, speech and language"', '"Therapist,\nspeech"')
    path = _write(tmp_path / "m.csv", f"{HEADER}\n{multi}\n{ROW}\n")
    assert [line for line, _ in iter_rows(path)] == [2, 4]


def test_label_and_index_are_optional(tmp_path: Path) -> None:
    columns = [c for c in COLUMNS if c not in ("", "is_fraud")]
    assert tuple(columns) == REQUIRED_COLUMNS
    values = ROW.split(",")
    path = _write(tmp_path / "u.csv", ",".join(columns) + "\n" + ROW[2:].rsplit(",", 1)[0]
                  + "\n")
    [(line, row)] = list(iter_rows(path))
    assert line == 2 and "is_fraud" not in row and row["amt"] == "68.32"
    assert values[0] == "0"


def test_missing_columns_are_named(tmp_path: Path) -> None:
    header = HEADER.replace(",merch_lat,merch_long", "").replace(",cc_num", "")
    path = _write(tmp_path / "bad.csv", header + "\n")
    with pytest.raises(ValueError, match=r"missing required column\(s\) cc_num, merch_lat, "
                                         r"merch_long"):
        list(iter_rows(path))
    # a narrower requirement passes
    assert list(iter_rows(path, required=["trans_num", "amt"])) == []


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.csv does not exist"):
        list(iter_rows(tmp_path / "nope.csv"))
    with pytest.raises(FileNotFoundError, match="is a directory"):
        list(iter_rows(tmp_path))
    with pytest.raises(ValueError, match="empty file"):
        list(iter_rows(_write(tmp_path / "empty.csv", "")))
    with pytest.raises(ValueError, match="empty file"):
        read_header(_write(tmp_path / "empty.csv.gz", ""))


def test_ragged_rows(tmp_path: Path) -> None:
    short = ROW.rsplit(",", 2)[0]
    path = _write(tmp_path / "r.csv", f"{HEADER}\n{ROW}\n{short}\n{ROW},extra\n")
    with pytest.raises(ValueError, match=r"r\.csv:3: expected 23 fields, found 21"):
        list(iter_rows(path))
    rows = list(iter_rows(path, strict=False))
    assert [line for line, _ in rows] == [2, 3, 4]
    assert rows[1][1]["merch_long"] == "" and rows[1][1]["is_fraud"] == ""
    assert rows[2][1]["is_fraud"] == "0" and len(rows[2][1]) == len(COLUMNS)


def test_reads_back_what_the_generator_writes(tmp_path: Path) -> None:
    config = GeneratorConfig(customers=15, days=4, seed=5)
    out = tmp_path / "g.csv.gz"
    write_csv(config, out, progress=False)
    frame = generate_frame(config)
    rows = list(iter_rows(out))
    assert len(rows) == len(frame)
    assert [line for line, _ in rows] == list(range(2, len(frame) + 2))
    assert [r["trans_num"] for _, r in rows] == frame.trans_num.tolist()
    assert [r["cc_num"] for _, r in rows] == frame.cc_num.tolist()


def test_reads_the_shared_data_set() -> None:
    path = shared_data_or_skip()
    head = list(itertools.islice(iter_rows(path), 500))
    assert [line for line, _ in head] == list(range(2, 502))
    assert all(len(r["trans_num"]) == 32 for _, r in head)
    assert all(r["merchant"].startswith("fraud_") for _, r in head)
