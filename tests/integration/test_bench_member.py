"""`python -m bench.member`: its own member, the service's prediction values, figures printed.
Figures are printed, never asserted; what is asserted is that every value arrived and that
the member it started is gone afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from stack.processes import port_open
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

PORT = 15721  # beside the test stack's member slots (15701-15703)


@pytest.mark.parametrize("indexes", ["both", "none"])
def test_member_cost_tool_writes_every_value_and_stops_its_member(stack, indexes):
    env = {**os.environ, **stack.to_environment()}
    done = subprocess.run(
        [sys.executable, "-m", "bench.member", "--transactions", "3000", "--indexes", indexes,
         "--port", str(PORT)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    summary = re.search(r"indexes (\w+): ([\d,]+) puts/s; member ([\d.]+) us CPU per put, "
                        r"client ([\d.]+) us; ([\d,]+) entries", done.stdout)
    assert summary, done.stdout
    assert summary.group(1) == indexes
    assert summary.group(5) == "3,000"
    assert "member GC:" in done.stdout
    assert done.stdout.count("best of 3") == 2
    assert not port_open("127.0.0.1", PORT)
