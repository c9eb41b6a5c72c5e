"""The command line: help texts, fast and clear failures."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from service.cli import build_parser


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_every_subcommand_has_help_naming_the_environment() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        out = _run(name, "--help")
        assert out.returncode == 0, (name, out.stderr)
        assert "FRAUD_" in out.stdout, name


def test_stack_up_without_java_fails_fast_with_one_line(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items()}
    # PATH with python's directory only: no java there
    env["PATH"] = os.path.dirname(sys.executable)
    env["FRAUD_STATE_DIR"] = str(tmp_path)
    began = time.monotonic()
    out = _run("stack", "up", env=env)
    elapsed = time.monotonic() - began
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Java" in lines[0] and "install" in lines[0]
    assert elapsed < 5  # the command itself; interpreter start-up included


@pytest.mark.parametrize("secret", ["s3cr3t-value-xyz"])
def test_secrets_never_in_repr_or_summary(secret: str, monkeypatch) -> None:
    from service.settings import load_settings

    monkeypatch.setenv("FRAUD_KAFKA_SASL_PASSWORD", secret)
    settings = load_settings()
    assert secret not in repr(settings)
    assert secret not in str(settings.public_summary())
    assert settings.kafka_config()["sasl.password"] == secret
