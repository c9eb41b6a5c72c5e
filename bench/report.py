"""The benchmark's outputs: JSON (everything), Markdown (the tables), PNG (the plot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

JSON_NAME = "bench.json"
MARKDOWN_NAME = "bench.md"
PLOT_NAME = "bench.png"


def write_outputs(result: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / JSON_NAME, out / MARKDOWN_NAME, out / PLOT_NAME]
    paths[0].write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2
                                      | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    paths[1].write_text(markdown(result))
    plot(result, paths[2])
    return paths


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:
        return "-"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def _lat(entry: dict[str, Any] | None) -> str:
    if not entry or "latency_ms" not in entry:
        return "-" if not entry or "error" not in entry else "error"
    lat = entry["latency_ms"]
    return f"{_n(lat.get('p50'))} / {_n(lat.get('p95'))} / {_n(lat.get('p99'))}"


def markdown(result: dict[str, Any]) -> str:
    m = result.get("machine", {})
    opts = result.get("options", {})
    data = result.get("data", {})
    defaults = result.get("service_defaults", {})
    model = defaults.get("model", {})
    rate = opts.get("rate", 0)
    lines = [
        "# fraud bench",
        "",
        f"{result.get('started_at', '?')}, commit {result.get('commit') or '?'}, "
        f"{result.get('elapsed_s', '?')} s. Machine: {m.get('cpu_model') or '?'}, "
        f"{m.get('logical_cpus')} logical CPUs, {m.get('memory_gb')} GB, {m.get('os')}, "
        f"Python {m.get('python')}, {m.get('java') or 'java ?'}; Kafka and Hazelcast on the "
        f"same machine. Load average {m.get('load_average_at_start')} at the start, "
        f"{m.get('load_average_at_end')} at the end.",
        "",
        f"Data: {_n(data.get('transactions'))} transactions, {_n(data.get('cards'))} cards, "
        f"{data.get('days')} days (generator {_n(data.get('generator_rows_per_s'))} rows/s); "
        f"producer {_n((result.get('producer') or {}).get('msg_per_s'))} msg/s.",
        f"Service defaults: recovery on (snapshot every {defaults.get('snapshot_interval_s')} "
        f"s), metrics on, explanations for flagged transactions, 1 worker per process; model "
        f"{model.get('version')} ({model.get('kind')}, {model.get('trees')} trees).",
        "",
        "## Throughput and latency",
        "",
        f"Throughput: a backlog of {_n(data.get('transactions'))} transactions, first to last "
        f"write. Latency: Kafka message timestamp to Hazelcast write, p50 / p95 / p99 in ms, "
        f"at {_n(rate)}/s offered and at saturation (producer at full speed), after "
        f"{_n(opts.get('warmup_count'))} transactions offered at {_n(rate)}/s as a "
        "warm-up (not measured).",
        "",
        "| configuration | transactions/s | of ceiling | x baseline | x old system "
        f"| latency at {_n(rate)}/s | latency at saturation | CPU s / 1k tx | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in result.get("configurations", []):
        sat = e.get("saturation") or {}
        frac = e.get("ratio_to_ceiling")
        lines.append(
            f"| {e['name']} | {_n(sat.get('throughput'))} | "
            f"{'-' if frac is None else f'{frac:.0%}'} | {_n(e.get('ratio_to_baseline'), 1)} | "
            f"{_n(e.get('ratio_to_old_system'), 1)} | {_lat(e.get('latency_at_rate'))} | "
            f"{_lat(e.get('latency_at_saturation'))} | {_n(sat.get('cpu_seconds_per_1k'), 3)} | "
            f"{_n(sat.get('peak_rss_mb'))} |")
    ceiling = result.get("ceiling") or {}
    baseline = result.get("baseline") or {}
    lines += [
        f"| ceiling: consumer + orjson | {_n(ceiling.get('throughput'))} | 100% | | | | | "
        f"{_n(ceiling.get('cpu_seconds_per_1k'), 3)} | |",
        f"| baseline: old design, 1 at a time ({_n(baseline.get('transactions'))} tx) | "
        f"{_n(baseline.get('throughput'))} | | 1.0 | | | | "
        f"{_n(baseline.get('cpu_seconds_per_1k'), 3)} | {_n(baseline.get('peak_rss_mb'))} |",
        "",
        "## Targets",
        "",
        "| target | measured | met | configuration |",
        "|---|---:|:---:|---|",
    ]
    for t in result.get("targets", []):
        value = t["value"]
        digits = 3 if isinstance(value, float) and value < 10 else 0
        lines.append(f"| {t['target']} | {_n(value, digits)} "
                     f"| {'yes' if t['met'] else 'no'} | {t['configuration']} |")
    speed = result.get("model_speed") or {}
    if speed:
        lines += ["", "## Scoring (one thread)", "",
                  "| batch size | compiled rows/s | LightGBM rows/s | speed-up |",
                  "|---:|---:|---:|---:|"]
        for b in speed.get("batch_sizes", []):
            k = str(b)
            lines.append(f"| {b} | {_n(speed['compiled_rows_per_s'].get(k))} | "
                         f"{_n(speed['lightgbm_rows_per_s'].get(k))} | "
                         f"{_n(speed['speedup'].get(k), 1)}x |")
        lines.append(f"\nExplanations (TreeSHAP contributions, batches of 16): "
                     f"{speed.get('explanations_kind', 'LightGBM')} "
                     f"{_n(speed.get('explanations_rows_per_s'))} rows/s, LightGBM pred_contrib "
                     f"{_n(speed.get('explanations_lightgbm_rows_per_s'))} rows/s; model "
                     f"{speed.get('trees')} trees, compiled with {speed.get('compiled_kind')}.")
    state = result.get("state_memory") or {}
    if state:
        lines += ["", "## Per-card state", "",
                  f"{_n(state.get('cards'))} cards, {_n(state.get('stored_events'))} stored "
                  f"events ({state.get('events_per_card')} per card): "
                  f"{state.get('memory_mb_per_100k_cards')} MB per 100k cards in memory, "
                  f"{state.get('snapshot_mb_per_100k_cards')} MB per 100k cards in a "
                  f"snapshot; {state.get('update_us_per_transaction')} us per update."]
    if result.get("errors"):
        lines += ["", "## Errors", ""] + [f"- {e}" for e in result["errors"]]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = result.get("configurations", [])
    names = [c["name"] for c in configs]
    tputs = [((c.get("saturation") or {}).get("throughput") or 0) for c in configs]
    labels = [*names, "ceiling", "baseline"]
    values = [*tputs, (result.get("ceiling") or {}).get("throughput") or 0,
              (result.get("baseline") or {}).get("throughput") or 0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = ["#2b6cb0"] * len(names) + ["#718096", "#c05621"]
    bars = left.bar(labels, values, color=colors)
    left.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=8)
    left.set_ylabel("transactions / s")
    left.set_title("Sustained throughput (backlog, first to last write)")
    target = result.get("targets_defined", {}).get("throughput")
    if target:
        left.axhline(target, color="#2f855a", linestyle="--", linewidth=1)
        left.text(len(labels) - 0.5, target, f"target {target:,}", color="#2f855a",
                  ha="right", va="bottom", fontsize=8)
    left.tick_params(axis="x", labelsize=8)

    rate = result.get("options", {}).get("rate", 0)
    groups = []
    for c in configs:
        for kind, label in (("latency_at_rate", f"{rate:,.0f}/s"),
                            ("latency_at_saturation", "saturation")):
            lat = (c.get(kind) or {}).get("latency_ms") or {}
            groups.append((f"{c['name']}\n{label}", lat))
    width = 0.25
    for i, p in enumerate(("p50", "p95", "p99")):
        xs = [j + (i - 1) * width for j in range(len(groups))]
        ys = [max(g[1].get(p, 0) or 0, 0.5) for g in groups]
        right.bar(xs, ys, width, label=p)
    right.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    right.set_yscale("log")
    right.set_ylabel("ms (log scale)")
    right.set_title("End-to-end latency (Kafka timestamp to Hazelcast write)")
    p99_target = result.get("targets_defined", {}).get("p99_ms_at_rate")
    if p99_target:
        right.axhline(p99_target, color="#2f855a", linestyle="--", linewidth=1)
    right.legend(fontsize=8)
    m = result.get("machine", {})
    fig.suptitle(f"fraud bench, {result.get('started_at', '')}: {m.get('logical_cpus')} CPUs "
                 f"({m.get('cpu_model') or '?'}), Kafka + Hazelcast on the same machine",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
