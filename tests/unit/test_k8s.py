"""The Kubernetes manifests, rendered with the real kustomize and checked offline.

- every rendered object validates against the Kubernetes OpenAPI schemas in strict mode
  (kubernetes-validate; unknown fields are errors), for the oldest and a recent version we
  support;
- PodMonitor and PrometheusRule validate against prometheus-operator's CRD schemas
  (../shared/schemas), made strict the way the API server's strict field validation is;
- the PrometheusRule equals the plain rules file and the dashboard ConfigMaps equal the JSON in
  grafana/ (and the committed copies are what k8s/sync_monitoring.py generates);
- processes x workers divide the 10 Kafka partitions in every overlay, the hostfile the init
  container writes names the pods of the headless Service, no Secret or credential is in a
  manifest, every container is locked down, the dataflow has its probes.

kustomize comes from scripts/install-kustomize.sh; without it these tests skip and say so.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
SCHEMAS = ROOT.parent / "shared" / "schemas"
OVERLAYS = ["gke", "dev"]
TARGETS = ["base", *OVERLAYS]
KUBERNETES_VERSIONS = ["1.30", "1.33"]
KAFKA_PARTITIONS = 10
SECRET_KEYS = {
    "FRAUD_KAFKA_BOOTSTRAP_SERVERS",
    "FRAUD_KAFKA_SASL_USERNAME",
    "FRAUD_KAFKA_SASL_PASSWORD",
}
MONITORING_CRDS = {
    "PodMonitor": "crd-podmonitors.yaml",
    "ServiceMonitor": "crd-servicemonitors.yaml",
    "PrometheusRule": "crd-prometheusrules.yaml",
}
POD_KINDS = {"StatefulSet", "Deployment", "Job"}


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


sync_monitoring = load_module(K8S / "sync_monitoring.py")
apply_sql = load_module(ROOT / "deploy" / "apply_sql.py")


# ---- rendering ------------------------------------------------------------------------------


def find_kustomize() -> str | None:
    candidates = [os.environ.get("KUSTOMIZE", ""), shutil.which("kustomize") or ""]
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists()
                                else None)
    if go:
        result = subprocess.run([go, "env", "GOBIN", "GOPATH"], capture_output=True, text=True,
                                check=False)
        lines = result.stdout.splitlines() if result.returncode == 0 else []
        if lines and lines[0]:
            candidates.append(str(Path(lines[0]) / "kustomize"))
        if len(lines) > 1 and lines[1]:
            candidates.append(str(Path(lines[1].split(":")[0]) / "bin" / "kustomize"))
    candidates.append(str(Path.home() / "go" / "bin" / "kustomize"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@cache
def render(target: str) -> tuple[dict[str, Any], ...]:
    kustomize = find_kustomize()
    if kustomize is None:
        pytest.skip("kustomize not found (KUSTOMIZE, PATH, ~/go/bin): run "
                    "scripts/install-kustomize.sh")
    path = K8S / "base" if target == "base" else K8S / "overlays" / target
    result = subprocess.run([kustomize, "build", str(path)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, f"kustomize build {path} failed:\n{result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def objects(target: str, kind: str) -> list[dict[str, Any]]:
    return [d for d in render(target) if d["kind"] == kind]


def one(target: str, kind: str, name: str) -> dict[str, Any]:
    found = [d for d in objects(target, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{target}: expected one {kind} {name}, found {len(found)}"
    return found[0]


def configmap(target: str, base_name: str) -> dict[str, Any]:
    """A generated ConfigMap (name with kustomize's hash suffix)."""
    found = [d for d in objects(target, "ConfigMap")
             if re.fullmatch(rf"{re.escape(base_name)}(-[a-z0-9]{{10}})?", d["metadata"]["name"])]
    assert len(found) == 1, f"{target}: expected one ConfigMap {base_name}"
    return found[0]


def pod_specs(target: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in render(target):
        if doc["kind"] in POD_KINDS:
            yield doc, doc["spec"]["template"]["spec"]


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def effective_env(target: str, container: dict[str, Any]) -> dict[str, Any]:
    """A container's environment: envFrom ConfigMaps, then env (literal values or sources)."""
    env: dict[str, Any] = {}
    configmaps = {d["metadata"]["name"]: d for d in objects(target, "ConfigMap")}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]]["data"])
        else:
            raise AssertionError(f"unexpected envFrom source {source}")
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def dataflow(target: str) -> tuple[dict[str, Any], dict[str, Any]]:
    sts = one(target, "StatefulSet", "fraud-detection")
    main = next(c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "process")
    return sts, main


