"""`fraud demo` (the README's first command): stack up, generate data, train the default model
if needed, load reference data, produce, run the dataflow to the end, print a summary."""

from __future__ import annotations

import shutil
import sys
import time

from service.settings import Settings


def step(message: str) -> None:
    print(f"\n==> {message}", file=sys.stderr, flush=True)


def run_demo(settings: Settings, transactions: int = 100_000, customers: int = 1000) -> int:
    from datagen.generator import GeneratorConfig, write_csv
    from enrich.loader import load_reference_data
    from enrich.sql_console import query_rows
    from messaging.producer import produce_csv
    from messaging.topics import delete_topics, ensure_topics
    from scoring.model import MODEL_FILE
    from scoring.registry import PACKAGED_MODEL, default_model_dir
    from service.runner import run_dataflow
    from stack.local import stack_up

    began = time.monotonic()
    step("local stack: Kafka (KRaft), Hazelcast, Prometheus on 127.0.0.1")
    stack_up(settings)

    demo_dir = settings.state_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    data = demo_dir / f"transactions-{customers}c-{transactions}.csv"
    step(f"synthetic data: {data.name}")
    if not data.exists():
        config = GeneratorConfig.for_transactions(transactions, cards=customers,
                                                  start="2024-01-01", seed=42)
        print(write_csv(config, data, progress=True).summary(), file=sys.stderr)
    else:
        print("already generated", file=sys.stderr)

    step("model")
    try:
        model_dir = default_model_dir(settings)
        print(f"using {model_dir}", file=sys.stderr)
    except ValueError:
        model_dir = settings.models_dir / "demo-default"
        if not (model_dir / MODEL_FILE).exists():
            from scoring.train import train_from_csv

            train_from_csv(data, model_dir, settings=settings)
    if model_dir != PACKAGED_MODEL and settings.model_dir is None:
        settings = settings.model_copy(update={"model_dir": model_dir})

    step("reference data into Hazelcast")
    print(load_reference_data(settings, data, progress=True).summary(), file=sys.stderr)

    step("fresh topics and recovery store, then produce")
    delete_topics(settings, [settings.topic_transactions, settings.topic_dead_letters,
                             settings.topic_alerts])
    time.sleep(1)
    ensure_topics(settings)
    shutil.rmtree(settings.recovery_dir, ignore_errors=True)
    report = produce_csv(settings, data, progress=True)
    print(report.summary(), file=sys.stderr)

    step("dataflow (until every partition is read to its end)")
    code = run_dataflow(settings, workers=2, processes=1, drain=True, recovery=True)
    if code != 0:
        print(f"dataflow failed with exit code {code}", file=sys.stderr)
        return code

    step("summary")
    _, count = query_rows(settings, f'SELECT COUNT(*) FROM "{settings.map_predictions}"')
    _, frauds = query_rows(settings, f'SELECT COUNT(*), SUM(amount) FROM '
                                     f'"{settings.map_predictions}" '
                                     "WHERE fraud_model_prediction = 1")
    names, top = query_rows(settings, (
        "SELECT transaction_number, transaction_date, credit_card_number, customer_name, "
        "category, amount, fraud_probability, top_feature_1 "
        f'FROM "{settings.map_predictions}" ORDER BY fraud_probability DESC LIMIT 10'))
    from enrich.sql_console import format_table
    from features.messages import mask_card

    card = names.index("credit_card_number")
    masked = [[mask_card(str(v)) if i == card else v for i, v in enumerate(row)] for row in top]
    print(f"transactions produced: {report.delivered:,}")
    print(f"transactions scored (rows in {settings.map_predictions}): {count[0][0]:,}")
    print(f"predicted frauds: {frauds[0][0]:,} (amount at risk ${frauds[0][1] or 0:,.2f})")
    print("top 10 by fraud probability (card numbers masked):")
    format_table(names, masked, sys.stdout)
    print(f"\ndemo finished in {time.monotonic() - began:.0f} s. Try: fraud sql \"SELECT * FROM "
          f"{settings.map_predictions} WHERE fraud_probability > 0.7 LIMIT 20\"; Prometheus: "
          f"http://127.0.0.1:{settings.prometheus_port}; stop: fraud stack down")
    return 0
