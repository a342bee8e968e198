"""infra/k8s without a cluster: each manifest against Kubernetes' own schemas, the pieces against each other.

Each YAML document is validated with kubernetes-validate (the API's OpenAPI schemas, bundled, offline) in
strict mode: an unknown or misplaced field fails, as ``kubectl apply --validate=strict`` would. The
Prefect work pool's base job template is checked with Prefect's own validator, rendered the way the
Kubernetes worker renders it for a flow run, and the resulting Job validated the same way. Then the
cross-references a schema cannot see: every Secret, ConfigMap (and key), PersistentVolumeClaim and
ServiceAccount a pod names exists in the manifests, one namespace, selectors that select, probes on
routes the servers really have, ``LOOPLINE_*`` names that loopline reads, and a torchrun line that
torchrun parses with the GPU count the Job requests. What this does not show: that a cluster schedules
it (storage class, GPU nodes, images in a registry); see infra/README.md.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "infra" / "k8s"
TEMPLATE_PATH = K8S / "prefect-base-job-template.json"
# The oldest Kubernetes still in wide use whose schemas kubernetes-validate ships; the fields used here
# have not changed since.
K8S_VERSION = "1.30.0"
NAMESPACE = "loopline"
POOL = "loopline-k8s"
NOT_APPLIED = {"secret.example.yaml", "train-gpu-job.yaml", "kustomization.yaml"}
GPU = "nvidia.com/gpu"
# prefect-kubernetes requires these two Job fields inside the pod spec (its manifest check rejects a
# template without them) although a PodSpec has no such fields; the API server drops them with a warning.
PREFECT_POD_SPEC_QUIRK = ("parallelism", "completions")


def load_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((str(path.relative_to(K8S)), doc))
    return docs


DOCUMENTS = load_documents()
MANIFESTS = [(path, doc) for path, doc in DOCUMENTS if doc["kind"] != "Kustomization"]


def doc_id(path: str, doc: dict[str, Any]) -> str:
    meta = doc["metadata"]
    name = f"{doc['kind']}/{meta.get('name') or meta.get('generateName')}"
    return f"{path}:{name}" if path else name


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc
        for _, doc in MANIFESTS
        if doc["kind"] == kind and "name" in doc["metadata"]
    }


def one(kind: str) -> dict[str, Any]:
    found = [doc for _, doc in MANIFESTS if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc["spec"]["template"]["spec"])


def workloads() -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, pod spec) of every Deployment and Job in the manifests."""
    for _, doc in MANIFESTS:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc_id("", doc), pod_spec(doc)


