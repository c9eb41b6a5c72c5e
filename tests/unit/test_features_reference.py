"""Reference data, ages, distances and the derived fields of the prediction record."""

from __future__ import annotations

import calendar
import csv
import gzip
import math
import re
from pathlib import Path

import pytest

from features.derived import (
    DerivedFields,
    customer_age_group,
    derive,
    distance_from_home,
    timestamp_ms,
    transaction_date,
)
from features.geo import EARTH_RADIUS_KM, haversine_km
from features.messages import Transaction
from features.reference import (
    CATEGORIES,
    Customer,
    Merchant,
    age_group,
    age_years,
    reference_from_row,
    setting,
)

DATA = Path(__file__).parents[2].parent / "shared" / "data" / "sparkov_2023_train.csv.gz"

ROW = {
    "": "0",
    "trans_date_trans_time": "2023-01-01 00:00:54",
    "cc_num": "2264461089328836",
    "merchant": "fraud_Tillman, Dickinson and Labadie",
    "category": "gas_transport",
    "amt": "68.32",
    "first": "Cesar",
    "last": "Taylor",
    "gender": "M",
    "street": "7388 Tiffany Cove",
    "city": "Simi Valley",
    "state": "CA",
    "zip": "93065",
    "lat": "34.2656",
    "long": "-118.7653",
    "city_pop": "126874",
    "job": "Fashion designer",
    "dob": "1980-06-04",
    "trans_num": "cbec8ea0540d6eec6c9986c9c2a4451a",
    "unix_time": "1672531254",
    "merch_lat": "35.198871",
    "merch_long": "-119.217573",
    "is_fraud": "0",
}


def utc(text: str) -> int:
    return calendar.timegm((*map(int, re.split(r"[- :]", text)), 0, 0, 0))


def test_reference_from_row() -> None:
    customer, merchant = reference_from_row(ROW)
    assert customer == Customer(
        cc_num="2264461089328836",
        first="Cesar",
        last="Taylor",
        gender="M",
        street="7388 Tiffany Cove",
        city="Simi Valley",
        state="CA",
        zip="93065",
        lat=34.2656,
        long=-118.7653,
        city_pop=126874,
        job="Fashion designer",
        dob="1980-06-04",
    )
    assert customer.name == "Cesar Taylor"
    assert merchant == Merchant("fraud_Tillman, Dickinson and Labadie", "gas_transport")


def test_card_numbers_and_zips_stay_strings() -> None:
    customer, _ = reference_from_row({**ROW, "cc_num": "0042264461089", "zip": "01234"})
    assert (customer.cc_num, customer.zip) == ("0042264461089", "01234")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"cc_num": ""}, "'cc_num' is empty"),
        ({"cc_num": "2.26446108932884e+15"}, "'cc_num' is not a string of digits"),
        ({"lat": "north"}, "'lat' is not a number"),
        ({"long": "200"}, "'long' is not in"),
        ({"city_pop": "many"}, "'city_pop' is not a number"),
        ({"city_pop": "12.5"}, "'city_pop' is not a non-negative integer"),
        ({"dob": "04/06/1980"}, "'dob' is not a date"),
        ({"first": " "}, "'first' is empty"),
        ({"merchant": ""}, "'merchant' is empty"),
    ],
)
def test_unusable_rows_raise_value_error_without_the_card(
    change: dict[str, str], reason: str
) -> None:
    with pytest.raises(ValueError) as info:
        reference_from_row({**ROW, **change})
    assert reason in str(info.value)
    assert "2264461089328836" not in str(info.value)
    assert not re.search(r"\d{12,}", str(info.value))


def test_missing_column() -> None:
    row = dict(ROW)
    del row["dob"]
    with pytest.raises(ValueError, match="'dob' is missing"):
        reference_from_row(row)


def test_records_round_trip_and_carry_the_setting() -> None:
    customer, merchant = reference_from_row(ROW)
    record = customer.to_record()
    assert record["setting"] == "urban"
    assert "age_group" not in record and "age" not in record
    assert Customer.from_record(record) == customer
    assert Merchant.from_record(merchant.to_record()) == merchant
    import json

    assert Customer.from_record(json.loads(json.dumps(record))) == customer


def test_from_record_names_the_bad_field_not_its_value() -> None:
    record = reference_from_row(ROW)[0].to_record()
    with pytest.raises(ValueError, match="'lat'"):
        Customer.from_record({**record, "lat": "2264461089328836x"})
    with pytest.raises(ValueError, match="no field 'dob'"):
        Customer.from_record({k: v for k, v in record.items() if k != "dob"})
    with pytest.raises(ValueError, match="no field 'category'"):
        Merchant.from_record({"name": "m"})


