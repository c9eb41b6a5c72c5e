"""The synthetic data generator: determinism, schema and formats, and fraud that looks like
fraud (its structure, not only its rate), learnable from per-card features."""

from __future__ import annotations

import calendar
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datagen.csv_rows import COLUMNS
from datagen.generator import (
    GenerationReport,
    GeneratorConfig,
    benchmark_generator,
    generate_frame,
    write_csv,
)
from datagen.reference import CATEGORIES, ONLINE_CATEGORIES

SMALL = GeneratorConfig(customers=60, days=10, seed=11)
MODERATE = GeneratorConfig(customers=600, days=30, seed=3)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_frame(MODERATE)


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "small.csv"
    write_csv(SMALL, out, progress=False)
    return out


def _haversine_km(lat1: pd.Series, lon1: pd.Series, lat2: pd.Series,
                  lon2: pd.Series) -> np.ndarray:
    p1, l1, p2, l2 = (np.radians(np.asarray(x, dtype=float)) for x in (lat1, lon1, lat2, lon2))
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    return np.asarray(2 * 6371.0 * np.arcsin(np.sqrt(h)))


def _luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# ---- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.csv", "a.csv.gz"])
def test_same_seed_gives_identical_bytes_other_seed_differs(tmp_path: Path, name: str) -> None:
    first, again, other = tmp_path / "1" / name, tmp_path / "2" / name, tmp_path / "3" / name
    write_csv(SMALL, first, progress=False)
    write_csv(SMALL, again, progress=False)
    write_csv(GeneratorConfig(customers=60, days=10, seed=12), other, progress=False)
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_gzip_holds_the_same_text_as_plain(tmp_path: Path, small_csv: Path) -> None:
    gz = tmp_path / "small.csv.gz"
    write_csv(SMALL, gz, progress=False)
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress(gz.read_bytes()) == small_csv.read_bytes()


