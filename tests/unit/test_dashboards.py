"""Grafana dashboards: generated from code, one datasource variable, valid PromQL for every
value of every variable, only known metric names, $__rate_interval in every rate()."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from grafana import build_dashboards
from grafana.panel_queries import (
    iter_panels,
    load_dashboard,
    panel_queries,
    substitute,
    variable_combinations,
    variable_options,
)
from observability import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "grafana" / "dashboards"
NAMES = sorted(build_dashboards.DASHBOARDS)


def dashboards() -> list[dict]:
    return [json.loads((DASHBOARDS / name).read_text()) for name in NAMES]


def known_sample_names() -> set[str]:
    import bytewax.connectors.kafka  # noqa: F401  (registers bytewax_kafka_consumer_lag)

    names = {"up"}
    for registry in (REGISTRY, metrics.HOTSPOT_REGISTRY):
        for family in registry.collect():
            base = family.name
            names.add(base)
            if family.type == "counter":
                names.add(base + "_total")
            if family.type == "histogram":
                names.update({base + "_bucket", base + "_count", base + "_sum"})
    return names


def test_committed_json_equals_the_generator_output() -> None:
    for name, build in build_dashboards.DASHBOARDS.items():
        assert (DASHBOARDS / name).read_text() == build_dashboards.render(build), (
            f"{name} is out of date: run python -m grafana.build_dashboards")
    assert build_dashboards.main(["--check"]) == 0


def test_check_mode_notices_a_stale_file(tmp_path) -> None:
    assert build_dashboards.main(["--out", str(tmp_path)]) == 0
    (tmp_path / NAMES[0]).write_text("{}\n")
    assert build_dashboards.main(["--check", "--out", str(tmp_path)]) == 1


def test_datasource_variable_is_used_by_every_panel_and_query() -> None:
    for dash in dashboards():
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        ds = variables["datasource"]
        assert ds["type"] == "datasource" and ds["query"] == "prometheus"
        for panel in iter_panels(dash["panels"]):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, \
                panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], panel["title"]


def test_every_range_is_the_rate_interval() -> None:
    for dash in dashboards():
        for panel in iter_panels(dash["panels"]):
            for target in panel.get("targets", []):
                expr = target["expr"]
                for fn in re.findall(r"\b(\w+)\(", expr):
                    assert fn not in {"irate", "delta", "idelta"}, expr
                ranges = re.findall(r"\[([^\]]*)\]", expr)
                assert all(r == "$__rate_interval" for r in ranges), (panel["title"], expr)
                calls = len(re.findall(r"\b(?:rate|increase)\(", expr))
                assert calls == len(ranges), (panel["title"], expr)


def test_panels_are_unique_and_on_the_grid() -> None:
    for dash in dashboards():
        panels = list(iter_panels(dash["panels"]))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids))
        titles = [p["title"] for p in panels if p["type"] != "row"]
        assert len(titles) == len(set(titles)), dash["title"]
        for p in panels:
            pos = p["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, p["title"]
            assert p.get("description") or p["type"] == "row", p["title"]


def test_brief_panels_exist() -> None:
    overview, operations = (json.loads((DASHBOARDS / n).read_text())
                            for n in ("fraud-overview.json", "fraud-operations.json"))
    queries = " ".join(q for d in (overview, operations) for _, q in panel_queries(d))
    for needle in ["fraud_transactions_scored_total", "fraud_end_to_end_latency_seconds_bucket",
                   "histogram_quantile(0.99", "fraud_predicted_frauds_total",
                   "fraud_amount_at_risk_dollars_total", "fraud_prediction_probability_bucket",
                   "by (category)", "by (state)", "by (age_group)", "by (gender)",
                   'fraud_hotspot_fraud_transactions{dimension="customer"}',
                   'fraud_hotspot_fraud_transactions{dimension="city"}',
                   "bytewax_kafka_consumer_lag", "by (reason) (rate(fraud_dead_letters_total",
                   'fraud_stage_duration_seconds_bucket{stage="score"}',
                   "fraud_near_cache_hits_total", "fraud_model_info", "fraud_late_events_total",
                   "fraud_unknown_reference_total"]:
        assert needle in queries, needle
    names = {v["name"] for v in overview["templating"]["list"]}
    assert {"datasource", "dimension", "min_probability", "min_amount"} <= names


def test_custom_variables_only_take_existing_label_values() -> None:
    overview = load_dashboard(DASHBOARDS / "fraud-overview.json")
    options = variable_options(overview)
    probability_les = {str(b) for b in metrics.PROBABILITY_BUCKETS}
    amount_les = {str(b) for b in metrics.AMOUNT_BUCKETS}
    assert set(options["min_probability"]) <= probability_les
    assert set(options["min_amount"]) <= amount_les
    assert set(options["dimension"]) == {"category", "age_group", "gender", "state"}
    # and prometheus_client writes these le values exactly like this
    for le in options["min_probability"]:
        assert REGISTRY.get_sample_value("fraud_prediction_probability_bucket", {"le": le}) \
            is not None, le
    for le in options["min_amount"]:
        assert REGISTRY.get_sample_value("fraud_transaction_amount_dollars_bucket",
                                         {"le": le, "prediction": "fraud"}) is not None, le


def test_queries_use_only_known_metric_names() -> None:
    known = known_sample_names()
    for dash in dashboards():
        for combination in variable_combinations(dash):
            for title, query in panel_queries(dash, combination):
                without_regex = re.sub(r'__name__=~"([^"]*)"', "", query)
                for name in re.findall(r"\b((?:fraud|bytewax|process)_\w+|up)\b(?=\s*[{\[)])",
                                       without_regex):
                    assert name in known, (title, name)
                for pattern in re.findall(r'__name__=~"([^"]*)"', query):
                    matched = {n for n in known if re.fullmatch(pattern, n)}
                    assert len(matched) == 2, (title, pattern, matched)


def test_panel_queries_substitutes_everything() -> None:
    overview = load_dashboard(DASHBOARDS / "fraud-overview.json")
    queries = panel_queries(overview, {"__rate_interval": "30s", "dimension": "state"})
    assert queries and all("$" not in q and "[[" not in q for _, q in queries)
    assert any("[30s]" in q for _, q in queries)
    assert any('state!=""' in q for _, q in queries)
    assert any(t == "Fraud rate by state" for t, _ in queries)
    defaults = panel_queries(DASHBOARDS / "fraud-overview.json", {})
    assert any('le="0.75"' in q for _, q in defaults)
    assert any("[1m]" in q for _, q in defaults)
    assert substitute("a ${x} [[x]] $x ${x:raw}", {"x": "1"}) == "a 1 1 1 1"
    with pytest.raises(KeyError):
        substitute("$nope", {})


def test_every_query_is_valid_promql_for_every_variable_value(tmp_path) -> None:
    """promtool parses every query (as a recording rule) for every variable combination."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (Debian package `prometheus`)")
    rules: list[dict[str, str]] = []
    for dash in dashboards():
        for combination in variable_combinations(dash):
            for _, query in panel_queries(dash, combination):
                rules.append({"record": f"panel_query_{len(rules)}", "expr": query})
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_provisioning_files() -> None:
    ds = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert ds["apiVersion"] == 1 and ds["datasources"][0]["type"] == "prometheus"
    dash = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/fraud.yaml").read_text())
    assert dash["providers"][0]["type"] == "file"
    assert dash["providers"][0]["options"]["path"]


def test_docs_dashboard_names_only_existing_panels_and_variables() -> None:
    doc = (ROOT / "docs" / "dashboard.md").read_text()
    titles = {p["title"] for d in dashboards() for p in iter_panels(d["panels"])}
    mentioned = set(re.findall(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", doc))
    assert mentioned, "no panel names in docs/dashboard.md"
    assert mentioned - titles == set(), "docs/dashboard.md names panels that do not exist"
    variables = {v["name"] for d in dashboards() for v in d["templating"]["list"]}
    for name in re.findall(r"variable \*\*[^*]+\*\* \(`(\w+)`", doc):
        assert name in variables, name
    for element in ["Fraud Probability Above", "Transactions Above (Amount)", "Key Dimensions",
                    "Transaction Locations", "SQL Playground", "Fraud by **customer**",
                    "Fraud by **city**", "Fraud by **category**", "Fraud by **age group**",
                    "Fraud by **gender**", "Avg Distance", "Total Amount"]:
        assert element in doc, element