@pytest.mark.parametrize(
    ("pop", "expected"),
    [(0, "rural"), (9_999, "rural"), (10_000, "suburban"), (99_999, "suburban"),
     (100_000, "urban"), (2_000_000, "urban")],
)  # fmt: skip
def test_setting(pop: int, expected: str) -> None:
    assert setting(pop) == expected


@pytest.mark.parametrize(
    ("dob", "event", "age"),
    [
        ("1980-06-04", "2023-06-03 23:59:59", 42),
        ("1980-06-04", "2023-06-04 00:00:00", 43),
        ("2000-02-29", "2023-02-28 12:00:00", 22),
        ("2000-02-29", "2023-03-01 00:00:00", 23),
        ("2000-02-29", "2024-02-29 00:00:00", 24),
        ("2023-06-05", "2023-06-04 00:00:00", -1),
    ],
)
def test_age_years_counts_completed_years_at_the_utc_date(dob: str, event: str, age: int) -> None:
    assert age_years(dob, utc(event)) == age


def test_age_years_rejects_bad_dates() -> None:
    with pytest.raises(ValueError):
        age_years("1980/06/04", 1_700_000_000)


@pytest.mark.parametrize(
    ("age", "group"),
    [(-1, "Under 25"), (18, "Under 25"), (25, "Under 25"), (26, "26-35"), (35, "26-35"),
     (36, "36-45"), (45, "36-45"), (46, "46-55"), (55, "46-55"), (56, "Over 55"),
     (99, "Over 55")],
)  # fmt: skip
def test_age_group_bins_of_the_old_system(age: int, group: str) -> None:
    assert age_group(age) == group


def test_categories() -> None:
    assert len(CATEGORIES) == 14 == len(set(CATEGORIES))
    assert CATEGORIES[0] == "entertainment" and CATEGORIES[-1] == "travel"
    assert list(CATEGORIES) == sorted(CATEGORIES)


def test_categories_and_rows_of_the_shared_file() -> None:
    if not DATA.exists():
        pytest.skip(f"the shared data set is not at {DATA}")
    with gzip.open(DATA, "rt", newline="") as f:
        rows = [row for _, row in zip(range(30_000), csv.DictReader(f), strict=False)]
    assert {r["category"] for r in rows} == set(CATEGORIES)
    for row in rows:
        customer, merchant = reference_from_row(row)
        assert customer.cc_num == row["cc_num"] and merchant.category in CATEGORIES


# -- geo ---------------------------------------------------------------------------------------


def test_haversine_known_distances() -> None:
    assert EARTH_RADIUS_KM == 6371.0088
    assert haversine_km(10.0, 20.0, 10.0, 20.0) == 0.0
    one_degree = 2 * math.pi * EARTH_RADIUS_KM / 360
    assert haversine_km(0.0, 0.0, 0.0, 1.0) == pytest.approx(one_degree, rel=1e-12)
    assert haversine_km(0.0, 0.0, 1.0, 0.0) == pytest.approx(one_degree, rel=1e-12)
    assert haversine_km(90.0, 0.0, -90.0, 0.0) == pytest.approx(math.pi * EARTH_RADIUS_KM)
    assert haversine_km(0.0, 179.5, 0.0, -179.5) == pytest.approx(one_degree, rel=1e-9)
    # Paris (48.8566, 2.3522) - London (51.5074, -0.1278): about 343.5 km
    assert haversine_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.56, abs=0.1)
    assert haversine_km(1, 2, 3, 4) == haversine_km(3, 4, 1, 2)


# -- derived fields ------------------------------------------------------------------------


def test_derived_fields() -> None:
    customer, _ = reference_from_row(ROW)
    t = Transaction("cbec8ea0", customer.cc_num, 1672531254, 68.32, "m", "gas_transport",
                    35.198871, -119.217573)  # fmt: skip
    assert transaction_date(1672531254) == "2023-01-01 00:00:54"
    assert transaction_date(0) == "1970-01-01 00:00:00"
    assert timestamp_ms(1672531254) == 1672531254000
    assert customer_age_group(customer, t.unix_time) == "36-45"  # 42 on 2023-01-01
    distance = distance_from_home(customer, t)
    assert distance == pytest.approx(haversine_km(34.2656, -118.7653, 35.198871, -119.217573))
    assert 100 < distance < 120  # type: ignore[operator]
    assert derive(t, customer) == DerivedFields(
        "2023-01-01 00:00:54", 1672531254000, "36-45", distance
    )
    assert derive(t, None) == DerivedFields("2023-01-01 00:00:54", 1672531254000, None, None)


def test_unusable_dob_gives_no_age_group() -> None:
    customer, _ = reference_from_row(ROW)
    record = {**customer.to_record(), "dob": "unknown"}
    assert customer_age_group(Customer.from_record(record), 1672531254) is None
