"""What the image does, without Docker: the Dockerfile's install recipe in a fresh virtual
environment, then smoke checks as a non-root user (the image runs as uid 10001; here nobody).

Exactly the Dockerfile's steps: binary wheels of deploy/image-requirements.txt (cached under
FRAUD_STATE_DIR/cache, keyed by the file's hash), the package's wheel (`pip wheel --no-deps .`
in a copy of the build context that .dockerignore lets through),
`pip install --no-index` of both into a new venv, `pip check`. Then, as nobody, with the venv
and the /app scripts owned by root (read-only to the process, as in the image): the CLI, the
imports the dataflow needs, `import dataflow`, the entrypoint's dry run and its recovery
initialisation, the SQL applier's dry run. No server is needed; nothing is pulled or built
with Docker. Needs PyPI (or pip's cache) for the wheels: skips when they cannot be had.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "deploy" / "image-requirements.txt"
NOBODY = 65534
APP_FILES = ["entrypoint.sh", "entrypoint-recovery.sh", "launch_dataflow.py", "apply_sql.py"]

pytestmark = pytest.mark.slow


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900,
                          **kwargs)  # type: ignore[call-overload]


def interpreter() -> str:
    """A Python 3.11 that the unprivileged user can execute (the image's minor version)."""
    if os.geteuid() != 0:
        return getattr(sys, "_base_executable", sys.executable)
    for candidate in ("/usr/bin/python3.11", "/usr/local/bin/python3.11"):
        if Path(candidate).exists():
            return candidate
    pytest.skip("no system python3.11 that an unprivileged user can run")


def as_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "nobody", "--", *argv]
    pytest.skip("cannot drop privileges (no setpriv or runuser)")


def build_context(target: Path) -> Path:
    """A copy of what `docker build .` sends: the top-level entries .dockerignore lets
    through (an allowlist), without caches. Building from it, not from the work tree, keeps a
    stale build/ or egg-info of the work tree out of the wheel, as in the image."""
    allowed = [line[1:].strip().rstrip("/") for line in
               (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "results")
    target.mkdir()
    for name in allowed:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, target / name)
    return target


