"""`fraud bench`: the benchmark, on the real local stack, in one command.

Steps (every figure in the JSON report, with the machine and the settings it ran with):

1. the local stack (started when not running, stopped again at the end if it was started);
2. N synthetic transactions (datagen, seeded; generator rows/s), the reference data loaded
   into the bench's own maps, a model (FRAUD_MODEL_DIR, the published or packaged model, or
   one trained once on generated data);
3. micro-benchmarks: compiled model vs LightGBM predict (rows/s at batch 1, 64, 1024), and the
   memory of the per-card state after the whole data set;
4. all N produced to a fresh topic (producer msg/s);
5. the ceiling: a plain consumer reading that topic in batches of 1000 with orjson;
6. the dataflow with its production defaults (recovery on, metrics on, explanations for
   flagged transactions), 1 and 2 processes, each from a fresh recovery store into a fresh
   predictions map: sustained throughput (first to last write), CPU seconds per 1k
   transactions, peak RSS, the stack's CPU;
7. end-to-end latency (Kafka timestamp to Hazelcast write) at a fixed offered load (default
   5,000/s) and at saturation (producer at full speed), each configuration on fresh topics;
8. the old design as a baseline (bench/baseline.py: one transaction at a time) on a subset;
9. JSON, Markdown and PNG written to --out; targets and ratios computed.

Each dataflow process reports one record per written batch (bench/hook.py, enabled by
FRAUD_BENCH_LOG); the benchmark reads them: exact per-transaction latencies (1 ms
resolution), the write times, the process CPU time and peak RSS.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import measure
from service.settings import Settings

Say = Callable[[str], None]

ROOT = Path(__file__).resolve().parent.parent

# The old system (issue #9): a three-member Jet cluster seen at ~1.7k transactions/s; a bank
# running it required 5k/s within a 500 ms SLA.
OLD_SYSTEM = {"throughput": 1_700, "required_throughput": 5_000, "sla_ms": 500}
TARGETS = {"throughput": 50_000, "ceiling_fraction": 0.30, "baseline_multiple": 10.0,
           "p99_ms_at_rate": 100.0}

MAP_CUSTOMERS = "bench_customers"
MAP_MERCHANTS = "bench_merchants"
BENCH_SUFFIX = "_bench_"  # the member configures {map_predictions}_bench_* as predictionResult
PACED_LINGER_MS = 5  # the producer's linger.ms in the latency runs


@dataclass(frozen=True)
class BenchOptions:
    transactions: int = 1_000_000
    cards: int = 50_000
    out: Path = Path("bench/results")
    quick: bool = False
    processes: tuple[int, ...] = (1, 2)
    rate: float = 5_000.0
    latency_seconds: float = 30.0
    saturation_transactions: int = 300_000
    baseline_transactions: int = 20_000
    warmup_transactions: int = 2_000
    warmup_seconds: float = 5.0
    keep_stack: bool = False
    run_timeout: float = 900.0

    @property
    def rate_transactions(self) -> int:
        return max(1, int(self.rate * self.latency_seconds))

    @property
    def warmup_count(self) -> int:
        """Transactions offered at the latency run's rate before anything is measured: the
        first seconds after a start (caches, JIT of the member, first snapshot) are not the
        steady state the latency targets are about."""
        return max(self.warmup_transactions, int(self.rate * self.warmup_seconds))


QUICK = {"transactions": 5_000, "cards": 500, "rate": 1_000.0, "latency_seconds": 2.0,
         "saturation_transactions": 2_000, "baseline_transactions": 300,
         "warmup_transactions": 500, "warmup_seconds": 0.5}


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    values: dict[str, Any] = {}
    if getattr(args, "quick", False):
        values.update(QUICK, quick=True)
    for name in ("transactions", "cards", "rate", "latency_seconds", "saturation_transactions",
                 "baseline_transactions"):
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    if getattr(args, "processes", None):
        values["processes"] = tuple(int(p) for p in str(args.processes).split(","))
    if getattr(args, "out", None) is not None:
        values["out"] = Path(args.out)
    values["keep_stack"] = bool(getattr(args, "keep_stack", False))
    return BenchOptions(**values)


def bench_command(settings: Settings, args: argparse.Namespace) -> int:
    options = options_from_args(args)

    def say(message: str) -> None:
        print(f"bench: {message}", file=sys.stderr, flush=True)

    result = run_bench(settings, options, say)
    from bench.report import write_outputs

    paths = write_outputs(result, options.out)
    for line in result.get("summary", []):
        print(line)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0 if not result.get("errors") else 1


# ---- the run -------------------------------------------------------------------------------


def run_bench(settings: Settings, options: BenchOptions, say: Say) -> dict[str, Any]:
    began = time.monotonic()
    tag = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:4]
    work = settings.state_dir / "bench"
    run_dir = work / f"run-{tag}"
    run_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "schema": 1,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": measure.git_commit(ROOT),
        "machine": measure.machine(),
        "options": {**asdict(options), "out": str(options.out),
                    "rate_transactions": options.rate_transactions,
                    "warmup_count": options.warmup_count},
        "old_system": OLD_SYSTEM,
        "targets_defined": TARGETS,
        "errors": [],
    }
    base = settings.model_copy(update={
        "map_customers": MAP_CUSTOMERS, "map_merchants": MAP_MERCHANTS,
        "topic_dead_letters": f"bench-{tag}-dlq", "topic_alerts": f"bench-{tag}-alerts"})
    topics: list[str] = [base.topic_dead_letters, base.topic_alerts]
    started_stack = _ensure_stack(settings, say)
    result["stack"] = {"started_by_bench": started_stack, "heap": settings.hazelcast_heap,
                       "member_gc": settings.hazelcast_gc_options}
    try:
        _run_steps(base, options, run_dir, tag, topics, result, say)
    except Exception as exc:  # reported, and the outputs still written
        result["errors"].append(f"{type(exc).__name__}: {exc}")
        say("failed: " + "".join(traceback.format_exception_only(exc)).strip())
        traceback.print_exc()
    finally:
        _cleanup(base, topics, say)
        if started_stack and not options.keep_stack:
            from stack.local import stack_down

            stack_down(settings, say=lambda m: say(m))
        shutil.rmtree(run_dir / "data", ignore_errors=True)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["elapsed_s"] = round(time.monotonic() - began, 1)
    _judge(result)
    return result


def _run_steps(base: Settings, options: BenchOptions, run_dir: Path, tag: str,
               topics: list[str], result: dict[str, Any], say: Say) -> None:
    from datagen.generator import GeneratorConfig, write_csv
    from enrich.loader import load_reference_data

    # -- data
    config = GeneratorConfig.for_transactions(options.transactions, cards=options.cards)
    data = run_dir / "data" / "transactions.csv"
    say(f"generating {options.transactions:,} transactions over {options.cards:,} cards")
    generated = write_csv(config, data, progress=False)
    result["data"] = {"transactions": generated.rows, "cards": generated.cards,
                      "frauds": generated.frauds, "days": generated.days,
                      "csv_mb": round(generated.bytes_written / 1e6, 1),
                      "generator_rows_per_s": round(generated.rows_per_second)}
    say(generated.summary())

    # -- model
    model_dir, model_source = _resolve_model(base, run_dir.parent, say)
    base = base.model_copy(update={"model_dir": model_dir})
    from scoring.model import load_model

    model = load_model(model_dir, compiled=True, cache_dir=base.cache_dir)
    result["service_defaults"] = _service_defaults(base, model, model_source)

    # -- reference data
    say("loading customers and merchants")
    loaded = load_reference_data(base, data, progress=False)
    result["data"]["load_seconds"] = round(loaded.elapsed, 1)

    # -- micro-benchmarks
    from bench.model_speed import feature_rows, model_speed
    from bench.state_memory import state_memory

    say("scoring micro-benchmark")
    x = feature_rows(data, rows=min(20_000, generated.rows))
    result["model_speed"] = model_speed(model_dir, x, base.cache_dir,
                                        seconds=0.3 if options.quick else 1.0)
    say("per-card state memory")
    result["state_memory"] = state_memory(data, base.topic_partitions,
                                          base.allowed_lateness_seconds)

    # -- backlog
    backlog = _fresh_topic(base, f"bench-{tag}-backlog", topics)
    say(f"producing {generated.rows:,} transactions to {backlog.topic_transactions}")
    produced = _produce(backlog, data, limit=None)
    result["producer"] = {"messages": produced.delivered, "failed": produced.failed,
                          "seconds": round(produced.elapsed, 2),
                          "msg_per_s": round(produced.delivered / produced.elapsed)
                          if produced.elapsed > 0 else None,
                          "config": "murmur2_random, lz4, linger.ms 20, acks all, idempotent"}
    if produced.failed:
        raise RuntimeError(f"{produced.failed} messages were not delivered")

    # -- ceiling
    from bench.ceiling import run_ceiling

    say("ceiling: plain consumer + orjson")
    ceiling = run_ceiling(backlog, backlog.topic_transactions, produced.delivered)
    result["ceiling"] = {"transactions": ceiling.messages, "seconds": round(ceiling.seconds, 2),
                         "throughput": round(ceiling.throughput),
                         "cpu_seconds_per_1k": round(ceiling.cpu_seconds / ceiling.messages
                                                     * 1000, 4) if ceiling.messages else None}
    say(f"ceiling: {ceiling.throughput:,.0f} transactions/s")

    # -- the dataflow: throughput on the backlog, latency at a rate and at saturation
    configurations = []
    for processes in options.processes:
        name = f"{processes} process" + ("es" if processes > 1 else "")
        entry: dict[str, Any] = {"name": name, "processes": processes, "workers": 1}
        configurations.append(entry)
        result["configurations"] = configurations
        try:
            say(f"{name}: backlog of {produced.delivered:,}")
            entry["saturation"] = _backlog_run(backlog, processes, produced.delivered,
                                               run_dir / f"backlog-p{processes}", options, say)
        except Exception as exc:
            entry["saturation"] = {"error": f"{type(exc).__name__}: {exc}"}
            result["errors"].append(f"{name} backlog: {exc}")
        phases = []
        start = options.warmup_count
        for kind, rate, count in (
                ("latency_at_rate", options.rate, options.rate_transactions),
                ("latency_at_saturation", None, options.saturation_transactions)):
            count = max(1, min(count, generated.rows - start))
            phases.append(_Phase(kind, rate, start, count))
            start += count
        try:
            say(f"{name}: latency, " + "; then ".join(
                f"{p.count:,} transactions offered at "
                + (f"{p.rate:,.0f}/s" if p.rate else "full speed") for p in phases))
            run_settings = _fresh_topic(base, f"bench-{tag}-latency-p{processes}", topics)
            entry.update(_tail_run(run_settings, processes, data, phases,
                                   run_dir / f"latency-p{processes}", options, say))
        except Exception as exc:
            for phase in phases:
                entry.setdefault(phase.kind, {"error": f"{type(exc).__name__}: {exc}"})
            result["errors"].append(f"{name} latency: {exc}")

    # -- baseline
    count = min(options.baseline_transactions, generated.rows)
    say(f"baseline (old design, one transaction at a time) on {count:,} transactions")
    baseline_settings = _fresh_topic(base, f"bench-{tag}-baseline", topics)
    _produce(baseline_settings, data, limit=count)
    result["baseline"] = _baseline_run(baseline_settings, count, run_dir, options)
    say(f"baseline: {result['baseline'].get('throughput', float('nan')):,.0f} transactions/s")


# ---- steps ---------------------------------------------------------------------------------


def _ensure_stack(settings: Settings, say: Say) -> bool:
    from stack.local import stack_status, stack_up

    if all(s.healthy for s in stack_status(settings)):
        return False
    say("starting the local stack")
    statuses = stack_up(settings, say=lambda m: say(m))
    if not all(s.healthy for s in statuses):
        raise RuntimeError("the local stack is not healthy: "
                           + "; ".join(s.line() for s in statuses))
    return True


def _resolve_model(settings: Settings, work: Path, say: Say) -> tuple[Path, str]:
    from scoring.model import ModelError
    from scoring.registry import default_model_dir

    try:
        path = default_model_dir(settings)
        return path, ("FRAUD_MODEL_DIR" if settings.model_dir else "published or packaged")
    except ModelError:
        pass
    target = work / "model"
    if (target / "model.txt").exists():
        return target, "trained by the benchmark (cached)"
    from datagen.generator import GeneratorConfig, write_csv
    from scoring.train import train_from_csv

    say("no model found: training one on generated data (once, cached)")
    data = work / "model-train.csv"
    write_csv(GeneratorConfig(customers=1000, days=60, seed=3), data, progress=False)
    train_from_csv(data, target, settings=settings)
    data.unlink(missing_ok=True)
    return target, "trained by the benchmark (cached)"


def _service_defaults(settings: Settings, model: Any, source: str) -> dict[str, Any]:
    return {
        "recovery": True,
        "snapshot_interval_s": settings.snapshot_interval_seconds,
        "metrics": "on (Prometheus, bytewax API port)",
        "explanations": "top-3 TreeSHAP contributions for flagged transactions",
        "workers_per_process": 1,
        "kafka_batch_size": settings.kafka_batch_size,
        "topic_partitions": settings.topic_partitions,
        "reference_cache_max_size": settings.near_cache_max_size,
        "model": {"version": model.version, "kind": model.kind, "source": source,
                  "trees": model.booster.num_trees(), "threshold": round(model.threshold, 6)},
    }


def _fresh_topic(base: Settings, name: str, topics: list[str]) -> Settings:
    from messaging.topics import delete_topics, ensure_topics

    settings = base.model_copy(update={"topic_transactions": name})
    delete_topics(settings, [name])
    ensure_topics(settings)
    topics.append(name)
    return settings


def _messages(data: Path, start: int = 0, limit: int | None = None
              ) -> Iterator[tuple[bytes, bytes]]:
    from messaging.producer import iter_messages

    end = None if limit is None else start + limit
    return itertools.islice(iter_messages(data, end), start, end)


def _produce(settings: Settings, data: Path, limit: int | None, start: int = 0,
             rate: float | None = None, overrides: dict[str, object] | None = None) -> Any:
    from messaging.producer import produce_messages

    return produce_messages(settings, _messages(data, start, limit), rate=rate,
                            overrides=overrides)


def _run_settings(settings: Settings, run_dir: Path, processes: int) -> Settings:
    name = run_dir.name.replace("-", "_")
    return settings.model_copy(update={
        "bench_log": run_dir / "batches",
        "recovery_directory": run_dir / "recovery",
        "map_predictions": settings.map_predictions + BENCH_SUFFIX + name,
    })


def _stack_cpu(settings: Settings) -> dict[str, float | None]:
    from stack.hazelcast_member import member_process
    from stack.kafka_broker import broker_process

    return {"kafka": measure.process_cpu_seconds(broker_process(settings).pid()),
            "hazelcast": measure.process_cpu_seconds(member_process(settings, 0).pid())}


def _stack_cpu_delta(before: dict[str, float | None], after: dict[str, float | None],
                     transactions: int) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name in before:
        b, a = before[name], after.get(name)
        out[f"{name}_cpu_seconds_per_1k"] = (round((a - b) / transactions * 1000, 4)
                                             if a is not None and b is not None
                                             and transactions else None)
    return out


def _start(settings: Settings, processes: int, drain: bool, run_dir: Path
           ) -> list[subprocess.Popen[bytes]]:
    from service.runner import start_processes

    run_dir.mkdir(parents=True, exist_ok=True)
    return start_processes(settings, workers=1, processes=processes, drain=drain,
                           recovery=True, log_dir=run_dir / "logs")


def _stop(procs: list[subprocess.Popen[bytes]], timeout: float = 30.0
          ) -> list[measure.ChildUsage]:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    usages = []
    for p in procs:
        try:
            usages.append(measure.wait_child(p, timeout))
        except TimeoutError:
            p.kill()
            usages.append(measure.wait_child(p, 10))
    return usages


def _finish(settings: Settings, window: measure.RunWindow, usages: list[measure.ChildUsage],
            stack: dict[str, float | None], expected: int,
            destroy: bool = True) -> dict[str, Any]:
    out = {
        "transactions": window.transactions,
        "expected": expected,
        "flagged": window.flagged,
        "throughput": round(window.throughput) if window.throughput == window.throughput
        else None,
        "seconds_first_to_last_write": round((window.last_write_ms - window.first_write_ms)
                                             / 1000, 3),
        "latency_ms": window.latency_ms,
        "cpu_seconds_per_1k": round(window.cpu_seconds_per_1k_steady, 4),
        "cpu_seconds_total": round(sum(u.cpu_seconds for u in usages), 2),
        "peak_rss_mb": round(max((u.peak_rss_mb for u in usages), default=0.0), 1),
        "peak_rss_mb_per_process": [round(u.peak_rss_mb, 1) for u in usages],
        "exit_codes": [u.exit_code for u in usages],
        **stack,
    }
    if destroy:
        _destroy_map(settings)
    return out


def _backlog_run(settings: Settings, processes: int, expected: int, run_dir: Path,
                 options: BenchOptions, say: Say) -> dict[str, Any]:
    settings = _run_settings(settings, run_dir, processes)
    cpu_before = _stack_cpu(settings)
    procs = _start(settings, processes, drain=True, run_dir=run_dir)
    usages = []
    try:
        for p in procs:
            usages.append(measure.wait_child(p, options.run_timeout))
    except TimeoutError:
        usages = _stop(procs)
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    window = measure.summarise(measure.read_batch_logs(settings.bench_log or run_dir))
    stack = _stack_cpu_delta(cpu_before, _stack_cpu(settings), window.transactions)
    if any(u.exit_code for u in usages):
        raise RuntimeError(f"dataflow exit codes {[u.exit_code for u in usages]} "
                           f"(logs in {run_dir / 'logs'})")
    out = _finish(settings, window, usages, stack, expected)
    say(f"  {out['throughput']:,} transactions/s, {out['cpu_seconds_per_1k']} CPU s/1k, "
        f"peak RSS {out['peak_rss_mb']} MB")
    if window.transactions < expected:
        raise RuntimeError(f"only {window.transactions} of {expected} predictions written")
    return out


def _wait_written(prefix: Path, count: int, timeout: float,
                  procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while measure.written_so_far(prefix) < count:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a dataflow process exited early")
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} predictions written in {timeout:.0f} s")
        time.sleep(0.05)


@dataclass(frozen=True)
class _Phase:
    kind: str
    rate: float | None  # None: as fast as the producer goes
    start: int  # first row of the data set
    count: int


def _tail_run(settings: Settings, processes: int, data: Path, phases: list[_Phase],
              run_dir: Path, options: BenchOptions, say: Say) -> dict[str, dict[str, Any]]:
    """The flow runs (tailing) first; a warm-up batch of transactions must come through
    before the measured phases are offered one after the other, each at its rate or as fast
    as the producer goes, each measured from its first to its last transaction."""
    settings = _run_settings(settings, run_dir, processes)
    prefix = settings.bench_log or run_dir
    procs = _start(settings, processes, drain=False, run_dir=run_dir)
    measured: list[tuple[_Phase, float, float, float | None, dict[str, Any]]] = []
    stages: dict[str, dict[str, float]] = {}
    try:
        _produce(settings, data, limit=options.warmup_count, rate=options.rate,
                 overrides={"linger.ms": PACED_LINGER_MS})
        written = options.warmup_count
        _wait_written(prefix, written, 180.0, procs)
        for phase in phases:
            cpu_before = _stack_cpu(settings)
            stage_before = _scrape_stages(settings, processes)
            since_ms = time.time() * 1000
            produced = _produce(settings, data, limit=phase.count, start=phase.start,
                                rate=phase.rate, overrides={"linger.ms": PACED_LINGER_MS})
            offered = produced.delivered / produced.elapsed if produced.elapsed > 0 else None
            written += phase.count
            _wait_written(prefix, written, options.run_timeout, procs)
            until_ms = time.time() * 1000
            stack = _stack_cpu_delta(cpu_before, _stack_cpu(settings), phase.count)
            stages[phase.kind] = _stage_delta(stage_before, _scrape_stages(settings, processes),
                                              phase.count)
            measured.append((phase, since_ms, until_ms, offered, stack))
    finally:
        usages = _stop(procs)
    logs = measure.read_batch_logs(prefix)
    out: dict[str, dict[str, Any]] = {}
    for phase, since_ms, until_ms, offered, stack in measured:
        window = measure.summarise(logs, since_ms=since_ms, until_ms=until_ms)
        entry = _finish(settings, window, usages, stack, phase.count, destroy=False)
        entry["offered_rate"] = round(offered) if offered else None
        entry["producer_linger_ms"] = PACED_LINGER_MS
        entry["stage_ms_per_1k"] = stages.get(phase.kind)
        lat = entry["latency_ms"]
        say(f"  offered {entry['offered_rate']:,}/s: p50 {lat.get('p50')} ms, p95 "
            f"{lat.get('p95')} ms, p99 {lat.get('p99')} ms, max {lat.get('max')} ms")
        out[phase.kind] = entry
    _destroy_map(settings)
    return out


def _scrape_stages(settings: Settings, processes: int) -> dict[str, float]:
    """Sum of `fraud_stage_duration_seconds` per stage over the processes' /metrics."""
    import urllib.request

    totals: dict[str, float] = {}
    for index in range(processes):
        url = f"http://127.0.0.1:{settings.metrics_port + index}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("fraud_stage_duration_seconds_sum{"):
                stage = line.split('stage="', 1)[1].split('"', 1)[0]
                totals[stage] = totals.get(stage, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def _stage_delta(before: dict[str, float], after: dict[str, float],
                 transactions: int) -> dict[str, float]:
    """Wall milliseconds per 1k transactions in each stage between two scrapes."""
    if not transactions:
        return {}
    return {stage: round((after[stage] - before.get(stage, 0.0)) / transactions * 1e6, 2)
            for stage in sorted(after)}


def _baseline_run(settings: Settings, count: int, run_dir: Path,
                  options: BenchOptions) -> dict[str, Any]:
    from service.runner import dataflow_env

    settings = settings.model_copy(
        update={"map_predictions": settings.map_predictions + BENCH_SUFFIX + "baseline"})
    out_file = run_dir / "baseline.json"
    env = dataflow_env(settings, 0, drain=True)
    cpu_before = _stack_cpu(settings)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.baseline", "--topic", settings.topic_transactions,
         "--count", str(count), "--result", str(out_file),
         "--timeout", str(options.run_timeout)], env=env)
    usage = measure.wait_child(proc, options.run_timeout + 60)
    if usage.exit_code != 0:
        raise RuntimeError(f"baseline exited with {usage.exit_code}")
    raw = orjson.loads(out_file.read_bytes())
    latency = measure.percentiles({int(ms): int(n) for ms, n in raw.pop("latency_counts_ms")})
    out = {
        "transactions": raw["transactions"],
        "throughput": round(raw["throughput"]),
        "cpu_seconds_per_1k": round(raw["cpu_seconds_per_1k"], 4),
        "peak_rss_mb": round(usage.peak_rss_mb, 1),
        "latency_ms_backlog": latency,
        "model_kind": raw["model_kind"],
        "note": f"first {count:,} transactions of the data set, produced before the run "
                "(a backlog); latency therefore includes queueing",
        **_stack_cpu_delta(cpu_before, _stack_cpu(settings), raw["transactions"]),
    }
    _destroy_map(settings)
    return out