def container(doc: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = pod_spec(doc)["containers"]
    return dict(next(c for c in containers if name is None or c["name"] == name))


def data_keys(kind: str, name: str) -> set[str]:
    doc = objects(kind)[name]
    return set(doc.get("data", {})) | set(doc.get("stringData", {}))


def container_env(c: dict[str, Any]) -> dict[str, str | None]:
    """Every variable the container gets: envFrom (whole ConfigMaps/Secrets) then env (which wins)."""
    env: dict[str, str | None] = {}
    for source in c.get("envFrom", []):
        kind, ref = (
            ("ConfigMap", source["configMapRef"])
            if "configMapRef" in source
            else ("Secret", source["secretRef"])
        )
        doc = objects(kind)[ref["name"]]
        env.update({**doc.get("data", {}), **doc.get("stringData", {})})
    for item in c.get("env", []):
        env[item["name"]] = item.get("value")
    return env


# ------------------------------------------------------------------------------------------- schemas


@pytest.mark.parametrize(("path", "doc"), MANIFESTS, ids=[doc_id(p, d) for p, d in MANIFESTS])
def test_manifest_is_valid_kubernetes(path: str, doc: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        where = ".".join(str(part) for part in err.path)
        pytest.fail(f"{path} {doc['kind']}: {where}: {err.message}", pytrace=False)


def test_strict_validation_refuses_an_unknown_field() -> None:
    """The check above has teeth: a misspelt field (``resource`` for ``resources``) fails."""
    serving = copy.deepcopy(objects("Deployment")["loopline-serve"])
    serving["spec"]["template"]["spec"]["containers"][0]["resource"] = {"limits": {"memory": "1Gi"}}
    with pytest.raises(kubernetes_validate.ValidationError, match="resource"):
        kubernetes_validate.validate(serving, K8S_VERSION, strict=True)


def test_every_yaml_file_is_a_manifest_or_the_kustomization() -> None:
    kinds = {doc["kind"] for _, doc in DOCUMENTS}
    assert "Kustomization" in kinds
    assert {p.name for p in K8S.rglob("*.yaml")} == {path for path, _ in DOCUMENTS}  # none is empty


# ------------------------------------------------------------------------------------------ structure


def test_one_namespace_and_part_of_labels_everywhere() -> None:
    assert set(objects("Namespace")) == {NAMESPACE}
    seen: set[tuple[str, str]] = set()
    for path, doc in MANIFESTS:
        meta = doc["metadata"]
        if doc["kind"] != "Namespace":
            assert meta.get("namespace") == NAMESPACE, (
                f"{doc_id(path, doc)}: namespace {meta.get('namespace')}"
            )
        assert meta.get("labels", {}).get("app.kubernetes.io/part-of") == NAMESPACE, doc_id(path, doc)
        key = (doc["kind"], meta.get("name") or meta["generateName"])
        assert key not in seen, f"{key} defined twice"
        seen.add(key)
    for subject in one("RoleBinding")["subjects"]:
        assert subject.get("namespace", NAMESPACE) == NAMESPACE


def test_kustomization_applies_every_long_running_manifest() -> None:
    kustomization = next(doc for _, doc in DOCUMENTS if doc["kind"] == "Kustomization")
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    on_disk = {path for path, _ in DOCUMENTS} - NOT_APPLIED
    assert set(listed) == on_disk, "kustomization.yaml resources differ from the manifests in infra/k8s"
    assert listed[0] == "namespace.yaml"


def test_selectors_select_their_pods_and_services_their_ports() -> None:
    deployments = objects("Deployment")
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"Deployment {name}: selector does not match its pods"
    for name, service in objects("Service").items():
        matching = [
            d for d in deployments.values()
            if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]  # fmt: skip
        assert len(matching) == 1, f"Service {name} selects {len(matching)} Deployments"
        ports = {p["name"] for c in pod_spec(matching[0])["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name}: no container port {port['targetPort']!r}"


def pod_references(spec: dict[str, Any]) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, key or None) of everything a pod spec names: its ServiceAccount, the ConfigMaps and
    Secrets of envFrom/env/volumes, the claims of its volumes."""
    if "serviceAccountName" in spec:
        yield "ServiceAccount", spec["serviceAccountName"], None
    for volume in spec.get("volumes", []):
        if "persistentVolumeClaim" in volume:
            yield "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], None
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"], None
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"], None
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        for source in c.get("envFrom", []):
            if "configMapRef" in source:
                yield "ConfigMap", source["configMapRef"]["name"], None
            if "secretRef" in source:
                yield "Secret", source["secretRef"]["name"], None
        for item in c.get("env", []):
            ref = item.get("valueFrom", {})
            if "secretKeyRef" in ref:
                yield "Secret", ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
            if "configMapKeyRef" in ref:
                yield "ConfigMap", ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"]
        mounted = {m["name"] for m in c.get("volumeMounts", [])}
        assert mounted <= {v["name"] for v in spec.get("volumes", [])}, (
            f"{c['name']}: mounts an undeclared volume"
        )


def assert_references_exist(where: str, spec: dict[str, Any]) -> None:
    for kind, name, key in pod_references(spec):
        assert name in objects(kind), f"{where}: {kind} {name!r} is not defined in infra/k8s"
        if key is not None:
            assert key in data_keys(kind, name), f"{where}: {kind} {name!r} has no key {key!r}"


@pytest.mark.parametrize("name", [name for name, _ in workloads()])
def test_what_each_pod_names_exists(name: str) -> None:
    spec = dict(workloads())[name]
    assert_references_exist(name, spec)
    if spec.get("serviceAccountName") != "prefect-worker":  # loopline's pods need no API access
        assert spec.get("serviceAccountName") == "loopline", (
            f"{name}: runs as {spec.get('serviceAccountName')}"
        )


def test_the_worker_may_do_what_prefect_kubernetes_does() -> None:
    binding, role = one("RoleBinding"), one("Role")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert [s["name"] for s in binding["subjects"]] == ["prefect-worker"]
    assert "prefect-worker" in objects("ServiceAccount")
    granted = {
        (group, resource, verb)
        for rule in role["rules"] for group in rule["apiGroups"]
        for resource in rule["resources"] for verb in rule["verbs"]
    }  # fmt: skip
    needed = {("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")}
    needed |= {("", "pods", v) for v in ("get", "list", "watch")} | {("", "pods/log", "get")}
    needed |= {("", "events", "create")}  # the observer (kopf) posts events
    assert needed <= granted, f"Role prefect-worker lacks {sorted(needed - granted)}"


def test_worker_serves_the_kubernetes_pool_of_the_namespace() -> None:
    worker = objects("Deployment")["prefect-worker"]
    c = container(worker)
    args = c["args"]
    assert args[:3] == ["prefect", "worker", "start"]
    assert args[args.index("--pool") + 1] == POOL and args[args.index("--type") + 1] == "kubernetes"
    env = container_env(c)
    # A Role grants one namespace: the observer must not watch the cluster.
    assert env["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"] == NAMESPACE
    assert str(env["PREFECT_API_URL"]).endswith("/api")
    import prefect

    assert c["image"].startswith(f"prefecthq/prefect:{prefect.__version__}-") and c["image"].endswith(
        "-kubernetes"
    )


# ---------------------------------------------------------------------------------------------- probes


def http_probes(c: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        kind: (c[kind]["httpGet"]["path"], c[kind]["httpGet"]["port"])
        for kind in ("startupProbe", "readinessProbe", "livenessProbe")
        if kind in c
    }


def test_probes_use_named_ports_of_their_container() -> None:
    for name, spec in workloads():
        for c in spec["containers"]:
            ports = {p["name"] for p in c.get("ports", [])}
            for kind, (_, port) in http_probes(c).items():
                assert port in ports, f"{name} {kind}: no port {port!r}"


def test_serving_probes_hit_routes_the_app_has(tmp_path: Path) -> None:
    """/ready is 503 until a model is loaded (so readiness keeps a cold pod out of the Service), /health
    is 200 at once (so liveness does not kill a pod that is still loading)."""
    from fastapi.testclient import TestClient

    from loopline.config import load_settings
    from loopline.feedback.store import FeedbackStore
    from loopline.serving.app import create_app
    from loopline.serving.holder import ModelHolder

    c = container(objects("Deployment")["loopline-serve"], "serve")
    probes = http_probes(c)
    assert probes["readinessProbe"][0] == "/ready"
    assert probes["livenessProbe"][0] == probes["startupProbe"][0] == "/health"
    assert c["args"][c["args"].index("--port") + 1] == str(c["ports"][0]["containerPort"])

    settings = load_settings(home=tmp_path / "home")
    store = FeedbackStore(settings.resolved_feedback_db_url)
    try:
        app = create_app(settings, ModelHolder(settings), store, None)
        routes = {getattr(route, "path", None) for route in app.routes}
        assert {path for path, _ in probes.values()} <= routes
        client = TestClient(app)  # no lifespan: no alias follower, no model
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503
    finally:
        store.close()


def test_mlflow_and_worker_probes_hit_routes_they_have() -> None:
    import mlflow.server
    from fastapi.testclient import TestClient
    from prefect.settings import get_current_settings
    from prefect.workers.server import _build_healthcheck_server

    mlflow_c = container(objects("Deployment")["mlflow"])
    mlflow_routes = {rule.rule for rule in mlflow.server.app.url_map.iter_rules()}
    assert {path for path, _ in http_probes(mlflow_c).values()} <= mlflow_routes

    worker_c = container(objects("Deployment")["prefect-worker"])
    assert "--with-healthcheck" in worker_c["args"]
    assert worker_c["ports"][0]["containerPort"] == get_current_settings().worker.webserver.port
    health = TestClient(_build_healthcheck_server(lambda: True).config.app)
    for path, _ in http_probes(worker_c).values():
        assert health.get(path).status_code == 200


# ------------------------------------------------------------------------------- settings and images


def test_loopline_variables_are_settings_loopline_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """loopline refuses an unknown LOOPLINE_* variable; every one here must be a setting, and the values
    of the ConfigMap and Secret template must load."""
    from loopline.config import NON_SETTINGS_ENV, load_settings, settings_env_names

    known = set(settings_env_names()) | set(NON_SETTINGS_ENV)
    names: set[str] = set()
    for kind in ("ConfigMap", "Secret"):
        for name in objects(kind):
            names |= data_keys(kind, name)
    for _, spec in workloads():
        for c in spec["containers"]:
            names |= {item["name"] for item in c.get("env", [])}
    loopline_names = {n for n in names if n.startswith("LOOPLINE_")}
    assert loopline_names, "no LOOPLINE_* variable at all?"
    assert loopline_names <= known, f"not loopline settings: {sorted(loopline_names - known)}"

    env = {
        **objects("ConfigMap")["loopline-config"]["data"],
        **objects("Secret")["loopline-secrets"]["stringData"],
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert str(settings.home) == "/var/lib/loopline"
    mlflow_service = objects("Service")["mlflow"]
    assert settings.tracking_uri == (
        f"http://mlflow.{NAMESPACE}.svc.cluster.local:{mlflow_service['spec']['ports'][0]['port']}"
    )
    assert settings.serve.api_key is not None


def test_loopline_home_is_the_shared_volume_where_flows_and_training_run() -> None:
    home = objects("ConfigMap")["loopline-config"]["data"]["LOOPLINE_HOME"]
    claim = objects("PersistentVolumeClaim")["loopline-home"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # all ranks and flow runs at once
    for spec in (pod_spec(train_job()), rendered_job(base_job_template())["spec"]["template"]["spec"]):
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        assert claims.get(mounts.get(home, "")) == "loopline-home", f"{home} is not the shared claim"


def test_images_are_the_ones_infra_builds() -> None:
    mlflow_version = re.search(
        r"ARG MLFLOW_VERSION=(\S+)", (ROOT / "infra" / "mlflow.Dockerfile").read_text()
    )
    assert mlflow_version
    images = {c["image"] for _, spec in workloads() for c in spec["containers"]}
    images.add(base_job_template()["variables"]["properties"]["image"]["default"])
    for image in images:
        repo, _, tag = image.partition(":")
        assert tag, f"{image}: no tag"
        if repo == "loopline/mlflow":
            assert tag == mlflow_version.group(1), (
                f"{image}: mlflow.Dockerfile builds {mlflow_version.group(1)}"
            )
        elif repo.startswith("loopline/"):
            assert repo == "loopline/worker", f"{image}: infra/Dockerfile builds loopline/worker"
        else:
            assert repo == "prefecthq/prefect", image


# ------------------------------------------------------------------------------ Prefect base job template


def base_job_template() -> dict[str, Any]:
    return dict(json.loads(TEMPLATE_PATH.read_text(encoding="utf-8")))


def rendered_job(template: dict[str, Any], values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Job the Kubernetes worker would submit for a flow run, rendered offline: the variables'
    defaults and ``values`` (a deployment's job variables) into the job configuration, then the worker's
    own configuration class and its per-run preparation (labels, env, command, name)."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.utilities.templating import apply_values
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    variables = KubernetesWorkerJobConfiguration._get_base_config_defaults(
        template["variables"]["properties"]
    )
    variables.update(values or {})
    configuration = KubernetesWorkerJobConfiguration(**apply_values(template["job_configuration"], variables))
    configuration.prepare_for_flow_run(FlowRun(id=uuid.uuid4(), name="calm-otter", flow_id=uuid.uuid4()))
    return dict(configuration.job_manifest)


def test_base_job_template_passes_prefects_own_checks() -> None:
    """What the server checks on `prefect work-pool create --base-job-template` (every placeholder is a
    declared variable), a valid JSON schema of the variables whose defaults fit it, and nothing of the
    worker's default template left out."""
    import jsonschema
    from prefect.server.schemas.actions import validate_base_job_template
    from prefect_kubernetes.worker import KubernetesWorker

    template = base_job_template()
    assert set(template) == {"job_configuration", "variables"}
    validate_base_job_template(template)
    schema = template["variables"]
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(
        {name: prop["default"] for name, prop in schema["properties"].items() if "default" in prop}
    )
    default = KubernetesWorker.get_default_base_job_template()
    assert set(template["job_configuration"]) == set(default["job_configuration"])
    assert set(default["variables"]["properties"]) <= set(schema["properties"])
    assert schema["properties"]["namespace"]["default"] == NAMESPACE


def test_base_job_template_renders_to_a_valid_job_in_the_namespace() -> None:
    job = rendered_job(
        base_job_template(), {"image": "registry.example/loopline/worker:1.2", "env": {"X": "1"}}
    )
    spec = job["spec"]["template"]["spec"]
    assert [key for key in PREFECT_POD_SPEC_QUIRK if spec.get(key) == 1] == list(PREFECT_POD_SPEC_QUIRK)
    for key in PREFECT_POD_SPEC_QUIRK:
        del spec[key]
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)  # nothing else unknown or misplaced
    assert job["metadata"]["namespace"] == NAMESPACE
    assert job["metadata"]["labels"]["app.kubernetes.io/part-of"] == NAMESPACE
    c = spec["containers"][0]
    assert c["image"] == "registry.example/loopline/worker:1.2"
    assert c["args"] == ["prefect", "flow-run", "execute"]
    assert {"name": "X", "value": "1"} in c["env"]
    assert_references_exist("base job template", spec)
    assert spec["serviceAccountName"] == "loopline"


def test_base_job_template_default_image_and_resources() -> None:
    c = rendered_job(base_job_template())["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "loopline/worker:latest"
    assert set(c["resources"]["requests"]) == {"cpu", "memory"} and "memory" in c["resources"]["limits"]


# ---------------------------------------------------------------------------------- GPU training Job


def train_job() -> dict[str, Any]:
    return objects_by_generate_name("Job")["loopline-train-gpu-"]


def objects_by_generate_name(kind: str) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["generateName"]: d
        for _, d in MANIFESTS
        if d["kind"] == kind and "generateName" in d["metadata"]
    }


VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expanded_launch(c: dict[str, Any]) -> list[str]:
    """command + args with $(VAR) replaced as the kubelet does; a reference to an undefined variable is
    left as it is by Kubernetes, silently, so here it fails."""
    env = container_env(c)
    out = []
    for word in [*c["command"], *c["args"]]:
        for name in VAR_REF.findall(word):
            assert env.get(name) is not None, f"$({name}) in the launch line is not in the container's env"
        out.append(VAR_REF.sub(lambda m: str(env[m.group(1)]), word))
    return out


def test_gpu_job_requests_as_many_gpus_as_torchrun_starts_processes() -> None:
    from torch.distributed.run import get_args_parser

    c = container(train_job(), "train")
    resources = c["resources"]
    assert str(resources["limits"][GPU]) == str(resources["requests"][GPU])  # extended resources: equal
    launch = expanded_launch(c)
    assert launch[:3] == ["python", "-m", "torch.distributed.run"]
    args = get_args_parser().parse_args(launch[3:])
    assert args.nproc_per_node == str(resources["limits"][GPU]) == container_env(c)["GPUS"]
    assert args.module and args.training_script == "loopline.pipeline.torchrun"
    assert args.standalone and args.nnodes == "1"
    plan = container_env(c)["TRAIN_PLAN"]
    assert args.training_script_args == ["--plan", plan]
    assert str(plan).startswith(container_env(c)["LOOPLINE_HOME"] + "/"), (
        "the plan must be on the shared volume"
    )


def test_gpu_job_runs_once_on_gpu_nodes_with_shared_memory() -> None:
    job = train_job()
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    assert any(t["key"] == GPU for t in spec["tolerations"])
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in spec["containers"][0]["volumeMounts"]


def test_gpu_job_entry_point_takes_a_plan() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loopline.pipeline.torchrun", "--help"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--plan" in done.stdout