def wheelhouse() -> Path:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    state = Path(os.environ.get("FRAUD_STATE_DIR", ROOT / ".fraud-test"))
    target = state / "cache" / f"image-wheelhouse-{digest}"
    if (target / ".complete").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    result = run([sys.executable, "-m", "pip", "wheel", "--quiet", "--only-binary=:all:",
                  "--wheel-dir", str(target), "--requirement", str(REQUIREMENTS)])
    if result.returncode != 0:
        pytest.skip("the pinned wheels cannot be had (no PyPI and no pip cache?): "
                    + result.stderr.strip().splitlines()[-1:][0] if result.stderr.strip()
                    else "pip wheel failed")
    (target / ".complete").write_text("")
    return target


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A directory laid out like the image: venv (like /opt/venv), app (like /app), state
    (like /var/lib/fraud, owned by the unprivileged user), home."""
    python = interpreter()
    wheels = wheelhouse()
    work = Path(tempfile.mkdtemp(prefix="fraud-image-smoke-"))
    try:
        os.chmod(work, 0o755)
        app_wheel = work / "wheels"
        context = build_context(work / "context")
        built = run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                     "--wheel-dir", str(app_wheel), str(context)])
        assert built.returncode == 0, built.stderr
        (wheel,) = app_wheel.glob("fraud_detection-*.whl")
        venv = work / "venv"
        created = run([python, "-m", "venv", str(venv)])
        assert created.returncode == 0, created.stderr
        installed = run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                         "--no-index", "--find-links", str(wheels), "--requirement",
                         str(REQUIREMENTS), f"{wheel}[compiled]"])
        assert installed.returncode == 0, installed.stderr
        checked = run([str(venv / "bin" / "python"), "-m", "pip", "check"])
        assert checked.returncode == 0, checked.stdout + checked.stderr
        app = work / "app"
        app.mkdir()
        for name in APP_FILES:
            shutil.copy(ROOT / "deploy" / name, app / name)
            os.chmod(app / name, 0o755 if name.endswith(".sh") else 0o644)
        for path in (work / "state", work / "home"):
            path.mkdir()
            if os.geteuid() == 0:
                os.chown(path, NOBODY, NOBODY)
        for path in [work, *work.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o555)
        yield {"root": work, "venv": venv, "app": app, "state": work / "state",
               "home": work / "home"}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def in_image(image: dict[str, Path], argv: list[str],
             **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": f"{image['venv'] / 'bin'}:/usr/bin:/bin",
        "HOME": str(image["home"]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "FRAUD_STATE_DIR": str(image["state"]),
        "BYTEWAX_DATAFLOW_API_CACHE_PATH": str(image["state"]),
        "LANG": "C.UTF-8",
        **env,
    }
    return run(as_user(argv), env=environment, cwd=image["app"])


def test_runs_as_an_unprivileged_user(image: dict[str, Path]) -> None:
    result = in_image(image, ["python", "-c", "import os; print(os.geteuid())"])
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) != 0


def test_cli_help(image: dict[str, Path]) -> None:
    for argv in (["python", "-m", "service.cli", "--help"], ["fraud", "--help"],
                 ["fraud", "sql", "--help"], ["fraud", "load", "--help"],
                 ["fraud", "hotspots", "--help"]):
        result = in_image(image, argv)
        assert result.returncode == 0, f"{argv}: {result.stderr}"
        assert "usage:" in result.stdout


def test_the_dataflow_and_its_libraries_import(image: dict[str, Path]) -> None:
    if not (ROOT / "dataflow.py").exists():
        pytest.skip("dataflow.py is not in this checkout")
    code = ("import bytewax.run, bytewax.recovery, lightgbm, lleaves, llvmlite, confluent_kafka, "
            "hazelcast, orjson, prometheus_client\n"
            "from bytewax.dataflow import Dataflow\n"
            "import dataflow\n"
            "assert isinstance(dataflow.flow, Dataflow), type(dataflow.flow)\n"
            "print('ok', dataflow.flow.flow_id)")
    result = in_image(image, ["python", "-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_entrypoint_dry_run_and_recovery_as_in_a_pod(image: dict[str, Path]) -> None:
    hostfile = image["root"] / "hostfile.txt"
    hostfile.write_text("".join(f"fraud-detection-{i}.fraud-detection.fraud.svc.cluster.local"
                                f":9999\n" for i in range(5)))
    hostfile.chmod(0o644)
    recovery = image["state"] / "recovery"
    env = {
        "BYTEWAX_POD_NAME": "fraud-detection-4", "BYTEWAX_STATEFULSET_NAME": "fraud-detection",
        "BYTEWAX_REPLICAS": "5", "BYTEWAX_WORKERS_PER_PROCESS": "2",
        "BYTEWAX_HOSTFILE_PATH": str(hostfile), "BYTEWAX_RECOVERY_DIRECTORY": str(recovery),
        "BYTEWAX_SNAPSHOT_INTERVAL": "10", "BYTEWAX_RECOVERY_BACKUP_INTERVAL": "0",
    }
    entrypoint = str(image["app"] / "entrypoint.sh")
    dry = in_image(image, ["sh", entrypoint, "print-command"], **env)
    assert dry.returncode == 0, dry.stderr
    argv = shlex.split(dry.stdout)
    assert argv[:5] == ["python", str(image["app"] / "launch_dataflow.py"), "dataflow:flow",
                        "-w", "2"]
    assert argv[5:8] == ["-i", "4", "-a"]
    init = in_image(image, ["sh", entrypoint, "init-recovery"], **env)
    assert init.returncode == 0, init.stderr
    assert sorted(p.name for p in recovery.glob("part-*.sqlite3")) == [
        "part-4.sqlite3", "part-9.sqlite3"]
    if os.geteuid() == 0:
        assert {p.stat().st_uid for p in recovery.iterdir()} == {NOBODY}
    # bytewax.run itself accepts the command (argument parsing; --help stops before running).
    parsed = in_image(image, [*argv[:3], "--help"])
    assert parsed.returncode == 0, parsed.stderr
    assert "--recovery-directory" in parsed.stdout


def test_sql_applier_dry_run(image: dict[str, Path]) -> None:
    sql = image["root"] / "mappings.sql"
    shutil.copy(ROOT / "k8s" / "base" / "sql" / "mappings.sql", sql)
    sql.chmod(0o644)
    result = in_image(image, ["python", str(image["app"] / "apply_sql.py"), "--dry-run",
                              str(sql)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("CREATE OR REPLACE MAPPING") == 3


def test_the_unprivileged_user_cannot_change_the_installation(image: dict[str, Path]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to own the installation")
    code = ("import pathlib, sys\n"
            "target = pathlib.Path(sys.prefix) / 'probe'\n"
            "try:\n"
            "    target.write_text('x')\n"
            "except PermissionError:\n"
            "    print('read-only')\n")
    result = in_image(image, ["python", "-c", code])
    assert result.stdout.strip() == "read-only", result.stderr