# ---- schemas --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_manifests_validate_strictly_against_kubernetes_schemas(target: str, version: str) -> None:
    import kubernetes_validate

    checked = 0
    for doc in render(target):
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: see the next test
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{target}: {doc['kind']}/{doc['metadata']['name']} is invalid for "
                        f"Kubernetes {version}: {path}: {exc.message}")
        checked += 1
    assert checked >= 10


def test_strict_validation_rejects_unknown_fields() -> None:
    import kubernetes_validate

    sts, _ = dataflow("base")
    bad = copy.deepcopy(sts)
    bad["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[0], strict=True)


def strict_schema(schema: Any) -> Any:
    """An OpenAPI v3 CRD schema with unknown fields forbidden (like the API server's
    strict field validation), integer-or-string made explicit."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {k: strict_schema(v) for k, v in schema.items()}
    if result.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
        result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (result.get("type") == "object" and "properties" in result
            and "additionalProperties" not in result
            and not result.get("x-kubernetes-preserve-unknown-fields")):
        result["additionalProperties"] = False
    if result.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
    return result


@cache
def crd_validator(kind: str) -> Any:
    import jsonschema

    path = SCHEMAS / MONITORING_CRDS[kind]
    if not path.exists():
        pytest.skip(f"the CRD schemas are not at {SCHEMAS} (../shared/schemas)")
    crd = next(d for d in yaml.safe_load_all(path.read_text()) if d)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = strict_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    # metadata is validated by the API server itself, not by the CRD schema.
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("target", TARGETS)
def test_monitoring_resources_validate_against_prometheus_operator_crds(target: str) -> None:
    found = {d["kind"] for d in render(target) if d["kind"] in MONITORING_CRDS}
    assert {"PodMonitor", "PrometheusRule"} <= found
    for doc in render(target):
        if doc["kind"] not in MONITORING_CRDS:
            continue
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        errors = sorted(crd_validator(doc["kind"]).iter_errors(doc), key=str)
        assert not errors, "\n".join(
            f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, e.path))}: {e.message}"
            for e in errors)


def test_strict_crd_schema_rejects_unknown_fields() -> None:
    validator = crd_validator("PodMonitor")
    good = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
            "metadata": {"name": "x"},
            "spec": {"selector": {}, "podMetricsEndpoints": [{"port": "api"}]}}
    assert not list(validator.iter_errors(good))
    bad = copy.deepcopy(good)
    bad["spec"]["podMetricsEndpoints"][0]["prot"] = "api"
    assert list(validator.iter_errors(bad))


# ---- monitoring sources ---------------------------------------------------------------------


def test_committed_monitoring_files_are_what_the_generator_makes() -> None:
    stale = sync_monitoring.stale_files(ROOT)
    assert not stale, f"stale: {stale}: run python k8s/sync_monitoring.py"


@pytest.mark.parametrize("target", TARGETS)
def test_prometheusrule_equals_the_rules_file(target: str) -> None:
    sources = sync_monitoring.find_sources(ROOT)
    groups = yaml.safe_load(sources.rules.read_text())["groups"]
    rule = one(target, "PrometheusRule", "fraud-detection-alerts")
    assert rule["spec"] == {"groups": groups}
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


@pytest.mark.parametrize("target", TARGETS)
def test_dashboard_configmaps_equal_the_json_files(target: str) -> None:
    sources = sync_monitoring.find_sources(ROOT)
    dashboards = [d for d in objects(target, "ConfigMap")
                  if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    by_file = {key: (doc, text) for doc in dashboards for key, text in doc["data"].items()}
    assert sorted(by_file) == sorted(p.name for p in sources.dashboards)
    for path in sources.dashboards:
        doc, text = by_file[path.name]
        assert text == path.read_text(encoding="utf-8"), f"{path.name} differs"
        assert json.loads(text) == json.loads(path.read_text())
        assert len(json.dumps(doc).encode()) < sync_monitoring.CONFIGMAP_MAX_BYTES


def test_generator_detects_a_changed_source(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "k8s/base/monitoring", tmp_path / "k8s/base/monitoring")
    # No sources: an error, not an empty PrometheusRule.
    assert sync_monitoring.main(["--root", str(tmp_path), "--check"]) == 2
    # Other sources than the committed copies were made from: stale until synced.
    (tmp_path / "observability/rules").mkdir(parents=True)
    (tmp_path / sync_monitoring.RULES_SOURCE).write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: vector(1)\n")
    (tmp_path / "grafana/dashboards").mkdir(parents=True)
    (tmp_path / "grafana/dashboards/fraud-overview.json").write_text('{"title": "t"}\n')
    assert sync_monitoring.main(["--root", str(tmp_path), "--check"]) == 1
    assert sync_monitoring.main(["--root", str(tmp_path)]) == 0
    assert sync_monitoring.main(["--root", str(tmp_path), "--check"]) == 0
    rule = yaml.safe_load((tmp_path / sync_monitoring.PROMETHEUS_RULE_OUT).read_text())
    assert rule["spec"]["groups"][0]["rules"][0]["alert"] == "A"
    cm = yaml.safe_load((tmp_path / sync_monitoring.DASHBOARDS_OUT).read_text())
    assert cm["metadata"]["name"] == "fraud-dashboard-overview"
    assert cm["data"] == {"fraud-overview.json": '{"title": "t"}\n'}
    # A broken source is an error, not a silent copy.
    (tmp_path / sync_monitoring.RULES_SOURCE).write_text("rules: []\n")
    assert sync_monitoring.main(["--root", str(tmp_path), "--check"]) == 2


def test_jobs_the_rules_select_are_the_jobs_the_monitors_scrape() -> None:
    sources = sync_monitoring.find_sources(ROOT)
    texts = [sources.rules.read_text(), *(p.read_text() for p in sources.dashboards)]
    wanted = {job for text in texts for job in re.findall(r'job\\?="([^"\\]+)\\?"', text)}
    for target in TARGETS:
        scraped = set()
        for doc in objects(target, "PodMonitor"):
            for endpoint in doc["spec"]["podMetricsEndpoints"]:
                for relabel in endpoint.get("relabelings", []):
                    if relabel.get("targetLabel") == "job":
                        scraped.add(relabel["replacement"])
        exact = {job for job in wanted if re.fullmatch(r"[\w-]+", job)}
        assert exact <= scraped, f"{target}: rules select jobs {exact - scraped} nobody scrapes"


def test_podmonitor_scrapes_the_dataflow_api_port() -> None:
    for target in TARGETS:
        monitor = one(target, "PodMonitor", "fraud-detection")
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        sts, main = dataflow(target)
        pod_labels = sts["spec"]["template"]["metadata"]["labels"]
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert ports[endpoint["port"]] == 3030
            assert endpoint["path"] == "/metrics"


# ---- the dataflow's shape -------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_processes_times_workers_divide_the_kafka_partitions(target: str) -> None:
    sts, main = dataflow(target)
    env = effective_env(target, main)
    replicas = sts["spec"]["replicas"]
    workers = int(env["BYTEWAX_WORKERS_PER_PROCESS"])
    assert int(env["BYTEWAX_REPLICAS"]) == replicas, "BYTEWAX_REPLICAS != StatefulSet replicas"
    assert int(env["FRAUD_TOPIC_PARTITIONS"]) == KAFKA_PARTITIONS
    assert KAFKA_PARTITIONS % (replicas * workers) == 0
    assert replicas * workers in {1, 2, 5, 10}
    for init in sts["spec"]["template"]["spec"]["initContainers"]:
        init_env = effective_env(target, init)
        assert init_env.get("BYTEWAX_REPLICAS") == env["BYTEWAX_REPLICAS"]
        assert init_env.get("BYTEWAX_WORKERS_PER_PROCESS") == env["BYTEWAX_WORKERS_PER_PROCESS"]


def test_gke_runs_five_processes_of_two_workers() -> None:
    sts, main = dataflow("gke")
    env = effective_env("gke", main)
    assert (sts["spec"]["replicas"], env["BYTEWAX_WORKERS_PER_PROCESS"]) == (5, "2")
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "standard-rwo"
    image = main["image"]
    assert image.endswith(":0.1.0") and "docker.pkg.dev" in image


@pytest.mark.parametrize("target", TARGETS)
def test_statefulset_has_the_waxctl_shape(target: str) -> None:
    sts, main = dataflow(target)
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    assert spec["podManagementPolicy"] == "Parallel"
    service = one(target, "Service", spec["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    assert {p["port"] for p in service["spec"]["ports"]} >= {9999}
    assert [c["name"] for c in pod["initContainers"]] == ["init-hostfile", "init-recovery"]
    assert pod["initContainers"][0]["args"] == ["write-hostfile"]
    assert pod["initContainers"][1]["args"] == ["init-recovery"]
    env = effective_env(target, main)
    for name in ("BYTEWAX_WORKERS_PER_PROCESS", "BYTEWAX_POD_NAME", "BYTEWAX_STATEFULSET_NAME",
                 "BYTEWAX_REPLICAS", "BYTEWAX_KEEP_CONTAINER_ALIVE", "BYTEWAX_HOSTFILE_PATH",
                 "BYTEWAX_RECOVERY_DIRECTORY", "BYTEWAX_SNAPSHOT_INTERVAL",
                 "BYTEWAX_RECOVERY_BACKUP_INTERVAL", "BYTEWAX_DATAFLOW_API_ENABLED"):
        assert name in env, name
    assert env["BYTEWAX_STATEFULSET_NAME"] == sts["metadata"]["name"]
    assert env["BYTEWAX_HEADLESS_SERVICE"] == service["metadata"]["name"]
    assert env["BYTEWAX_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["BYTEWAX_DATAFLOW_API_PORT"] == "3030"
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"process": 9999, "api": 3030}
    # Recovery store, state, API cache and the hostfile are on volumes (root is read-only).
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
    assert mounts["/var/lib/fraud"] in claims
    assert env["FRAUD_STATE_DIR"] == "/var/lib/fraud"
    assert env["BYTEWAX_RECOVERY_DIRECTORY"].startswith("/var/lib/fraud/")
    assert env["BYTEWAX_DATAFLOW_API_CACHE_PATH"] in mounts
    assert str(Path(env["BYTEWAX_HOSTFILE_PATH"]).parent) in mounts
    recovery_mounts = {m["mountPath"] for m in pod["initContainers"][1]["volumeMounts"]}
    assert "/var/lib/fraud" in recovery_mounts
    # A stop: interrupt, then at most FRAUD_STOP_TIMEOUT_SECONDS, inside the grace period.
    assert pod["terminationGracePeriodSeconds"] >= int(env["FRAUD_STOP_TIMEOUT_SECONDS"]) + 10


@pytest.mark.parametrize("target", TARGETS)
def test_hostfile_names_the_pods_of_the_headless_service(target: str) -> None:
    sts, _ = dataflow(target)
    init = sts["spec"]["template"]["spec"]["initContainers"][0]
    env = {k: v for k, v in effective_env(target, init).items() if isinstance(v, str)}
    namespace = sts["metadata"]["namespace"]
    env.update(POD_NAMESPACE=namespace, FRAUD_ENTRYPOINT_DRY_RUN="1",
               PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    result = subprocess.run(["sh", str(ROOT / "deploy" / "entrypoint.sh"), *init["args"]],
                            env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    name, service = sts["metadata"]["name"], sts["spec"]["serviceName"]
    expected = [f"{name}-{i}.{service}.{namespace}.svc.cluster.local:9999"
                for i in range(sts["spec"]["replicas"])]
    assert result.stdout.splitlines() == expected


def test_every_pod_reaching_hazelcast_is_admitted_by_its_network_policy() -> None:
    for target in OVERLAYS:
        policy = one(target, "NetworkPolicy", "hazelcast")
        assert policy["metadata"]["namespace"] == "hazelcast"
        assert policy["spec"]["podSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": "hazelcast", "app.kubernetes.io/instance": "hazelcast"}
        rules = policy["spec"]["ingress"]
        client_rule = next(r for r in rules
                           if "namespaceSelector" in r["from"][0] and "podSelector" in r["from"][0])
        peer = client_rule["from"][0]
        assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "fraud"}
        client_labels = peer["podSelector"]["matchLabels"]
        monitoring = [r for r in rules if r["from"][0].get("namespaceSelector", {})
                      .get("matchLabels") == {"kubernetes.io/metadata.name": "monitoring"}]
        assert monitoring and all("podSelector" not in r["from"][0] for r in monitoring)
        sources = [r["from"][0] for r in rules]
        assert len(sources) == 3, "only members, fraud clients and monitoring"
        for doc, _spec in pod_specs(target):
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert client_labels.items() <= labels.items(), (
                f"{doc['kind']}/{doc['metadata']['name']} talks to Hazelcast but is not admitted")
            assert doc["metadata"]["namespace"] == "fraud"


def test_dataflow_network_policy() -> None:
    for target in TARGETS:
        policy = one(target, "NetworkPolicy", "fraud-detection")
        sts, _ = dataflow(target)
        labels = sts["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        ports = {r["ports"][0]["port"]: r["from"][0] for r in policy["spec"]["ingress"]}
        assert set(ports) == {9999, 3030}
        assert ports[9999]["podSelector"]["matchLabels"].items() <= labels.items()
        assert ports[3030]["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "monitoring"}


def test_pod_disruption_budget_covers_the_dataflow() -> None:
    for target in TARGETS:
        pdb = one(target, "PodDisruptionBudget", "fraud-detection")
        sts, _ = dataflow(target)
        assert pdb["spec"]["maxUnavailable"] == 1
        assert (pdb["spec"]["selector"]["matchLabels"].items()
                <= sts["spec"]["template"]["metadata"]["labels"].items())


# ---- security -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_is_locked_down_and_bounded(target: str) -> None:
    checked = 0
    for doc, spec in pod_specs(target):
        where = f"{target}: {doc['kind']}/{doc['metadata']['name']}"
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, where
        assert pod_security["runAsUser"] >= 10000, where
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in all_containers(spec):
            name = f"{where} container {container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["runAsNonRoot"] is True, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert not security.get("privileged"), name
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), f"{name}: {kind}"
            tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
            assert "emptyDir" in volumes[tmp["name"]], f"{name}: /tmp must be an emptyDir"
            assert container["image"].rsplit(":", 1)[-1] != "latest", name
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("target", TARGETS)
def test_dataflow_probes_use_the_metrics_endpoint(target: str) -> None:
    _, main = dataflow(target)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[probe]["httpGet"] == {"path": "/metrics", "port": "api"}, probe
    # The liveness probe must not kill a process while its startup may still take long.
    startup = main["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


@pytest.mark.parametrize("target", TARGETS)
def test_every_server_has_probes(target: str) -> None:
    """Long-running containers that serve (all but the idle toolbox) have readiness and
    liveness probes on their /metrics port. Init and Job containers run to completion."""
    servers = 0
    for doc, spec in pod_specs(target):
        if doc["kind"] == "Job":
            continue
        for container in spec["containers"]:
            if container["args"][0] == "sleep":
                continue
            ports = {p["name"] for p in container["ports"]}
            for probe in ("readinessProbe", "livenessProbe"):
                get = container[probe]["httpGet"]
                assert get["path"] == "/metrics" and get["port"] in ports, (doc, probe)
            servers += 1
    assert servers == 2  # the dataflow and the hotspot exporter


@pytest.mark.parametrize("target", TARGETS)
def test_kafka_credentials_come_only_from_the_secret(target: str) -> None:
    assert not objects(target, "Secret"), "no Secret may be rendered from the repository"
    for doc in objects(target, "ConfigMap"):
        for key in doc.get("data", {}):
            assert key not in SECRET_KEYS, f"{doc['metadata']['name']} holds {key}"
            assert not re.search(r"PASSWORD|SECRET|TOKEN|API_KEY", key), key
    users = 0
    for _doc, spec in pod_specs(target):
        for container in all_containers(spec):
            for item in container.get("env", []):
                if re.search(r"PASSWORD|SECRET|TOKEN|USERNAME|BOOTSTRAP", item["name"]):
                    assert "value" not in item, f"{item['name']} has a literal value"
                    ref = item["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == "fraud-kafka" and ref["key"] == item["name"]
                    users += 1
    assert users >= 6  # the dataflow and the toolbox


def test_dev_overlay_makes_only_the_sasl_keys_optional() -> None:
    for _doc, spec in pod_specs("dev"):
        for container in spec["containers"]:
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref.get("optional", False) == ("SASL" in item["name"]), item


def test_secret_template_is_a_placeholder_and_not_deployed() -> None:
    example = K8S / "base" / "kafka-credentials.secret.example.yaml"
    secret = yaml.safe_load(example.read_text())
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "fraud-kafka"
    assert set(secret["stringData"]) == SECRET_KEYS
    for value in secret["stringData"].values():
        assert re.fullmatch(r"<[^<>]+>", value), f"not a placeholder: {value!r}"
    for kustomization in K8S.rglob("kustomization.yaml"):
        listed = yaml.safe_load(kustomization.read_text())
        for field in ("resources", "components", "patches"):
            for entry in listed.get(field, []):
                text = entry if isinstance(entry, str) else entry.get("path", "")
                assert example.name not in text, kustomization
    # No other file under k8s/ holds a Secret at all.
    for path in [*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")]:
        if path == example:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert not (isinstance(doc, dict) and doc.get("kind") == "Secret"), path


# ---- Hazelcast ------------------------------------------------------------------------------


def hazelcast_values() -> dict[str, Any]:
    return yaml.safe_load((K8S / "hazelcast" / "values.yaml").read_text())


def test_hazelcast_values_match_what_the_service_expects() -> None:
    from service.settings import Settings
    from stack.hazelcast_member import member_config

    settings = Settings()
    values = hazelcast_values()
    config = values["hazelcast"]["yaml"]["hazelcast"]
    assert values["cluster"]["memberCount"] == 3
    assert values["jet"]["enabled"] is True
    assert config["jet"]["enabled"] == "${hz.jet.enabled}"
    assert values["mancenter"]["enabled"] is False
    maps = config["map"]
    for name in (settings.map_customers, settings.map_merchants, settings.map_predictions,
                 settings.map_models):
        assert maps[name]["backup-count"] == 1, name
    predictions = maps[settings.map_predictions]
    assert predictions["eviction"] == {"eviction-policy": "LRU", "max-size-policy": "PER_NODE",
                                       "size": 200000}
    assert {(i["type"], tuple(i["attributes"])) for i in predictions["indexes"]} == {
        ("HASH", ("customer_name",)), ("SORTED", ("fraud_probability",))}
    # The same map configuration as the local member's, but for the bound (DESIGN.md).
    local = yaml.safe_load(member_config(settings, settings.hazelcast_port))
    local_predictions = local["hazelcast"]["map"][settings.map_predictions]
    assert {**local_predictions, "eviction": predictions["eviction"]} == predictions
    assert "-XX:+UseZGC" in values["hazelcast"]["javaOpts"].split()
    # The release "hazelcast" in namespace "hazelcast" serves FRAUD_HAZELCAST_MEMBERS.
    env = configmap("gke", "fraud-config")["data"]
    assert env["FRAUD_HAZELCAST_MEMBERS"] == "hazelcast.hazelcast.svc.cluster.local:5701"
    assert env["FRAUD_HAZELCAST_CLUSTER_NAME"] == config["cluster-name"]
    assert values["metrics"]["serviceMonitor"]["labels"] == {"release": "kube-prometheus-stack"}
    assert values["securityContext"]["readOnlyRootFilesystem"] is True


# DESIGN.md's predictionResult fields with the types the old mapping read them as.
DESIGN_PREDICTION_TYPES = {
    "__key": "VARCHAR", "transaction_number": "VARCHAR", "transaction_date": "VARCHAR",
    "timestamp_ms": "BIGINT", "amount": "DOUBLE", "merchant": "VARCHAR",
    "merchant_lat": "DOUBLE", "merchant_lon": "DOUBLE", "credit_card_number": "VARCHAR",
    "customer_name": "VARCHAR", "customer_city": "VARCHAR", "customer_age_group": "VARCHAR",
    "customer_gender": "VARCHAR", "customer_lat": "DOUBLE", "customer_lon": "DOUBLE",
    "distance_from_home": "DOUBLE", "transactions_last_24_hours": "BIGINT",
    "transactions_last_week": "BIGINT", "amount_spent_last_24_hours": "DOUBLE",
    "fraud_probability": "DOUBLE", "fraud_model_prediction": "INT",
    "inference_time_ns": "BIGINT", "model_version": "VARCHAR", "customer_known": "BOOLEAN",
    "merchant_known": "BOOLEAN",
    **{f"top_feature_{i}": "VARCHAR" for i in (1, 2, 3)},
    **{f"top_contribution_{i}": "DOUBLE" for i in (1, 2, 3)},
}


def parse_mapping(statement: str) -> tuple[str, dict[str, str], dict[str, str]]:
    match = re.match(r'CREATE OR REPLACE MAPPING "?(\w+)"? \((.*)\)\s*'
                     r"TYPE IMap\s*OPTIONS \((.*)\)$", statement, re.S)
    assert match, statement
    columns = {}
    for column in match.group(2).split(","):
        name, sql_type = column.split()
        columns[name.strip('"')] = sql_type
    options = dict(re.findall(r"'([^']+)'\s*=\s*'([^']+)'", match.group(3)))
    return match.group(1), columns, options


def test_sql_mappings_have_the_prediction_result_contract() -> None:
    statements = apply_sql.split_statements((K8S / "base" / "sql" / "mappings.sql").read_text())
    mappings = {name: (columns, options)
                for name, columns, options in map(parse_mapping, statements)}
    assert set(mappings) == {"predictionResult", "customers", "merchants"}
    columns, options = mappings["predictionResult"]
    assert DESIGN_PREDICTION_TYPES.items() <= columns.items()
    for _, options in mappings.values():
        assert options == {"keyFormat": "varchar", "valueFormat": "json-flat"}


def test_sql_file_is_the_services_own_ddl() -> None:
    """The Job and the service (enrich/sql_mappings.py) create identical mappings."""
    sync_sql = load_module(K8S / "sync_sql.py")
    assert sync_sql.main(["--check"]) == 0, "run python k8s/sync_sql.py"
    from enrich.sql_mappings import all_mapping_ddl
    from service.settings import Settings

    statements = apply_sql.split_statements((K8S / "base" / "sql" / "mappings.sql").read_text())
    assert [parse_mapping(s) for s in statements] == [
        parse_mapping(ddl) for ddl in all_mapping_ddl(Settings.model_construct())]


@pytest.mark.parametrize("target", TARGETS)
def test_mappings_job_runs_the_sql_file(target: str) -> None:
    job = one(target, "Job", "fraud-sql-mappings")
    spec = job["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["args"][:2] == ["python", "/app/apply_sql.py"]
    sql_path = Path(container["args"][2])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(sql_path.parent))
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    data = next(d for d in objects(target, "ConfigMap")
                if d["metadata"]["name"] == volume["configMap"]["name"])["data"]
    assert data[sql_path.name] == (K8S / "base" / "sql" / "mappings.sql").read_text()


# ---- entry into the image -------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_containers_use_the_entrypoint_modes(target: str) -> None:
    """Every container runs the image's entrypoint with a mode it knows (or a command)."""
    for _, spec in pod_specs(target):
        for container in all_containers(spec):
            assert "command" not in container, "keep the image's ENTRYPOINT"
            assert container["args"][0] in {"run", "write-hostfile", "init-recovery", "python",
                                            "fraud", "sleep"}


# ---- waxctl ---------------------------------------------------------------------------------


def test_waxctl_values_match_the_kustomize_deployment() -> None:
    values = yaml.safe_load((K8S / "waxctl" / "values.yaml").read_text())
    assert values["envFromSecret"] == "fraud-kafka"
    config = configmap("gke", "fraud-config")["data"]
    for key, value in values["env"].items():
        assert key not in SECRET_KEYS and not re.search(r"PASSWORD|SECRET|USERNAME", key)
        if key in config:
            assert str(value) == config[key], key
    assert set(config) - {"FRAUD_METRICS_PORT"} <= set(values["env"])
    assert values["podSecurityContext"]["runAsUser"] == 10001
    assert values["podLabels"] == {"fraud-detection/hazelcast-client": "true"}
    assert values["podMonitor"]["enabled"] is False


def test_waxctl_podmonitor() -> None:
    monitor = yaml.safe_load((K8S / "waxctl" / "podmonitor.yaml").read_text())
    errors = list(crd_validator("PodMonitor").iter_errors(monitor))
    assert not errors, errors
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "api" and endpoint["path"] == "/metrics"
    assert {"action": "replace", "targetLabel": "job", "replacement": "fraud-dataflow"} in (
        endpoint["relabelings"])
