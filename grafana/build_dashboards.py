"""Generate the Grafana dashboards from code: ``python -m grafana.build_dashboards``.

Writes ``grafana/dashboards/fraud-overview.json`` (the analysts' view: what the old Streamlit
dashboard showed) and ``grafana/dashboards/fraud-operations.json`` (the on-call view). The
committed JSON must equal this generator's output (``--check`` exits 1 when it does not; a unit
test runs it). Edit this file, not the JSON.

Rules every panel follows (tested):
- its data source is the ``datasource`` template variable (type datasource, Prometheus);
- every ``rate()`` / ``increase()`` uses ``$__rate_interval``;
- every query has data whenever the service ran (label sets exist from the first batch or are
  created at zero), so an empty panel means something is wrong, not "nothing happened".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "dashboards"

DS = {"type": "prometheus", "uid": "${datasource}"}
R = "$__rate_interval"
SCHEMA_VERSION = 39

# ---- template variables ----------------------------------------------------------------------

DIMENSIONS = ["category", "age_group", "gender", "state"]
# The old sliders: probability 0.50..1.00 (default 0.75), amount 100..10,000 (default 1,000).
# Values are ``le`` labels of fraud_prediction_probability / fraud_transaction_amount_dollars.
MIN_PROBABILITIES = ["0.5", "0.6", "0.7", "0.75", "0.8", "0.9", "0.95"]
MIN_AMOUNTS = ["100.0", "250.0", "500.0", "1000.0", "2500.0", "5000.0", "10000.0"]


def datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource", "label": "Data source", "type": "datasource",
        "query": "prometheus", "regex": "", "hide": 0, "refresh": 1,
        "current": {}, "options": [], "includeAll": False, "multi": False,
    }


def custom_variable(name: str, label: str, values: list[str], default: str,
                    description: str) -> dict[str, Any]:
    assert default in values
    return {
        "name": name, "label": label, "type": "custom", "description": description,
        "query": ",".join(values), "hide": 0, "includeAll": False, "multi": False,
        "skipUrlSync": False,
        "current": {"selected": True, "text": default, "value": default},
        "options": [{"selected": v == default, "text": v, "value": v} for v in values],
    }


# ---- panels ------------------------------------------------------------------------------------


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
           fmt: str = "time_series") -> dict[str, Any]:
    return {
        "datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto",
        "range": not instant, "instant": instant, "format": fmt, "editorMode": "code",
    }


def targets(*specs: tuple[str, str], instant: bool = False,
            fmt: str = "time_series") -> list[dict[str, Any]]:
    return [target(expr, legend, chr(ord("A") + i), instant, fmt)
            for i, (expr, legend) in enumerate(specs)]


def _panel(kind: str, title: str, description: str, tgts: list[dict[str, Any]], w: int, h: int,
           unit: str = "short", **options: Any) -> dict[str, Any]:
    panel: dict[str, Any] = {
        "type": kind, "title": title, "description": description, "datasource": DS,
        "targets": tgts, "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    panel.update(options)
    return panel


def timeseries(title: str, description: str, tgts: list[dict[str, Any]], unit: str = "short",
               w: int = 12, h: int = 8, stack: bool = False, bars: bool = False,
               decimals: int | None = None) -> dict[str, Any]:
    custom: dict[str, Any] = {"drawStyle": "bars" if bars else "line", "lineWidth": 1,
                              "fillOpacity": 60 if bars else 10, "showPoints": "never",
                              "spanNulls": False}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    panel = _panel("timeseries", title, description, tgts, w, h, unit)
    panel["fieldConfig"]["defaults"]["custom"] = custom
    if decimals is not None:
        panel["fieldConfig"]["defaults"]["decimals"] = decimals
    panel["options"] = {"legend": {"displayMode": "list", "placement": "bottom",
                                   "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}
    return panel


def stat(title: str, description: str, tgts: list[dict[str, Any]], unit: str = "short",
         w: int = 4, h: int = 4, text_mode: str = "auto", decimals: int | None = None,
         thresholds: list[tuple[float | None, str]] | None = None) -> dict[str, Any]:
    panel = _panel("stat", title, description, tgts, w, h, unit)
    steps = [{"color": color, "value": value}
             for value, color in (thresholds or [(None, "green")])]
    panel["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": steps}
    if decimals is not None:
        panel["fieldConfig"]["defaults"]["decimals"] = decimals
    panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                          "values": False},
                        "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
                        "textMode": text_mode, "orientation": "auto"}
    return panel


def bargauge(title: str, description: str, tgts: list[dict[str, Any]], unit: str = "short",
             w: int = 12, h: int = 8) -> dict[str, Any]:
    panel = _panel("bargauge", title, description, tgts, w, h, unit)
    panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                          "values": False},
                        "orientation": "horizontal", "displayMode": "gradient",
                        "showUnfilled": True, "valueMode": "color", "namePlacement": "auto"}
    return panel


def heatmap(title: str, description: str, tgts: list[dict[str, Any]], w: int = 12,
            h: int = 8) -> dict[str, Any]:
    panel = _panel("heatmap", title, description, tgts, w, h)
    panel["options"] = {"calculate": False, "yAxis": {"axisPlacement": "left"},
                        "cellGap": 1, "color": {"mode": "scheme", "scheme": "Oranges",
                                                "steps": 64},
                        "tooltip": {"show": True, "yHistogram": True},
                        "legend": {"show": True}}
    return panel


def hotspot_table(dimension: str, heading: str, column: str, description: str, w: int = 8,
                  h: int = 9) -> dict[str, Any]:
    """Top-K table from the hotspot exporter: one row per rank, three value columns."""
    selector = f'{{dimension="{dimension}"}}'
    tgts = targets(
        (f"max by (rank, name) (fraud_hotspot_fraud_transactions{selector})", ""),
        (f"max by (rank, name) (fraud_hotspot_fraud_amount_dollars{selector})", ""),
        (f"max by (rank, name) (fraud_hotspot_avg_distance_km{selector})", ""),
        (f"max by (rank, name) (fraud_hotspot_avg_fraud_probability{selector})", ""),
        instant=True, fmt="table")
    panel = _panel("table", f"Top {heading} by flagged transactions", description, tgts, w, h)
    panel["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {
            "excludeByName": {"Time": True, "rank": True},
            "indexByName": {"name": 0, "Value #A": 1, "Value #B": 2, "Value #C": 3,
                            "Value #D": 4},
            "renameByName": {"name": column, "Value #A": "Flagged", "Value #B": "Amount",
                             "Value #C": "Avg distance from home",
                             "Value #D": "Avg probability"},
        }},
        {"id": "sortBy", "options": {"sort": [{"field": "Flagged", "desc": True}]}},
    ]
    panel["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byName", "options": "Amount"},
         "properties": [{"id": "unit", "value": "currencyUSD"}]},
        {"matcher": {"id": "byName", "options": "Avg distance from home"},
         "properties": [{"id": "unit", "value": "lengthkm"}, {"id": "decimals", "value": 1}]},
        {"matcher": {"id": "byName", "options": "Avg probability"},
         "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 1}]},
    ]
    panel["options"] = {"showHeader": True, "cellHeight": "sm",
                        "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    return panel


def hotspot_map(dimension: str, heading: str, description: str, w: int = 24,
                h: int = 12) -> dict[str, Any]:
    """Geomap of the top-K hotspots of one dimension: a marker per hotspot at its average
    coordinates, sized by its flagged transactions (the old map of transaction locations)."""
    selector = f'{{dimension="{dimension}"}}'
    tgts = targets(
        (f"max by (rank, name) (fraud_hotspot_fraud_transactions{selector})", ""),
        (f"max by (rank, name) (fraud_hotspot_latitude{selector})", ""),
        (f"max by (rank, name) (fraud_hotspot_longitude{selector})", ""),
        instant=True, fmt="table")
    panel = _panel("geomap", f"Map of the top {heading}", description, tgts, w, h)
    panel["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {
            "excludeByName": {"Time": True, "rank": True},
            "renameByName": {"name": "Name", "Value #A": "Flagged", "Value #B": "Latitude",
                             "Value #C": "Longitude"},
        }},
    ]
    panel["options"] = {
        "view": {"id": "coords", "lat": 39.5, "lon": -98.35, "zoom": 3.6, "allLayers": True},
        "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True},
        "basemap": {"type": "default", "name": "Basemap", "config": {}},
        "layers": [{
            "type": "markers", "name": heading.capitalize(), "tooltip": True,
            "location": {"mode": "coords", "latitude": "Latitude", "longitude": "Longitude"},
            "config": {
                "showLegend": True,
                "style": {
                    "size": {"field": "Flagged", "min": 5, "max": 30, "fixed": 5},
                    "color": {"fixed": "red"}, "opacity": 0.6,
                    "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                    "text": {"mode": "field", "field": "Name", "fixed": ""},
                    "textConfig": {"fontSize": 11, "offsetX": 0, "offsetY": -14,
                                   "textAlign": "center", "textBaseline": "middle"},
                },
            },
        }],
        "tooltip": {"mode": "details"},
    }
    return panel


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"w": 24, "h": 1}}


def layout(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Place panels on the 24-column grid: each at the highest free spot (then leftmost);
    a row starts below everything before it. Ids 1..n in list order."""
    heights = [0] * 24
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
        w, h = panel["gridPos"]["w"], panel["gridPos"]["h"]
        if panel["type"] == "row":
            y = max(heights)
            panel["gridPos"] = {"h": h, "w": 24, "x": 0, "y": y}
            heights = [y + h] * 24
            continue
        y, x = min((max(heights[x:x + w]), x) for x in range(0, 25 - w))
        panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        heights[x:x + w] = [y + h] * w
    return panels


