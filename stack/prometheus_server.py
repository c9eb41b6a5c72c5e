"""Prometheus (Debian's package) on loopback, scraping the dataflow's metrics ports."""

from __future__ import annotations

import shutil
import urllib.request
from importlib import resources
from pathlib import Path

import yaml

from service.settings import Settings
from stack.processes import ManagedProcess, StackError, port_open, wait_until

DATAFLOW_PROCESS_SLOTS = 4  # metrics ports metrics_port .. metrics_port + 3 are scraped
SCRAPE_INTERVAL = "2s"


def prometheus_process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("prometheus", settings.stack_dir / "run")


def rules_file() -> Path | None:
    path = Path(str(resources.files("observability") / "rules" / "fraud-alerts.yml"))
    return path if path.exists() else None


def prometheus_config(settings: Settings) -> dict:
    hotspots_port = settings.hotspots_port
    targets = [f"127.0.0.1:{settings.metrics_port + i}" for i in range(DATAFLOW_PROCESS_SLOTS)]
    config: dict = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "fraud-dataflow",
                "static_configs": [{"targets": targets}],
            },
            {
                "job_name": "fraud-hotspots",
                "static_configs": [{"targets": [f"127.0.0.1:{hotspots_port}"]}],
            },
        ],
    }
    rules = rules_file()
    if rules is not None:
        config["rule_files"] = [str(rules)]
    return config


def require_prometheus() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        raise StackError(
            "Prometheus was not found on PATH: install Debian's package "
            "(`apt-get install prometheus`); the stack runs the binary itself."
        )
    return binary


def start_prometheus(settings: Settings) -> bool:
    proc = prometheus_process(settings)
    if proc.running():
        return False
    binary = require_prometheus()
    if port_open("127.0.0.1", settings.prometheus_port):
        raise StackError(
            f"port {settings.prometheus_port} is already taken by a process this stack did not "
            "start: stop it, or choose another port with FRAUD_PROMETHEUS_PORT."
        )
    home = settings.stack_dir / "prometheus"
    (home / "data").mkdir(parents=True, exist_ok=True)
    config = home / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(settings), sort_keys=False))
    proc.start([
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=7d",
    ])
    return True


def prometheus_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.prometheus_port}"


def prometheus_ready(settings: Settings) -> bool:
    with urllib.request.urlopen(f"{prometheus_url(settings)}/-/ready", timeout=2) as resp:
        return bool(resp.status == 200)


def wait_for_prometheus(settings: Settings, timeout: float = 60.0) -> None:
    wait_until(lambda: prometheus_ready(settings), timeout,
               f"Prometheus on 127.0.0.1:{settings.prometheus_port}", prometheus_process(settings))
