"""The openshift/ manifests, rendered with kustomize and validated offline (no cluster here)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from http_api.serving import BACKSTOP_S
from swaparoony.settings import Settings

OPENSHIFT = Path(__file__).resolve().parent.parent / "openshift"
SCHEMAS = Path(__file__).resolve().parent.parent.parent / "shared" / "schemas" / "kserve"
VARIANTS = ["overlays/gpu", "overlays/cpu", "overlays/gpu-multi", "overlays/fleet", "plain"]
KSERVE_VARIANTS = [v for v in VARIANTS if v != "plain"]
BUILT_IN_KINDS = ("Deployment", "Service", "PersistentVolumeClaim", "ConfigMap")
KSERVE_SCHEMAS = {"InferenceService": "InferenceService-v1beta1.schema.json", "ServingRuntime": "ServingRuntime-v1alpha1.schema.json"}

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (for `kubectl kustomize`) is not installed")


def render(variant: str) -> dict[str, dict[str, Any]]:
    """`kubectl kustomize` output, by kind."""
    out = subprocess.run(["kubectl", "kustomize", str(OPENSHIFT / variant)], check=True, capture_output=True, text=True).stdout
    return {doc["kind"]: doc for doc in yaml.safe_load_all(out) if doc}


def strict(schema: Any) -> Any:
    """Refuse unknown fields, as the API server's strict field validation does."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def kserve_validators() -> dict[str, jsonschema.Draft7Validator]:
    if not SCHEMAS.is_dir():
        pytest.skip(f"KServe CRD schemas not found at {SCHEMAS} (../shared is beside the project in CI)")
    return {kind: jsonschema.Draft7Validator(strict(json.loads((SCHEMAS / name).read_text()))) for kind, name in KSERVE_SCHEMAS.items()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_built_in_kinds_are_valid_in_strict_mode(variant: str) -> None:
    for kind, doc in render(variant).items():
        if kind in BUILT_IN_KINDS:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("variant", KSERVE_VARIANTS)
def test_kserve_kinds_match_the_crd_schemas(variant: str, kserve_validators: dict) -> None:
    docs = render(variant)
    for kind, validator in kserve_validators.items():
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(docs[kind])]
        assert not errors, f"{variant} {kind}: {errors}"


def test_strict_schema_catches_a_misspelt_field(kserve_validators: dict) -> None:
    isvc = copy.deepcopy(render("overlays/gpu")["InferenceService"])
    isvc["spec"]["predictor"]["minReplica"] = 1
    assert not kserve_validators["InferenceService"].is_valid(isvc)


def runtime_container(docs: dict) -> dict:
    if "ServingRuntime" in docs:
        return docs["ServingRuntime"]["spec"]["containers"][0]
    return docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("variant", VARIANTS)
def test_port_probes_and_security_context(variant: str) -> None:
    docs = render(variant)
    container = runtime_container(docs)
    assert [p["containerPort"] for p in container["ports"]] == [3000]
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"] >= 300
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"] and context["seccompProfile"]["type"] == "RuntimeDefault"
    assert "runAsUser" not in context
    assert container["image"].startswith("quay.io/swaparoony/swaparoony:0.1.0")
    env = env_of(container)
    assert env["HOME"] == "/tmp/home"  # on an emptyDir, since restricted-v2 gives no home directory


@pytest.mark.parametrize("variant", VARIANTS)
def test_shutdown_lets_the_longest_request_finish(variant: str) -> None:
    docs = render(variant)
    pod = docs["InferenceService"]["spec"]["predictor"] if "InferenceService" in docs else docs["Deployment"]["spec"]["template"]["spec"]
    pre_stop = runtime_container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    longest = Settings().request_timeout_s + BACKSTOP_S + int(pre_stop[1])
    assert pod["terminationGracePeriodSeconds"] >= longest + 10
    assert Settings().request_timeout_s < 300  # inside the booth frontend's and the router's 300 s