def _destroy_map(settings: Settings) -> None:
    from enrich.connection import connect

    client = connect(settings, near_cache=False)
    try:
        client.get_map(settings.map_predictions).blocking().destroy()
    finally:
        client.shutdown()


def _cleanup(base: Settings, topics: list[str], say: Say) -> None:
    from enrich.connection import connect
    from messaging.topics import delete_topics

    try:
        delete_topics(base, topics)
    except Exception as exc:
        say(f"could not delete the bench topics: {exc}")
    try:
        client = connect(base, near_cache=False, timeout=10)
        try:
            for name in (MAP_CUSTOMERS, MAP_MERCHANTS):
                client.get_map(name).blocking().destroy()
        finally:
            client.shutdown()
    except Exception as exc:
        say(f"could not remove the bench maps: {exc}")


# ---- targets and ratios ----------------------------------------------------------------------


def _judge(result: dict[str, Any]) -> None:
    ceiling = (result.get("ceiling") or {}).get("throughput")
    baseline = (result.get("baseline") or {}).get("throughput")
    best: dict[str, Any] | None = None
    for entry in result.get("configurations", []):
        sat = entry.get("saturation") or {}
        tput = sat.get("throughput")
        if tput:
            entry["ratio_to_ceiling"] = round(tput / ceiling, 3) if ceiling else None
            entry["ratio_to_baseline"] = round(tput / baseline, 1) if baseline else None
            entry["ratio_to_old_system"] = round(tput / OLD_SYSTEM["throughput"], 1)
            if best is None or tput > best["saturation"]["throughput"]:
                best = entry
    targets = []
    if best is not None:
        tput = best["saturation"]["throughput"]
        targets.append(_target(f"throughput >= {TARGETS['throughput']:,}/s end to end",
                               tput, tput >= TARGETS["throughput"], best["name"]))
        if ceiling:
            frac = tput / ceiling
            targets.append(_target(f">= {TARGETS['ceiling_fraction']:.0%} of the ceiling",
                                   round(frac, 3), frac >= TARGETS["ceiling_fraction"],
                                   best["name"]))
        if baseline:
            mult = tput / baseline
            targets.append(_target(f">= {TARGETS['baseline_multiple']:g}x the baseline",
                                   round(mult, 1), mult >= TARGETS["baseline_multiple"],
                                   best["name"]))
    p99s = [(e["name"], (e.get("latency_at_rate") or {}).get("latency_ms", {}).get("p99"))
            for e in result.get("configurations", [])]
    p99s = [(n, v) for n, v in p99s if v is not None]
    if p99s:
        name, p99 = min(p99s, key=lambda nv: nv[1])
        rate = result["options"]["rate"]
        targets.append(_target(f"p99 < {TARGETS['p99_ms_at_rate']:g} ms at {rate:,.0f}/s",
                               p99, p99 < TARGETS["p99_ms_at_rate"], name))
    result["targets"] = targets
    result["summary"] = _summary_lines(result)


def _target(name: str, value: Any, met: bool, configuration: str) -> dict[str, Any]:
    return {"target": name, "value": value, "met": bool(met), "configuration": configuration}


def _summary_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for entry in result.get("configurations", []):
        sat = entry.get("saturation") or {}
        rate = (entry.get("latency_at_rate") or {}).get("latency_ms", {})
        lines.append(f"{entry['name']}: {sat.get('throughput')} transactions/s, "
                     f"p99 at {result['options']['rate']:,.0f}/s {rate.get('p99')} ms")
    if result.get("ceiling"):
        lines.append(f"ceiling: {result['ceiling']['throughput']} transactions/s")
    if result.get("baseline"):
        lines.append(f"baseline: {result['baseline'].get('throughput')} transactions/s")
    for t in result.get("targets", []):
        lines.append(f"target {t['target']}: {t['value']} ({'met' if t['met'] else 'NOT met'})")
    for error in result.get("errors", []):
        lines.append(f"error: {error}")
    return lines