def dashboard(uid: str, title: str, description: str, panels: list[dict[str, Any]],
              variables: list[dict[str, Any]], links: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["fraud", "bytewax"], "timezone": "browser", "editable": True,
        "graphTooltip": 1, "refresh": "10s", "schemaVersion": SCHEMA_VERSION, "version": 1,
        "time": {"from": "now-1h", "to": "now"}, "timepicker": {},
        "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": variables},
        "links": links,
        "panels": layout(panels),
    }


def link(title: str, uid: str) -> dict[str, Any]:
    return {"title": title, "type": "link", "url": f"/d/{uid}", "icon": "dashboard",
            "keepTime": True, "includeVars": False, "targetBlank": False, "asDropdown": False,
            "tags": [], "tooltip": ""}


# ---- queries shared by panels ----------------------------------------------------------------

SCORED_RATE = f"sum(rate(fraud_transactions_scored_total[{R}]))"
FRAUD_RATE = f"sum(rate(fraud_predicted_frauds_total[{R}]))"
FRAUD_SHARE = f"{FRAUD_RATE} / {SCORED_RATE}"
PROB_OVER_MIN = (
    f"(sum(rate(fraud_prediction_probability_count[{R}]))"
    f" - sum(rate(fraud_prediction_probability_bucket{{le=\"$min_probability\"}}[{R}])))"
)
MODEL_INFO = "max by (version, kind) (fraud_model_info)"


