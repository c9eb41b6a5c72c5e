"""Every panel's PromQL with Grafana's variables substituted: what Grafana would send.

Grafana cannot run here, so the dashboards are tested by running these queries against a real
Prometheus that scraped a real run::

    from grafana.panel_queries import load_dashboard, panel_queries, variable_combinations

    dash = load_dashboard("grafana/dashboards/fraud-overview.json")
    for title, query in panel_queries(dash, {"__rate_interval": "1m"}):
        ...  # GET /api/v1/query?query=<query>; expect a non-empty result

Substitution: ``$datasource`` becomes "" (it only names the data source); the built-ins
``$__rate_interval``, ``$__interval``, ``$__range`` (and ``_s`` / ``_ms`` forms) take
:data:`BUILTIN_DEFAULTS` unless given; every custom variable takes its current (default)
value unless given. ``$name``, ``${name}``, ``${name:format}`` and ``[[name]]`` are all
recognised; an unknown variable raises ``KeyError``.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

BUILTIN_DEFAULTS: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def load_dashboard(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A dashboard from a dict, a JSON file's path, or JSON text."""
    if isinstance(source, Mapping):
        return dict(source)
    text = str(source)
    if isinstance(source, Path) or not text.lstrip().startswith("{"):
        text = Path(source).read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def variable_defaults(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Each template variable's current value ("" for the data-source variable)."""
    values: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable.get("type") == "datasource":
            values[name] = ""
            continue
        current = variable.get("current") or {}
        value = current.get("value")
        if isinstance(value, list):
            value = value[0] if value else ""
        if value is None:
            options = variable.get("options") or []
            value = options[0]["value"] if options else variable.get("query", "")
        values[name] = str(value)
    return values


def variable_options(dashboard: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every value a custom variable can take (its options, or its comma-separated query)."""
    out: dict[str, list[str]] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "custom":
            continue
        options = [str(o["value"]) for o in variable.get("options") or []]
        if not options:
            options = [v.strip() for v in str(variable.get("query", "")).split(",") if v.strip()]
        out[variable["name"]] = options
    return out


def variable_combinations(dashboard: Mapping[str, Any]) -> Iterator[dict[str, str]]:
    """Every combination of the custom variables' values (for exhaustive query checks)."""
    options = variable_options(dashboard)
    names = sorted(options)
    for values in itertools.product(*(options[n] for n in names)):
        yield dict(zip(names, values, strict=True))


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace every variable reference in ``text`` with its value."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"unknown dashboard variable ${name} in {text!r}")
        return values[name]

    return _VARIABLE.sub(replace, text)


def panel_queries(dashboard_json: str | Path | Mapping[str, Any],
                  variables: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """``(panel title, PromQL)`` for every visible query of every panel, variables substituted.

    ``variables`` overrides built-ins (e.g. ``{"__rate_interval": "30s"}``) and the custom
    variables' defaults (e.g. ``{"dimension": "state"}``). Titles are substituted too."""
    dashboard = load_dashboard(dashboard_json)
    values = {**BUILTIN_DEFAULTS, **variable_defaults(dashboard), **(variables or {})}
    out: list[tuple[str, str]] = []
    for panel in iter_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if not expr or target.get("hide"):
                continue
            out.append((substitute(panel.get("title", ""), values), substitute(expr, values)))
    return out