def test_no_partial_file_left_behind(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "dir" / "x.csv"
    report = write_csv(SMALL, out, progress=False)
    assert out.exists() and report.bytes_written == out.stat().st_size
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.csv"]


# ---- schema and formats ----------------------------------------------------------------------


def test_header_is_exactly_the_fraudtrain_schema(small_csv: Path) -> None:
    header = small_csv.read_text().splitlines()[0]
    assert header == (",trans_date_trans_time,cc_num,merchant,category,amt,first,last,gender,"
                      "street,city,state,zip,lat,long,city_pop,job,dob,trans_num,unix_time,"
                      "merch_lat,merch_long,is_fraud")
    assert header.split(",") == list(COLUMNS)


def test_formats_parse_back(small_csv: Path) -> None:
    raw = pd.read_csv(small_csv, dtype=str, keep_default_na=False)
    n = len(raw)
    assert n > 1000
    assert raw[raw.columns[0]].tolist() == [str(i) for i in range(n)]

    def all_match(column: str, pattern: str) -> bool:
        return bool(raw[column].str.fullmatch(pattern).all())

    assert all_match("trans_date_trans_time", r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
    assert all_match("cc_num", r"[1-9]\d{11,18}")
    assert all(_luhn_ok(c) for c in raw.cc_num.unique())
    assert all_match("merchant", r"fraud_.+")
    assert set(raw.category) == set(CATEGORIES)
    assert all_match("amt", r"\d+\.\d\d")
    assert all_match("gender", "[MF]")
    assert all_match("zip", r"\d{5}")
    assert all_match("lat", r"-?\d+\.\d{4}") and all_match("long", r"-?\d+\.\d{4}")
    assert all_match("city_pop", r"\d+")
    assert all_match("dob", r"\d{4}-\d\d-\d\d")
    assert all_match("trans_num", "[0-9a-f]{32}")
    assert raw.trans_num.is_unique
    assert all_match("unix_time", r"\d+")
    assert all_match("merch_lat", r"-?\d+\.\d{6}") and all_match("merch_long", r"-?\d+\.\d{6}")
    assert set(raw.is_fraud) <= {"0", "1"}

    unix = raw.unix_time.astype(np.int64)
    parsed = pd.to_datetime(raw.trans_date_trans_time, format="%Y-%m-%d %H:%M:%S")
    assert (parsed.astype("datetime64[s]").astype(np.int64) == unix).all()
    start = calendar.timegm(SMALL.start_date.timetuple())
    assert unix.min() >= start and unix.max() < start + SMALL.days * 86400
    keys = list(zip(unix, raw.trans_num, strict=True))
    assert keys == sorted(keys)

    # one card per customer, one customer per card
    person = raw[["first", "last", "dob", "street", "city", "lat", "long", "job", "gender"]]
    per_card = person.assign(cc=raw.cc_num).drop_duplicates()
    assert per_card.cc.is_unique
    assert len(per_card) == raw.cc_num.nunique()
    ages = (pd.Timestamp(SMALL.start_date) - pd.to_datetime(per_card.dob)).dt.days / 365.25
    assert ages.between(18, 96).all()


def test_frame_equals_the_written_csv(small_csv: Path) -> None:
    written = pd.read_csv(small_csv, index_col=0, dtype={"cc_num": str, "zip": str})
    written.index.name = None
    expected = generate_frame(SMALL)
    assert list(expected.columns) == list(COLUMNS[1:])
    pd.testing.assert_frame_equal(written, expected, check_dtype=False, check_exact=True,
                                  check_index_type=False)


def test_report_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "r.csv.gz"
    report = write_csv(SMALL, out, progress=False)
    assert isinstance(report, GenerationReport)
    frame = generate_frame(SMALL)
    assert report.rows == len(frame)
    assert report.frauds == int(frame.is_fraud.sum())
    assert report.cards == frame.cc_num.nunique()
    line = report.summary()
    assert "\n" not in line
    for part in (f"{report.rows:,}", f"{report.frauds:,}", "%", f"{report.cards:,} cards",
                 "rows/s", str(out)):
        assert part in line


def test_a_period_without_transactions_gives_a_header_only(tmp_path: Path) -> None:
    config = GeneratorConfig(customers=1, days=1, seed=0, mean_daily_transactions=0.01)
    report = write_csv(config, tmp_path / "empty.csv", progress=False)
    assert report.rows == report.frauds == report.cards == 0
    assert (tmp_path / "empty.csv").read_text() == ",".join(COLUMNS) + "\n"
    assert "1 day from" in report.summary()
    assert len(generate_frame(config)) == 0


def test_progress_goes_to_stderr_only(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import datagen.generator as gen

    monkeypatch.setattr(gen, "_CHUNK_ROWS", 1000)
    ticks = iter(float(i) for i in range(10_000))
    monkeypatch.setattr(gen.time, "perf_counter", lambda: next(ticks))
    write_csv(SMALL, tmp_path / "p.csv", progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "generate:" in captured.err and "rows" in captured.err
    write_csv(SMALL, tmp_path / "q.csv", progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kwargs, word", [
    ({"customers": 0}, "customers"),
    ({"days": 0}, "days"),
    ({"start": "2024-13-01"}, "YYYY-MM-DD"),
    ({"start": "tomorrow"}, "YYYY-MM-DD"),
    ({"seed": -1}, "seed"),
    ({"fraud_rate": 0.7}, "fraud_rate"),
    ({"start": "2099-12-01", "days": 60}, "2099"),
])
def test_bad_configuration_is_a_clear_value_error(kwargs: dict[str, object], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        GeneratorConfig(**kwargs)  # type: ignore[arg-type]


def test_config_for_a_number_of_transactions() -> None:
    config = GeneratorConfig.for_transactions(40_000, cards=2_000)
    assert config.customers == 2_000
    rows = len(generate_frame(config))
    assert 36_000 < rows < 44_000
    by_days = GeneratorConfig.for_transactions(20_000, days=10)
    assert by_days.days == 10
    assert 18_000 < len(generate_frame(by_days)) < 22_000


def test_benchmark_reports_rows_per_second() -> None:
    rate = benchmark_generator(20_000)
    assert rate > 1_000


def test_start_date_and_other_seed_move_the_data() -> None:
    a = generate_frame(GeneratorConfig(customers=20, days=5, start="2023-06-01", seed=1))
    assert a.trans_date_trans_time.str.startswith("2023-06-0").all()
    b = generate_frame(GeneratorConfig(customers=20, days=5, start="2023-06-01", seed=2))
    assert set(a.cc_num).isdisjoint(set(b.cc_num))


# ---- what the data look like ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fraud_rate_is_realistic(seed: int) -> None:
    frame = generate_frame(GeneratorConfig(customers=400, days=30, seed=seed))
    assert 0.005 <= frame.is_fraud.mean() <= 0.02


def test_legit_spending_has_a_daily_rhythm_and_stays_near_home(frame: pd.DataFrame) -> None:
    legit = frame[frame.is_fraud == 0]
    hours = np.bincount((legit.unix_time // 3600) % 24, minlength=24) / len(legit)
    assert hours[10:21].mean() > 4 * hours[1:5].mean()  # busy days, quiet nights
    assert hours[1:5].min() > 0  # but not empty
    dist = _haversine_km(legit.lat, legit.long, legit.merch_lat, legit.merch_long)
    assert np.median(dist) < 120
    assert np.mean(dist < 160) > 0.85  # the rest: trips
    # spending rates differ between customers
    per_card = legit.groupby("cc_num").size()
    assert per_card.quantile(0.9) > 2 * per_card.quantile(0.1)
    # amounts differ by category
    medians = legit.groupby("category").amt.median()
    assert medians["travel"] > 2 * medians["food_dining"]


def test_fraud_comes_in_bursts_on_a_card(frame: pd.DataFrame) -> None:
    def gaps(rows: pd.DataFrame) -> pd.Series:
        ordered = rows.sort_values(["cc_num", "unix_time"])
        return ordered.groupby("cc_num").unix_time.diff().dropna()

    fraud = frame[frame.is_fraud == 1]
    legit = frame[frame.is_fraud == 0]
    assert gaps(fraud).median() * 5 < gaps(legit).median()
    per_card = fraud.groupby("cc_num").size()
    assert per_card.median() >= 3  # several in short succession
    # a burst (a card's frauds without a 3-day pause) lasts hours to a couple of days
    ordered = fraud.sort_values(["cc_num", "unix_time"])
    pause = ordered.groupby("cc_num").unix_time.diff().fillna(np.inf) > 3 * 86400
    burst = pause.cumsum()
    span_h = ordered.groupby(burst).unix_time.agg(lambda s: s.max() - s.min()) / 3600
    assert span_h.median() < 30 and span_h.quantile(0.95) < 60
    assert (span_h > 12).any()  # some over two nights
    # legitimate use of those cards goes on around the fraud
    first_fraud = fraud.groupby("cc_num").unix_time.min().rename("first_fraud")
    around = legit.join(first_fraud, on="cc_num", how="inner")
    around = around[(around.unix_time - around.first_fraud).abs() < 2 * 86400]
    assert around.cc_num.nunique() > 0.8 * len(first_fraud)


def test_fraud_differs_from_legit_but_overlaps(frame: pd.DataFrame) -> None:
    fraud = frame[frame.is_fraud == 1]
    legit = frame[frame.is_fraud == 0]
    assert len(fraud) > 200

    def night(rows: pd.DataFrame) -> pd.Series:
        hour = (rows.unix_time // 3600) % 24
        return (hour >= 22) | (hour < 4)

    def online(rows: pd.DataFrame) -> pd.Series:
        return rows.category.isin(ONLINE_CATEGORIES)

    assert night(fraud).mean() > 4 * night(legit).mean()
    assert online(fraud).mean() > 1.5 * online(legit).mean()
    assert fraud.amt.median() > 4 * legit.amt.median()
    far_f = _haversine_km(fraud.lat, fraud.long, fraud.merch_lat, fraud.merch_long) > 300
    far_l = _haversine_km(legit.lat, legit.long, legit.merch_lat, legit.merch_long) > 300
    assert far_f.mean() > 2 * far_l.mean()
    # not separable by any one of these
    assert (night(legit) & online(legit)).mean() > 0.01
    assert (legit.amt > fraud.amt.median()).sum() > 50
    assert (fraud.amt < legit.amt.median()).mean() > 0.05
    assert 0.1 < night(fraud).mean() < 0.95
    assert far_f.mean() < 0.6


def _per_card_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time per-card trailing features, as a model in the service would see them."""
    d = frame.sort_values(["cc_num", "unix_time"], kind="stable").reset_index(drop=True)
    card = d.cc_num.astype("category").cat.codes.to_numpy().astype(np.int64)
    t = d.unix_time.to_numpy(np.int64)
    key = card * 10**10 + t
    amt = d.amt.to_numpy()
    cum = np.concatenate([[0.0], np.cumsum(amt)])
    idx = np.arange(len(d))
    for seconds, name in [(3600, "1h"), (86400, "24h"), (7 * 86400, "7d"), (30 * 86400, "30d")]:
        lo = np.searchsorted(key, key - seconds, side="right")
        d[f"n_{name}"] = idx - lo + 1
        d[f"amt_{name}"] = cum[idx + 1] - cum[lo]
    same = np.r_[False, card[1:] == card[:-1]]
    d["since_prev"] = np.where(same, t - np.r_[t[0], t[:-1]], 10**7)
    d["amt_rel"] = d.amt / (d.amt_30d / d.n_30d)
    d["hour"] = (d.unix_time // 3600) % 24
    d["category_code"] = pd.Categorical(d.category, categories=CATEGORIES).codes
    d["distance"] = _haversine_km(d.lat, d.long, d.merch_lat, d.merch_long)
    d["age"] = (d.unix_time - pd.to_datetime(d.dob).astype("datetime64[s]").astype(np.int64)
                ) / (365.25 * 86400)
    return d


def test_fraud_is_learnable_from_per_card_features_but_no_single_one(
        frame: pd.DataFrame) -> None:
    import lightgbm
    from sklearn.metrics import roc_auc_score

    d = _per_card_features(frame)
    features = ["amt", "hour", "category_code", "distance", "age", "n_1h", "n_24h", "n_7d",
                "amt_24h", "since_prev", "amt_rel"]
    cut = d.unix_time.quantile(0.7)  # train on the earlier 70 %, test on the later 30 %
    train, test = d[d.unix_time <= cut], d[d.unix_time > cut]
    assert train.is_fraud.sum() > 100 and test.is_fraud.sum() > 50
    model = lightgbm.LGBMClassifier(n_estimators=150, learning_rate=0.05, num_leaves=31,
                                    min_child_samples=20, verbose=-1, n_jobs=1,
                                    deterministic=True, seed=1)
    model.fit(train[features], train.is_fraud)
    scores = np.asarray(model.predict_proba(test[features]))[:, 1]
    auc = roc_auc_score(test.is_fraud, scores)
    assert auc > 0.9, auc
    for name in features:
        single = roc_auc_score(test.is_fraud, test[name])
        assert max(single, 1 - single) < 0.93, (name, single)


# ---- the command line ------------------------------------------------------------------------


def test_cli_generate_writes_and_summarises(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "cli.csv.gz"
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "generate", "--customers", "30", "--days", "5",
         "--start", "2023-03-01", "--seed", "9", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    [line] = done.stdout.strip().splitlines()
    assert "transactions" in line and "rows/s" in line and str(out) in line
    frame = pd.read_csv(out, dtype=str)
    assert frame.trans_date_trans_time.str.startswith("2023-03-0").all()

    bad = subprocess.run(
        [sys.executable, "-m", "service.cli", "generate", "--start", "2023-02-30", "--out",
         str(tmp_path / "bad.csv")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "YYYY-MM-DD" in bad.stderr
    assert not (tmp_path / "bad.csv").exists()