def by_dimension(family: str, suffix: str) -> str:
    """A selector over ``fraud_<family>_total`` and ``fraud_<family>_by_state_total`` that
    keeps the series carrying the ``$dimension`` label (state lives on the _by_state one)."""
    name = f"fraud_{family}(_by_state)?{suffix}_total"
    return f'{{__name__=~"{name}", $dimension!=""}}'


def amount_over_min(prediction_matcher: str) -> str:
    sel = f"fraud_transaction_amount_dollars_count{{{prediction_matcher}}}"
    bucket = (f"fraud_transaction_amount_dollars_bucket{{{prediction_matcher}, "
              "le=\"$min_amount\"}")
    return f"(sum(rate({sel}[{R}])) - sum(rate({bucket}[{R}]))) * 60"


# ---- the dashboards ----------------------------------------------------------------------------


def overview() -> dict[str, Any]:
    frauds_by = by_dimension("predicted_frauds", "")
    scored_by = by_dimension("transactions_scored", "")
    risk_by = by_dimension("amount_at_risk", "_dollars")
    panels: list[dict[str, Any]] = [
        row("Now"),
        stat("Transactions scored / s", "All transactions scored by the model, per second.",
             targets((SCORED_RATE, "scored/s")), unit="ops", decimals=1),
        stat("Fraud rate", "Share of scored transactions the model flags as fraud (at its "
             "threshold).", targets((FRAUD_SHARE, "fraud rate")), unit="percentunit",
             decimals=2, thresholds=[(None, "green"), (0.02, "orange"), (0.05, "red")]),
        stat("Probability over $min_probability / min",
             "Transactions per minute whose fraud probability exceeds the selected minimum "
             "(variable min_probability: the old probability slider).",
             targets((f"{PROB_OVER_MIN} * 60", "over $min_probability")), decimals=1),
        stat("Amount at risk / min", "Dollars per minute in transactions flagged as fraud.",
             targets((f"sum(rate(fraud_amount_at_risk_dollars_total[{R}])) * 60",
                      "at risk")), unit="currencyUSD"),
        stat("Flagged over $min_amount / min",
             "Flagged transactions per minute with an amount above the selected minimum "
             "(variable min_amount: the old amount slider).",
             targets((amount_over_min('prediction="fraud"'), "flagged over $min_amount")),
             decimals=1),
        stat("Model version", "The model version (and scoring engine) in use.",
             targets((MODEL_INFO, "{{version}} ({{kind}})"), instant=True), text_mode="name"),

        row("Traffic and fraud over time"),
        timeseries("Throughput: transactions scored / s",
                   "Transactions scored per second, all dataflow processes together.",
                   targets((SCORED_RATE, "scored/s")), unit="ops"),
        timeseries("Predicted frauds per minute",
                   "Transactions flagged as fraud per minute.",
                   targets((f"{FRAUD_RATE} * 60", "flagged/min")), bars=True),
        timeseries("Fraud rate over time",
                   "Share of transactions flagged (at the model's threshold), and share with "
                   "a fraud probability over $min_probability.",
                   targets((FRAUD_SHARE, "flagged"),
                           (f"{PROB_OVER_MIN} / {SCORED_RATE}",
                            "probability > $min_probability")),
                   unit="percentunit"),
        timeseries("Amount at risk per minute",
                   "Dollars per minute: flagged transactions (at risk) and all scored ones.",
                   targets((f"sum(rate(fraud_amount_at_risk_dollars_total[{R}])) * 60",
                            "at risk"),
                           (f"sum(rate(fraud_amount_scored_dollars_total[{R}])) * 60",
                            "scored")),
                   unit="currencyUSD"),
        heatmap("Score distribution over time",
                "Transactions per fraud-probability bucket (0.05 wide) over time.",
                targets((f"sum by (le) (rate(fraud_prediction_probability_bucket[{R}]))",
                         "{{le}}"), fmt="heatmap")),
        bargauge("Score distribution",
                 "Transactions per second in each fraud-probability bucket (upper bound).",
                 targets((f"sum by (le) (rate(fraud_prediction_probability_bucket[{R}]))",
                          "{{le}}"), instant=True, fmt="heatmap"), unit="ops"),
        timeseries("Transactions over $min_amount per minute",
                   "Transactions per minute with an amount above min_amount: flagged and all.",
                   targets((amount_over_min('prediction="fraud"'), "flagged"),
                           (amount_over_min('prediction=~"fraud|legit"'), "all")),
                   w=24, h=7),

        row("Breakdown by $dimension"),
        timeseries("Predicted frauds per minute by $dimension",
                   "Flagged transactions per minute grouped by the selected dimension "
                   "(variable dimension: category, age group, gender or state).",
                   targets((f"sum by ($dimension) (rate({frauds_by}[{R}])) * 60",
                            "{{$dimension}}")), stack=True, bars=True, w=8),
        timeseries("Fraud rate by $dimension",
                   "Share of transactions flagged, per value of the selected dimension.",
                   targets((f"sum by ($dimension) (rate({frauds_by}[{R}]))"
                            f" / sum by ($dimension) (rate({scored_by}[{R}]))",
                            "{{$dimension}}")), unit="percentunit", w=8),
        timeseries("Amount at risk per minute by $dimension",
                   "Dollars per minute in flagged transactions, per value of the selected "
                   "dimension.",
                   targets((f"sum by ($dimension) (rate({risk_by}[{R}])) * 60",
                            "{{$dimension}}")), unit="currencyUSD", stack=True, w=8),

        row("Frauds since the service started"),
        bargauge("Predicted frauds by category",
                 "Flagged transactions per merchant category since the dataflow processes "
                 "started (counters restart with them).",
                 targets(("sort_desc(sum by (category) (fraud_predicted_frauds_total))",
                          "{{category}}"), instant=True), w=6, h=10),
        bargauge("Predicted frauds by state (top 15)",
                 "Flagged transactions per customer state since the processes started.",
                 targets(("sort_desc(topk(15, sum by (state) "
                          "(fraud_predicted_frauds_by_state_total)))", "{{state}}"),
                         instant=True), w=6, h=10),
        bargauge("Predicted frauds by age group",
                 "Flagged transactions per customer age group since the processes started.",
                 targets(("sort_desc(sum by (age_group) (fraud_predicted_frauds_total))",
                          "{{age_group}}"), instant=True), w=6, h=5),
        bargauge("Predicted frauds by gender",
                 "Flagged transactions per customer gender since the processes started.",
                 targets(("sort_desc(sum by (gender) (fraud_predicted_frauds_total))",
                          "{{gender}}"), instant=True), w=6, h=5),
        bargauge("Amount at risk by category",
                 "Dollars in flagged transactions per merchant category since the processes "
                 "started.",
                 targets(("sort_desc(sum by (category) (fraud_amount_at_risk_dollars_total))",
                          "{{category}}"), instant=True), unit="currencyUSD", w=6, h=5),
        bargauge("Amount at risk by state (top 15)",
                 "Dollars in flagged transactions per customer state since the processes "
                 "started.",
                 targets(("sort_desc(topk(15, sum by (state) "
                          "(fraud_amount_at_risk_by_state_dollars_total)))", "{{state}}"),
                         instant=True), unit="currencyUSD", w=6, h=5),

        row("Hotspots (predictionResult, via the hotspot exporter)"),
        hotspot_table("customer", "customers", "Customer",
                      "Customers with the most flagged transactions in predictionResult: count, "
                      "amount, average distance from home. From `fraud hotspots`."),
        hotspot_table("city", "cities", "City",
                      "Customer cities with the most flagged transactions in predictionResult."),
        hotspot_table("merchant", "merchants", "Merchant",
                      "Merchants with the most flagged transactions in predictionResult."),
        bargauge("Stored predictions",
                 "Transactions held in predictionResult, flagged and legitimate.",
                 targets(("sum by (prediction) (fraud_stored_predictions)", "{{prediction}}"),
                         instant=True), w=8, h=5),
        bargauge("Stored amounts",
                 "Dollars in predictionResult, flagged and legitimate.",
                 targets(("sum by (prediction) (fraud_stored_amount_dollars)",
                          "{{prediction}}"), instant=True), unit="currencyUSD", w=8, h=5),
        bargauge("Average amount",
                 "Average amount per transaction in predictionResult, flagged vs legitimate.",
                 targets(("sum by (prediction) (fraud_stored_amount_dollars)"
                          " / sum by (prediction) (fraud_stored_predictions)", "{{prediction}}"),
                         instant=True), unit="currencyUSD", w=8, h=5),
        bargauge("Average distance from home",
                 "Average distance (km) between the customer's home and the merchant, flagged "
                 "vs legitimate transactions in predictionResult.",
                 targets(("max by (prediction) (fraud_stored_avg_distance_km)",
                          "{{prediction}}"), instant=True), unit="lengthkm", w=8, h=5),
        hotspot_map("city", "cities",
                    "The top customer cities by flagged transactions, at their customers' "
                    "average home coordinates; marker size = flagged transactions. Single "
                    "transactions' merchant locations: see docs/dashboard.md (fraud sql)."),

        row("Data quality"),
        timeseries("Unknown cards and merchants per minute",
                   "Transactions whose card (customer) or merchant is missing from the "
                   "reference data: scored with those features missing.",
                   targets((f"sum by (kind) (rate(fraud_unknown_reference_total[{R}])) * 60",
                            "{{kind}}"))),
        timeseries("Late events per minute",
                   "Events older than the watermark minus the allowed lateness.",
                   targets((f"sum(rate(fraud_late_events_total[{R}])) * 60", "late"))),
    ]
    variables = [
        datasource_variable(),
        custom_variable("dimension", "Group by", DIMENSIONS, "category",
                        "Breakdown dimension (the old group-by selector)."),
        custom_variable("min_probability", "Min probability", MIN_PROBABILITIES, "0.75",
                        "Fraud-probability threshold (the old probability slider)."),
        custom_variable("min_amount", "Min amount ($)", MIN_AMOUNTS, "1000.0",
                        "Amount threshold in dollars (the old amount slider)."),
    ]
    return dashboard("fraud-overview", "Fraud overview",
                     "Fraud detected by the Bytewax dataflow: rates, amounts, breakdowns and "
                     "hotspots (the old Streamlit dashboard).", panels, variables,
                     [link("Fraud operations", "fraud-operations")])


