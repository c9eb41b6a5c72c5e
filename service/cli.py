"""The `fraud` command line: one console script, one subcommand per job.

Every handler takes the parsed arguments and the one :class:`Settings` object, imports what
it needs lazily (so `fraud --help` is instant), and returns the process exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from service.settings import ENVIRONMENT_HELP, Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]

log = logging.getLogger("fraud")


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


# ---- stack -------------------------------------------------------------------------------


def _stack_up(args: argparse.Namespace, settings: Settings) -> int:
    from stack.local import stack_up

    statuses = stack_up(settings)
    for status in statuses:
        print(status.line())
    return 0 if all(s.healthy for s in statuses) else 1


def _stack_down(args: argparse.Namespace, settings: Settings) -> int:
    from stack.local import stack_down

    stack_down(settings, purge=args.purge)
    return 0


def _stack_status(args: argparse.Namespace, settings: Settings) -> int:
    from stack.local import stack_status

    statuses = stack_status(settings)
    for status in statuses:
        print(status.line())
    return 0 if all(s.healthy for s in statuses) else 1


# ---- data ----------------------------------------------------------------------------------


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    from datagen.generator import GeneratorConfig, write_csv

    config = GeneratorConfig(customers=args.customers, days=args.days, start=args.start,
                             seed=args.seed)
    report = write_csv(config, args.out, progress=not args.quiet)
    print(report.summary())
    return 0


def _load(args: argparse.Namespace, settings: Settings) -> int:
    from enrich.loader import load_reference_data

    report = load_reference_data(settings, args.data, progress=not args.quiet)
    print(report.summary())
    return 0


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from messaging.producer import produce_csv

    report = produce_csv(settings, args.data, rate=args.rate, limit=args.limit,
                         realtime=args.realtime, progress=not args.quiet)
    print(report.summary())
    return 0 if report.failed == 0 else 1


# ---- dataflow ------------------------------------------------------------------------------


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from service.runner import run_dataflow

    return run_dataflow(settings, workers=args.workers, processes=args.processes,
                        drain=args.drain, recovery=not args.no_recovery)


def _recovery(args: argparse.Namespace, settings: Settings) -> int:
    from service.recovery import main

    argv = [args.recovery_command] + ([str(args.directory)] if args.directory else [])
    return main(argv)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from service.replay import replay_csv

    report = replay_csv(settings, args.data, args.out, model_dir=args.model,
                        limit=args.limit)
    print(report.summary())
    return 0


def _sql(args: argparse.Namespace, settings: Settings) -> int:
    from enrich.sql_console import run_sql

    return run_sql(settings, args.query, output_format=args.format)


def _hotspots(args: argparse.Namespace, settings: Settings) -> int:
    from observability.hotspots import serve_hotspots

    try:
        port = args.port if args.port is not None else settings.hotspots_port
        return serve_hotspots(settings, port=port, interval=args.interval, top=args.top,
                              address=args.address)
    except OSError as exc:
        raise CliError(f"cannot serve metrics on {args.address}:{port}: {exc}") from exc


# ---- model -----------------------------------------------------------------------------------


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.train import TrainConfig, train_from_csv

    config = TrainConfig(valid_fraction=args.valid_fraction, seed=args.seed,
                         num_leaves=args.num_leaves, learning_rate=args.learning_rate,
                         min_child_samples=args.min_child_samples, max_rounds=args.rounds,
                         threshold_rule=args.threshold_rule, refit=not args.no_refit)
    train_from_csv(args.data, args.out, config, limit=args.limit, settings=settings)
    return 0


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.evaluate import evaluate_command

    return evaluate_command(args.model, args.data, as_json=args.json,
                            warmup_days=args.warmup_days, settings=settings)


def _model_publish(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.registry import publish_command

    return publish_command(settings, args.dir)


def _explain(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.explain import explain_command

    return explain_command(settings, args.trans_num, as_json_output=args.json)


def _dlq_redrive(args: argparse.Namespace, settings: Settings) -> int:
    from messaging.dead_letters import redrive_command

    return redrive_command(settings, limit=args.limit, reason=args.reason,
                           include_redriven=args.include_redriven)


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from bench.runner import bench_command

    return bench_command(settings, args)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from service.demo import run_demo

    return run_demo(settings, transactions=args.transactions, customers=args.customers)


# ---- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraud",
        description="Real-time credit-card fraud detection: a Bytewax dataflow over Kafka, "
        "Hazelcast and LightGBM, with its local stack, data tools, model and benchmark.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, handler: Handler,
                parent: argparse._SubParsersAction = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(
            name, help=help_text, description=help_text, epilog=ENVIRONMENT_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(handler=handler)
        return p

    stack = sub.add_parser("stack", help="local Kafka + Hazelcast + Prometheus on 127.0.0.1",
                           description="The local stack of real servers, on loopback, with "
                           "data and logs under FRAUD_STATE_DIR/stack.",
                           epilog=ENVIRONMENT_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    stack_sub = stack.add_subparsers(dest="stack_command", metavar="ACTION", required=True)
    command("up", "start Kafka (KRaft), Hazelcast and Prometheus unless running; create topics",
            _stack_up, stack_sub)
    down = command("down", "stop the stack's processes (only those it started, by pid)",
                   _stack_down, stack_sub)
    down.add_argument("--purge", action="store_true",
                      help="also delete all local state (FRAUD_STATE_DIR): data, logs, "
                      "recovery store, caches")
    command("status", "one line per service with its address; exit 1 when any is down",
            _stack_status, stack_sub)

    gen = command("generate", "synthetic transactions in the Kaggle fraudTrain.csv schema "
                  "(seeded, deterministic)", _generate)
    gen.add_argument("--customers", type=int, default=1000, help="number of cards (default 1000)")
    gen.add_argument("--days", type=int, default=30, help="days of activity (default 30)")
    gen.add_argument("--start", default="2024-01-01", help="first day, YYYY-MM-DD (UTC)")
    gen.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    gen.add_argument("--out", type=Path, required=True, help="CSV to write (.csv or .csv.gz)")
    gen.add_argument("--quiet", action="store_true", help="no progress output")

    load = command("load", "customers and merchants from a CSV into Hazelcast", _load)
    load.add_argument("--data", type=Path, required=True, help="CSV in the fraudTrain.csv schema")
    load.add_argument("--quiet", action="store_true", help="no progress output")

    prod = command("produce", "transactions from a CSV into the Kafka transactions topic",
                   _produce)
    prod.add_argument("--data", type=Path, required=True, help="CSV in the fraudTrain.csv schema")
    prod.add_argument("--rate", type=float, default=None, help="target messages per second")
    prod.add_argument("--limit", type=int, default=None, help="send at most N transactions")
    prod.add_argument("--realtime", action="store_true",
                      help="pace by the gaps between event times")
    prod.add_argument("--quiet", action="store_true", help="no progress output")

    run = command("run", "run the dataflow against Kafka and Hazelcast", _run)
    run.add_argument("--workers", type=int, default=1, help="worker threads per process")
    run.add_argument("--processes", type=int, default=1, help="processes (a local cluster)")
    run.add_argument("--drain", action="store_true",
                     help="exit once every partition is read to its end")
    run.add_argument("--no-recovery", action="store_true",
                     help="run without bytewax recovery (state and offsets not kept)")

    recovery = sub.add_parser("recovery", help="the dataflow's recovery store",
                              description="The dataflow's recovery store (bytewax snapshots of "
                              "Kafka offsets and per-card feature state).",
                              epilog=ENVIRONMENT_HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    recovery_sub = recovery.add_subparsers(dest="recovery_command", metavar="ACTION",
                                           required=True)
    for action, text in (("show", "what a restart resumes from (offsets, feature state)"),
                         ("check", "exit 2 when the dataflow must not resume from the store "
                          "(feature state of another version, offsets of another topic)")):
        p = command(action, text, _recovery, recovery_sub)
        p.add_argument("directory", type=Path, nargs="?", default=None,
                       help="default: FRAUD_RECOVERY_DIRECTORY or FRAUD_STATE_DIR/recovery")

    replay = command("replay", "the same dataflow on a CSV, JSON lines out, no servers", _replay)
    replay.add_argument("--data", type=Path, required=True, help="CSV in the fraudTrain.csv schema")
    replay.add_argument("--out", type=Path, required=True, help="JSON-lines file to write")
    replay.add_argument("--model", type=Path, default=None, help="model directory")
    replay.add_argument("--limit", type=int, default=None, help="first N rows only")

    sql = command("sql", "run SQL over Hazelcast (predictionResult, customers, merchants)", _sql)
    sql.add_argument("query", help='e.g. "SELECT * FROM predictionResult LIMIT 10"')
    sql.add_argument("--format", choices=["table", "csv", "json"], default="table",
                     help="table for people; csv or json (lines) for scripts")

    hot = command("hotspots", "export the top fraud hotspots (customers, cities, merchants) "
                  "of predictionResult as Prometheus gauges; needs Hazelcast", _hotspots)
    hot.add_argument("--port", type=int, default=None,
                     help="metrics port (default FRAUD_HOTSPOTS_PORT, 9464)")
    hot.add_argument("--interval", type=float, default=30.0,
                     help="seconds between two rounds of SQL queries (default 30)")
    hot.add_argument("--top", type=int, default=10, help="hotspots per dimension (default 10)")
    hot.add_argument("--address", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1; 0.0.0.0 in a pod)")

    train = command("train", "train the LightGBM model on a CSV (point-in-time features)",
                    _train)
    train.add_argument("--data", type=Path, required=True, help="CSV in the fraudTrain.csv schema")
    train.add_argument("--out", type=Path, required=True, help="model directory to write")
    train.add_argument("--valid-fraction", type=float, default=0.2,
                       help="latest fraction of the period held out for validation")
    train.add_argument("--seed", type=int, default=7, help="random seed")
    train.add_argument("--limit", type=int, default=None, help="first N rows only")
    train.add_argument("--num-leaves", type=int, default=63, help="LightGBM num_leaves (63)")
    train.add_argument("--learning-rate", type=float, default=0.05,
                       help="LightGBM learning rate (0.05)")
    train.add_argument("--min-child-samples", type=int, default=50,
                       help="LightGBM min_child_samples (50)")
    train.add_argument("--rounds", type=int, default=1000,
                       help="most boosting rounds; early stopping on the validation period "
                       "usually stops before (1000)")
    train.add_argument("--threshold-rule", default="f1",
                       help="decision threshold chosen on the validation period: f1 (maximum "
                       "F1, default), precision:P (most recall at precision >= P), fpr:F "
                       "(lowest score flagging at most a fraction F of legitimate transactions)")
    train.add_argument("--no-refit", action="store_true",
                       help="ship the model fit on the earlier period instead of refitting on "
                       "the whole file")

    evaluate = command("evaluate", "score a CSV with a model and report its quality", _evaluate)
    evaluate.add_argument("--model", type=Path, required=True, help="model directory")
    evaluate.add_argument("--data", type=Path, required=True, help="labelled CSV")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--warmup-days", type=float, default=0.0,
                          help="exclude the first days from the metrics (default 0)")

    model = sub.add_parser("model", help="model versions for running workers",
                           description="Model versions for running workers.",
                           epilog=ENVIRONMENT_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    model_sub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    publish = command("publish", "publish a model directory as the new version (hot reload)",
                      _model_publish, model_sub)
    publish.add_argument("dir", type=Path, help="model directory made by `fraud train`")

    explain = command("explain", "feature contributions of a stored prediction: those stored "
                      "when it was flagged, and all of them recomputed from the card's stored "
                      "history with the model version it records", _explain)
    explain.add_argument("trans_num", help="transaction number")
    explain.add_argument("--json", action="store_true", help="print one JSON object")

    dlq = sub.add_parser("dlq", help="the dead-letter topic",
                         description="The dead-letter topic.", epilog=ENVIRONMENT_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    dlq_sub = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    redrive = command("redrive", "send dead-lettered messages back to the transactions topic",
                      _dlq_redrive, dlq_sub)
    redrive.add_argument("--limit", type=int, default=None, help="at most N messages")
    redrive.add_argument("--reason", default=None, help="only messages with this reason")
    redrive.add_argument("--include-redriven", action="store_true",
                         help="also resend messages that failed again after a redrive")

    bench = command("bench", "the benchmark on the local stack: throughput, latency, CPU, "
                    "memory, against the ceiling and the old design (JSON, Markdown, PNG)",
                    _bench)
    bench.add_argument("--transactions", type=int, default=None,
                       help="transactions to generate and process (default 1,000,000)")
    bench.add_argument("--cards", type=int, default=None, help="distinct cards (default 50,000)")
    bench.add_argument("--out", type=Path, default=Path("bench/results"),
                       help="directory for bench.json, bench.md, bench.png "
                       "(default bench/results)")
    bench.add_argument("--processes", default=None,
                       help="dataflow configurations, e.g. 1,2 (default 1,2)")
    bench.add_argument("--rate", type=float, default=None,
                       help="offered load of the latency run, transactions/s (default 5000)")
    bench.add_argument("--latency-seconds", type=float, default=None,
                       help="duration of the latency run at that rate (default 30)")
    bench.add_argument("--saturation-transactions", type=int, default=None,
                       help="transactions of the latency run at full speed (default 300,000)")
    bench.add_argument("--baseline-transactions", type=int, default=None,
                       help="transactions for the old-design baseline (default 20,000)")
    bench.add_argument("--keep-stack", action="store_true",
                       help="leave the stack running if the benchmark started it")
    bench.add_argument("--quick", action="store_true",
                       help="a small run (smoke test): 5,000 transactions, short latency runs")

    demo = command("demo", "the whole system: stack up, data, model, dataflow, summary", _demo)
    demo.add_argument("--transactions", type=int, default=100_000)
    demo.add_argument("--customers", type=int, default=1000)
    return parser


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("hazelcast").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        settings = load_settings()
        return int(args.handler(args, settings))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from stack.processes import StackError

        if args.verbose or not isinstance(exc, StackError | CliError | FileNotFoundError
                                          | ValueError):
            log.debug("failed", exc_info=True)
        print(f"fraud {args.command}: {exc}", file=sys.stderr)
        if not isinstance(exc, StackError | CliError | FileNotFoundError | ValueError):
            print("(run with -v for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