def test_kserve_serving_metadata_for_the_dashboard() -> None:
    docs = render("overlays/gpu")
    runtime, isvc = docs["ServingRuntime"], docs["InferenceService"]
    assert runtime["spec"]["containers"][0]["name"] == "kserve-container"
    assert runtime["metadata"]["labels"]["opendatahub.io/dashboard"] == "true"
    annotations = runtime["metadata"]["annotations"]
    assert annotations["opendatahub.io/apiProtocol"] == "REST" and annotations["openshift.io/display-name"]
    assert json.loads(annotations["opendatahub.io/recommended-accelerators"]) == ["nvidia.com/gpu"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/stop"] == "false"
    assert isvc["metadata"]["labels"]["networking.kserve.io/visibility"] == "exposed"
    predictor = isvc["spec"]["predictor"]
    assert predictor["deploymentStrategy"]["type"] == "Recreate"
    assert predictor["minReplicas"] == 1 and predictor["maxReplicas"] >= 1
    assert predictor["model"]["runtime"] == runtime["metadata"]["name"]


def test_gpu_variants_request_a_gpu_and_tolerate_gpu_nodes() -> None:
    for resources, tolerations in (
        (render("overlays/gpu")["InferenceService"]["spec"]["predictor"]["model"]["resources"],
         render("overlays/gpu")["InferenceService"]["spec"]["predictor"]["tolerations"]),
        (render("plain")["Deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"],
         render("plain")["Deployment"]["spec"]["template"]["spec"]["tolerations"]),
    ):
        assert resources["requests"]["nvidia.com/gpu"] == "1" and resources["limits"]["nvidia.com/gpu"] == "1"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations


def test_cpu_overlay_has_no_gpu_and_runs_on_cpu_on_purpose() -> None:
    isvc = render("overlays/cpu")["InferenceService"]
    model = isvc["spec"]["predictor"]["model"]
    assert "nvidia.com/gpu" not in json.dumps(model["resources"])
    assert {"name": "SWAPAROONY_PROVIDERS", "value": "CPUExecutionProvider"} in model["env"]
    assert "tolerations" not in isvc["spec"]["predictor"]


def test_plain_variant_is_reachable_through_an_edge_tls_route() -> None:
    docs = render("plain")
    assert docs["Deployment"]["spec"]["strategy"]["type"] == "Recreate"
    route, service = docs["Route"], docs["Service"]
    assert route["spec"]["tls"]["termination"] == "edge"
    assert route["spec"]["to"] == {"kind": "Service", "name": service["metadata"]["name"]}
    assert int(route["metadata"]["annotations"]["haproxy.router.openshift.io/timeout"].rstrip("s")) >= 300
    assert service["spec"]["ports"][0]["port"] == 3000
    selector = service["spec"]["selector"]
    assert selector.items() <= docs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()


def render_with_component(variant: str, component: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """A variant with one of components/ added, as an operator's own overlay would add it."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(OPENSHIFT / variant, overlay)],
        "components": [os.path.relpath(OPENSHIFT / "components" / component, overlay)],
    }))
    out = subprocess.run(["kubectl", "kustomize", str(overlay)], check=True, capture_output=True, text=True).stdout
    return {doc["kind"]: doc for doc in yaml.safe_load_all(out) if doc}


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_signing_component_mounts_the_operators_secret(variant: str, tmp_path: Path,
                                                            kserve_validators: dict) -> None:
    docs = render_with_component(variant, "signing", tmp_path)
    container = runtime_container(docs)
    env = env_of(container)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "signing")
    assert mount["readOnly"] is True
    assert env["SWAPAROONY_SIGNING_CERT"] == mount["mountPath"] + "/tls.crt"
    assert env["SWAPAROONY_SIGNING_KEY"] == mount["mountPath"] + "/tls.key"
    pod = docs["ServingRuntime"]["spec"] if "ServingRuntime" in docs else docs["Deployment"]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "signing"]
    assert volume["secret"]["secretName"] == "swaparoony-signing"
    validate_all(docs, kserve_validators)


def validate_all(docs: dict[str, dict[str, Any]], kserve_validators: dict) -> None:
    """Every KServe kind against its CRD schema and every built-in kind against Kubernetes', both strict."""
    for kind, doc in docs.items():
        if kind in kserve_validators:
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in kserve_validators[kind].iter_errors(doc)]
            assert not errors, f"{kind}: {errors}"
        elif kind in BUILT_IN_KINDS:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def pod_spec(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return docs["ServingRuntime"]["spec"] if "ServingRuntime" in docs else docs["Deployment"]["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("variant", ["overlays/gpu", "plain"])
@pytest.mark.parametrize("component", ["destinations-pvc", "destinations-configmap"])
def test_the_gallery_comes_from_a_volume_the_live_reload_watches(variant: str, component: str, tmp_path: Path,
                                                                 kserve_validators: dict) -> None:
    docs = render_with_component(variant, component, tmp_path)
    validate_all(docs, kserve_validators)
    container = runtime_container(docs)
    env = env_of(container)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "destinations"]
    assert env["SWAPAROONY_DESTINATIONS_DIR"] == mount["mountPath"]
    assert [e["name"] for e in container["env"]].count("SWAPAROONY_DESTINATIONS_DIR") == 1
    assert "SWAPAROONY_GALLERY_POLL_S" not in env  # live reload stays on at its default
    (volume,) = [v for v in pod_spec(docs)["volumes"] if v["name"] == "destinations"]
    if component == "destinations-pvc":
        claim = docs["PersistentVolumeClaim"]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # replicas share it; the operator routes write it
        assert env["SWAPAROONY_ADMIN_TOKEN"]["secretKeyRef"] == {"name": "swaparoony-admin", "key": "token", "optional": True}
    else:
        assert volume["configMap"]["name"] == "swaparoony-destinations" and mount["readOnly"] is True
        assert "SWAPAROONY_ADMIN_TOKEN" not in env  # a ConfigMap cannot be written through the API


@pytest.mark.parametrize("component", ["models-data-connection", "models-pvc"])
def test_models_come_from_kserve_storage_at_mnt_models(component: str, tmp_path: Path, kserve_validators: dict) -> None:
    docs = render_with_component("overlays/gpu", component, tmp_path)
    validate_all(docs, kserve_validators)
    model = docs["InferenceService"]["spec"]["predictor"]["model"]
    if component == "models-data-connection":
        assert model["storage"] == {"key": "aws-connection-swaparoony-models", "path": "swaparoony/"}
    else:
        assert model["storageUri"].startswith("pvc://")
    assert env_of(runtime_container(docs))["SWAPAROONY_MODELS_DIR"] == "/mnt/models"  # where the storage initializer puts them


def test_keda_autoscaling_scales_on_requests_in_flight(tmp_path: Path, kserve_validators: dict) -> None:
    docs = render_with_component("overlays/gpu", "autoscaling-keda", tmp_path)
    validate_all(docs, kserve_validators)
    isvc = docs["InferenceService"]
    predictor = isvc["spec"]["predictor"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "keda"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert 1 <= predictor["minReplicas"] < predictor["maxReplicas"]
    assert predictor["deploymentStrategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}  # no spare GPU needed
    (metric,) = predictor["autoScaling"]["metrics"]
    query = metric["external"]["metric"]["query"]
    assert 'swaparoony_requests_held{state="active"' in query  # the gauge test_faults.py reads from a live server
    monitor = docs["PodMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"] == {"serving.kserve.io/inferenceservice": isvc["metadata"]["name"]}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] in [p["name"] for p in runtime_container(docs)["ports"]]


def test_serverless_autoscaling_scales_on_concurrency(tmp_path: Path, kserve_validators: dict) -> None:
    docs = render_with_component("overlays/gpu", "autoscaling-serverless", tmp_path)
    validate_all(docs, kserve_validators)
    isvc = docs["InferenceService"]
    predictor = isvc["spec"]["predictor"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert "deploymentStrategy" not in predictor  # a Deployment's field; Knative rolls revisions itself
    assert predictor["scaleMetric"] == "concurrency" and 1 <= predictor["minReplicas"] < predictor["maxReplicas"]
    assert predictor["scaleTarget"] < predictor["containerConcurrency"] <= Settings().max_active_requests


def test_multi_gpu_pods_get_one_model_worker_per_gpu() -> None:
    model = render("overlays/gpu-multi")["InferenceService"]["spec"]["predictor"]["model"]
    gpus = int(model["resources"]["limits"]["nvidia.com/gpu"])
    assert gpus == int(model["resources"]["requests"]["nvidia.com/gpu"]) == 2
    env = {e["name"]: e["value"] for e in model["env"]}
    assert "SWAPAROONY_MODEL_WORKERS" not in env  # the default follows the GPUs the pod is given
    visible = {"CUDA_VISIBLE_DEVICES": ",".join(map(str, range(gpus))), **env}
    assert Settings.from_env(visible).model_workers == gpus


def test_the_fleet_overlay_combines_scaling_a_shared_gallery_and_data_connection_models(kserve_validators: dict) -> None:
    docs = render("overlays/fleet")
    validate_all(docs, kserve_validators)
    env = env_of(runtime_container(docs))
    assert env["SWAPAROONY_DESTINATIONS_DIR"] == "/mnt/destinations" and env["SWAPAROONY_MODELS_DIR"] == "/mnt/models"
    assert docs["InferenceService"]["spec"]["predictor"]["maxReplicas"] > 1 and "PodMonitor" in docs