def _quantile(q: float, selector: str, by: str = "le") -> str:
    return f"histogram_quantile({q}, sum by ({by}) (rate({selector}[{R}])))"


def operations() -> dict[str, Any]:
    latency = "fraud_end_to_end_latency_seconds_bucket"
    stage = "fraud_stage_duration_seconds_bucket"
    hits = f"sum by (map) (rate(fraud_near_cache_hits_total[{R}]))"
    misses = f"sum by (map) (rate(fraud_near_cache_misses_total[{R}]))"
    panels: list[dict[str, Any]] = [
        row("Health"),
        stat("Dataflow processes up", "Dataflow metrics targets Prometheus scrapes "
             "successfully.", targets(('sum(up{job="fraud-dataflow"})', "up"))),
        stat("Seconds since the last scored batch", "Time since any process scored a batch.",
             targets(("time() - max(fraud_last_scored_timestamp_seconds)", "age")), unit="s",
             thresholds=[(None, "green"), (60, "orange"), (300, "red")]),
        stat("Consumer lag", "Messages in Kafka not yet read by the dataflow (all partitions).",
             targets(("sum(bytewax_kafka_consumer_lag)", "lag")),
             thresholds=[(None, "green"), (10000, "orange"), (50000, "red")]),
        stat("Throughput", "Transactions scored per second.", targets((SCORED_RATE, "scored/s")),
             unit="ops", decimals=1),
        stat("Model version", "The model version (and scoring engine) in use.",
             targets((MODEL_INFO, "{{version}} ({{kind}})"), instant=True), text_mode="name"),
        stat("Model loaded", "Time since the current model was loaded.",
             targets(("time() - max(fraud_model_loaded_timestamp_seconds)", "age")),
             unit="s"),

        row("Latency and throughput"),
        timeseries("End-to-end latency",
                   "From the Kafka message timestamp to the prediction's write to Hazelcast: "
                   "p50, p95, p99. SLO: 99 % within 0.5 s.",
                   targets((_quantile(0.5, latency), "p50"), (_quantile(0.95, latency), "p95"),
                           (_quantile(0.99, latency), "p99")), unit="s"),
        timeseries("Share within the latency SLO (0.5 s)",
                   "Share of transactions written within 0.5 s of their Kafka timestamp.",
                   targets((f'sum(rate({latency}{{le="0.5"}}[{R}]))'
                            f" / sum(rate(fraud_end_to_end_latency_seconds_count[{R}]))",
                            "within 0.5 s")), unit="percentunit"),
        timeseries("Throughput by process", "Transactions scored per second, per process.",
                   targets((f"sum by (instance) (rate(fraud_transactions_scored_total[{R}]))",
                            "{{instance}}")), unit="ops"),
        timeseries("Consumer lag per partition",
                   "Kafka messages not yet read, per topic partition (bytewax's gauge).",
                   targets(("sum by (topic, partition) (bytewax_kafka_consumer_lag)",
                            "{{topic}} {{partition}}"))),

        row("Stages"),
        timeseries("Stage duration p95 by stage",
                   "95th percentile of one batch's wall time per stage.",
                   targets((_quantile(0.95, stage, "le, stage"), "{{stage}}")), unit="s"),
        timeseries("Scoring batch duration",
                   "Wall time of one scoring batch (stage score): p50 and p99.",
                   targets((_quantile(0.5, f'{stage}{{stage="score"}}'), "p50"),
                           (_quantile(0.99, f'{stage}{{stage="score"}}'), "p99")), unit="s"),
        timeseries("Scoring batch size",
                   "Average transactions per scoring batch.",
                   targets((f"sum(rate(fraud_batch_size_sum[{R}]))"
                            f" / sum(rate(fraud_batch_size_count[{R}]))", "average"))),
        timeseries("Near-cache hit ratio",
                   "Reference-data lookups served by the Hazelcast near cache, per map.",
                   targets((f"{hits} / ({hits} + {misses})", "{{map}}")), unit="percentunit"),

        row("Errors"),
        timeseries("Dead letters per minute by reason",
                   "Messages sent to the dead-letter topic per minute, by reason code.",
                   targets((f"sum by (reason) (rate(fraud_dead_letters_total[{R}])) * 60",
                            "{{reason}}")), stack=True, bars=True),
        timeseries("Consumer errors, sink retries, alerts published per minute",
                   "Kafka consumer errors, retried Hazelcast writes, flagged transactions "
                   "sent to the alerts topic.",
                   targets((f"sum(rate(fraud_kafka_consumer_errors_total[{R}])) * 60",
                            "consumer errors"),
                           (f"sum(rate(fraud_sink_retries_total[{R}])) * 60", "sink retries"),
                           (f"sum(rate(fraud_alerts_published_total[{R}])) * 60",
                            "alerts published"))),
        timeseries("Late events and unknown references per minute",
                   "Late events (dropped from the windows' past) and transactions with an "
                   "unknown card or merchant.",
                   targets((f"sum(rate(fraud_late_events_total[{R}])) * 60", "late events"),
                           (f"sum by (kind) (rate(fraud_unknown_reference_total[{R}])) * 60",
                            "unknown {{kind}}"))),
        timeseries("Model reloads", "Model hot reloads per interval, by result.",
                   targets((f"sum by (result) (increase(fraud_model_reloads_total[{R}]))",
                            "{{result}}")), bars=True),

        row("Processes and exporters"),
        timeseries("CPU per dataflow process", "CPU cores used per dataflow process.",
                   targets((f'sum by (instance) (rate(process_cpu_seconds_total'
                            f'{{job="fraud-dataflow"}}[{R}]))', "{{instance}}")),
                   unit="short", w=8),
        timeseries("Memory per dataflow process", "Resident memory per dataflow process.",
                   targets(('sum by (instance) (process_resident_memory_bytes'
                            '{job="fraud-dataflow"})', "{{instance}}")), unit="bytes", w=8),
        timeseries("Scrape targets up", "Targets up per job (dataflow, hotspot exporter).",
                   targets(('sum by (job) (up{job=~"fraud-.*"})', "{{job}}")), w=8),
        timeseries("Hotspot exporter: age of its data",
                   "Seconds since the hotspot exporter last completed a round of SQL queries.",
                   targets(("time() - max(fraud_hotspot_last_success_timestamp_seconds)",
                            "age")), unit="s"),
        timeseries("Hotspot exporter: query duration p95",
                   "95th percentile duration of the hotspot SQL queries, per dimension.",
                   targets((_quantile(0.95, "fraud_hotspot_query_duration_seconds_bucket",
                                      "le, dimension"), "{{dimension}}")), unit="s"),
    ]
    return dashboard("fraud-operations", "Fraud operations",
                     "The fraud-detection dataflow's health: latency, lag, stages, errors, "
                     "model and processes.", panels, [datasource_variable()],
                     [link("Fraud overview", "fraud-overview")])


DASHBOARDS = {"fraud-overview.json": overview, "fraud-operations.json": operations}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a committed dashboard differs from the generated one")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path = args.out / name
        text = render(build)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print("out of date (run python -m grafana.build_dashboards): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
