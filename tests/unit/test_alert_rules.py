"""Prometheus alert rules: valid (promtool check), unit-tested (promtool test), documented."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "observability" / "rules" / "fraud-alerts.yml"
RULE_TESTS = sorted((ROOT / "observability" / "rules" / "tests").glob("*.yml"))
RUNBOOK = ROOT / "docs" / "runbook.md"
SEVERITIES = {"critical", "warning", "info"}


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not on PATH (Debian package `prometheus`)")
    return binary


def alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules() -> None:
    out = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_test_rules() -> None:
    assert RULE_TESTS, "no rule tests in observability/rules/tests"
    out = subprocess.run([promtool(), "test", "rules", *map(str, RULE_TESTS)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAILED" not in out.stdout + out.stderr


def test_every_alert_has_labels_and_annotations() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    for rule in alerts():
        assert rule.get("labels", {}).get("severity") in SEVERITIES, rule["alert"]
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key), f"{rule['alert']} has no {key}"


def _github_anchor(heading: str) -> str:
    anchor = heading.strip().lower()
    anchor = re.sub(r"[^\w\- ]", "", anchor)
    return anchor.replace(" ", "-")


def test_every_runbook_url_points_to_a_section() -> None:
    anchors = {_github_anchor(line.lstrip("#")) for line in RUNBOOK.read_text().splitlines()
               if line.startswith("## ")}
    for rule in alerts():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbook.md", url
        assert anchor == rule["alert"].lower(), url
        assert anchor in anchors, f"docs/runbook.md has no section for {rule['alert']}"


def test_every_alert_has_a_firing_and_a_quiet_test_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts without a firing test case"
    assert names - quiet == set(), "alerts without a not-firing test case"


def test_the_local_stack_loads_these_rules() -> None:
    from stack.prometheus_server import rules_file

    found = rules_file()
    assert found is not None and found.resolve() == RULES.resolve()
