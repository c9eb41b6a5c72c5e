"""Profile the live dataflow in this process (developer tool, not part of `fraud bench`).

    python -m bench.profile --data CSV [--limit N] [--profiler pyinstrument|none] [--html F]

Produces the CSV's first N transactions to a fresh topic, then runs the live flow (Kafka in,
Hazelcast out, metrics on, drain) with one worker in this thread under pyinstrument, and
prints the transactions/s and the profile.
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--profiler", choices=["pyinstrument", "none"], default="pyinstrument")
    parser.add_argument("--html", type=Path, default=None)
    parser.add_argument("--interval", type=float, default=0.001)
    args = parser.parse_args()

    from bytewax.testing import run_main

    from dataflow import build_live_flow
    from enrich.connection import connect
    from messaging.producer import iter_messages, produce_messages
    from messaging.topics import delete_topics, ensure_topics
    from service.settings import load_settings

    tag = uuid.uuid4().hex[:6]
    settings = load_settings(topic_transactions=f"profile-{tag}",
                             topic_dead_letters=f"profile-dlq-{tag}",
                             topic_alerts=f"profile-alerts-{tag}",
                             map_predictions=f"predictionResult_profile_{tag}")
    ensure_topics(settings)
    report = produce_messages(settings, iter_messages(args.data, args.limit))
    print(report.summary())
    flow = build_live_flow(settings, drain=True)
    import gc

    gc_time = [0.0, 0.0, 0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_time[1] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_time[1]
            gc_time[2] += 1

    gc.callbacks.append(on_gc)
    import os
    if os.environ.get("GC_THRESHOLD"):  # experiments; default: what the service does
        gc.set_threshold(*[int(v) for v in os.environ["GC_THRESHOLD"].split(",")])
    else:
        from dataflow import tune_garbage_collection

        tune_garbage_collection()
    profiler = None
    if args.profiler == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=args.interval)
        profiler.start()
    began = time.perf_counter()
    try:
        run_main(flow)
    finally:
        elapsed = time.perf_counter() - began
        if profiler is not None:
            profiler.stop()
        print(f"{report.delivered:,} transactions in {elapsed:.1f} s: "
              f"{report.delivered / elapsed:,.0f}/s (including start-up); "
              f"{gc_time[2]} garbage collections took {gc_time[0]:.2f} s")
        if profiler is not None:
            if args.html:
                args.html.write_text(profiler.output_html())
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        client = connect(settings, near_cache=False)
        try:
            client.get_map(settings.map_predictions).blocking().destroy()
        finally:
            client.shutdown()
        delete_topics(settings, [settings.topic_transactions, settings.topic_dead_letters,
                                 settings.topic_alerts])


if __name__ == "__main__":
    main()
