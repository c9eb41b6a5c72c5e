"""What one prediction costs the Hazelcast member, per member configuration (developer tool).

    python -m bench.member [--transactions N] [--indexes both|hash|none] [--gc "JVM flags"]
                           [--heap 3g] [--port 25701]

Starts a member of its own (the local stack's configuration, on its own port and state
directory, with the predictions map's indexes as chosen), writes N predictionResult values
of the service's shape (scoring/records.py, bulk-serialized as the sink does) in `put_all`
batches of 1,000 from one client, and prints the puts/s, the member's CPU per put (from
/proc), the client's, the member's GC pauses and allocation stalls (from its GC log) and how
long the analysts' queries take on what was written. The member is stopped at the end. The
figures in the README's "Where the time goes" were taken with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import re
import shutil
import time
from typing import Any

import yaml

INDEXES: dict[str, list[dict[str, Any]]] = {
    "both": [{"type": "HASH", "attributes": ["customer_name"]},
             {"type": "SORTED", "attributes": ["fraud_probability"]}],
    "hash": [{"type": "HASH", "attributes": ["customer_name"]}],
    "none": [],
}
QUERIES = (
    "SELECT * FROM {map} WHERE fraud_probability > 0.7 AND customer_name = '{name}' LIMIT 200",
    "SELECT COUNT(*) FROM {map} WHERE fraud_probability > 0.75 AND amount >= 1000",
)


def prediction_values(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` predictionResult values as `scoring.records.prediction_record` builds them (same
    fields, same order), about 1 % flagged with their top-3 contributions, over 20,000
    customer names."""
    from features.messages import Transaction
    from features.reference import Customer, Merchant
    from features.trailing import PartitionFeatureState
    from scoring.records import prediction_record

    rnd = random.Random(seed)
    customer = Customer("4000000000000000", "Carol", "Serrano", "F", "1 Main St", "Columbia",
                        "SC", "29201", 33.99, -81.03, 130_000, "Analyst", "1980-05-17")
    first = Transaction("0", customer.cc_num, 1_700_000_000, 10.0, "m", "grocery_pos", 34.0, -81.0)
    trailing = PartitionFeatureState(3_600).process([first])[0]
    values = []
    for i in range(n):
        txn = Transaction(f"{rnd.getrandbits(128):032x}", f"{4 * 10**15 + i % 50_000}",
                          1_700_000_000 + i, round(rnd.uniform(1, 2_000), 2),
                          f"fraud_Merchant {i % 700}", "grocery_pos", 33.9, -80.9)
        probability = rnd.betavariate(0.3, 12)
        flagged = probability >= 0.5
        values.append(prediction_record(
            txn, trailing, dataclasses.replace(customer, first=f"First{i % 20_000}"),
            Merchant(txn.merchant, txn.category), probability, 0.5, 1_200, "bench",
            [("amt", 1.5), ("hour_of_day", 0.7), ("category_code", 0.2)] if flagged else None))
    return values


def gc_summary(log: str) -> str:
    pauses = sorted(float(ms) for ms in re.findall(r"Pause[^\n]*? ([0-9.]+)ms\n", log))
    stalls = len(re.findall(r"Allocation Stall \(", log))
    if not pauses:
        return f"no pauses logged, {stalls} allocation stalls"
    return (f"{len(pauses)} pauses, {sum(pauses):,.0f} ms in all, max {pauses[-1]:.1f} ms; "
            f"{stalls} allocation stalls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--indexes", choices=sorted(INDEXES), default="both",
                        help="indexes of the predictions map (default both: the service's)")
    parser.add_argument("--gc", default=None, help="JVM GC flags (default the local stack's)")
    parser.add_argument("--heap", default=None, help="member heap (default the local stack's)")
    parser.add_argument("--port", type=int, default=25701)
    args = parser.parse_args()

    import hazelcast
    import orjson

    from bench.measure import process_cpu_seconds
    from enrich.sql_mappings import create_all_mappings
    from enrich.wire import json_value_data, string_key_data
    from service.settings import load_settings
    from stack.hazelcast_member import member_config, member_process, start_member, wait_for_member

    base = load_settings()
    run_dir = base.state_dir / "bench" / f"member-{time.strftime('%Y%m%d%H%M%S')}"
    settings = load_settings(
        state_dir=run_dir, hazelcast_port=args.port,
        hazelcast_members=f"127.0.0.1:{args.port}",
        hazelcast_heap=args.heap or base.hazelcast_heap,
        hazelcast_gc_options=args.gc or base.hazelcast_gc_options)
    config = yaml.safe_load(member_config(settings, args.port))
    config["hazelcast"]["map"][settings.map_predictions]["indexes"] = INDEXES[args.indexes]

    print(f"preparing {args.transactions:,} predictions", flush=True)
    values = prediction_values(args.transactions)
    batches = []
    for start in range(0, len(values), 1_000):
        chunk = values[start:start + 1_000]
        keys = string_key_data([v["transaction_number"] for v in chunk])
        batches.append(dict(zip(keys, [json_value_data(orjson.dumps(v)) for v in chunk],
                                strict=True)))
    probe = values[0]["customer_name"]
    del values

    start_member(settings, base.stack_dir / "lib", config_text=yaml.safe_dump(config))
    member = member_process(settings)
    client = None
    try:
        wait_for_member(settings)
        pid = member.pid()
        assert pid is not None
        client = hazelcast.HazelcastClient(cluster_members=[f"127.0.0.1:{args.port}"],
                                           cluster_name=settings.hazelcast_cluster_name)
        predictions: Any = client.get_map(settings.map_predictions).blocking()
        for batch in batches[:20]:  # warm-up: the member compiles its hot paths
            predictions.put_all(batch)
        predictions.clear()
        time.sleep(1)
        cpu0, wall0, own0 = process_cpu_seconds(pid), time.perf_counter(), time.process_time()
        for batch in batches:
            predictions.put_all(batch)
        wall, own = time.perf_counter() - wall0, time.process_time() - own0
        time.sleep(1)  # the member's last work after the last reply
        cpu1 = process_cpu_seconds(pid)
        if cpu0 is None or cpu1 is None:
            raise SystemExit(f"the member (pid {pid}) stopped during the run: "
                             f"{member.log_file}")
        cpu = cpu1 - cpu0
        n = sum(len(b) for b in batches)
        print(f"gc {settings.hazelcast_gc_options!r}, heap {settings.hazelcast_heap}, indexes "
              f"{args.indexes}: {n / wall:,.0f} puts/s; member {1e6 * cpu / n:.1f} us CPU per "
              f"put, client {1e6 * own / n:.1f} us; {predictions.size():,} entries")
        log = settings.stack_dir / "hazelcast" / "gc-1.log"
        print(f"  member GC: {gc_summary(log.read_text())}")
        create_all_mappings(settings, client)
        for query in QUERIES:
            sql = query.format(map=settings.map_predictions, name=probe)
            best = float("inf")
            for _ in range(3):
                began = time.perf_counter()
                with client.sql.execute(sql).result() as rows:
                    count = sum(1 for _ in rows)
                best = min(best, time.perf_counter() - began)
            print(f"  {sql}: {count} rows, best of 3 {1000 * best:,.0f} ms")
    finally:
        if client is not None:
            client.shutdown()
        member.stop()
        shutil.rmtree(run_dir / "stack" / "hazelcast", ignore_errors=True)


if __name__ == "__main__":
    main()
